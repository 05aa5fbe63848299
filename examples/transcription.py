"""A transcription session: speech in, transcripts out, no responses.

It starts the simulated Realtime server and a service on it, opens a transcription session
(``intent=transcription``) and streams ``--utterances`` utterances of speech-like audio,
100 ms at a time, as a phone line would; server VAD commits each one and its transcript
arrives on the bus::

    .venv/bin/python examples/transcription.py --utterances 2
"""

from __future__ import annotations

import argparse
import base64

import trio

import rtbus
from rtbus import SessionSpec
from rtbus.protocol import ConversationItemInputAudioTranscriptionCompletedEvent, RealtimeTarget
from rtbus.session import Session

CHUNK = 4_800  # bytes: 100 ms of 24 kHz mono PCM16, the session's default input format


async def speak(session: Session, audio: bytes) -> None:
    for start in range(0, len(audio), CHUNK):
        chunk = base64.b64encode(audio[start : start + CHUNK]).decode("ascii")
        await session.send({"type": "input_audio_buffer.append", "audio": chunk})


async def main(utterances: int) -> None:
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)
        config = rtbus.OpenAIConfig(api_key="sk-any-key-for-the-sim", base_url=sim.url)
        async with rtbus.open_service(config) as svc:
            spec = SessionSpec(
                target=RealtimeTarget.transcription(),  # ?intent=transcription, no model
                session={"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}},
            )
            session = await svc.open_session(spec=spec)
            done = "conversation.item.input_audio_transcription.completed"
            async with svc.subscribe(types=done, maxsize=64, overflow="block") as sub:
                for _ in range(utterances):
                    # Speech, then the silence after it that tells server VAD the turn ended.
                    await speak(session, rtbus.sim.speech_like_pcm16(1.0) + bytes(24_000))
                    event = (await sub.receive()).event
                    assert isinstance(event, ConversationItemInputAudioTranscriptionCompletedEvent)
                    print(f"{event.item_id}: {event.transcript}")
        nursery.cancel_scope.cancel()  # the simulator


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=3, help="utterances (default 3)")
    args = parser.parse_args()
    trio.run(main, args.utterances)
