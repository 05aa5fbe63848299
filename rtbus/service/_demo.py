"""The demo workload: a few sessions holding voice turns with synthetic user speech.

It is what ``rtbus serve`` runs on the embedded simulator, so the metrics and the dashboard
show life on a fresh machine with no API key: each session speaks for a second, falls
silent, lets server VAD answer it with a spoken response, and waits for its next turn. A
worker takes every response event, as a transcript store would, and logs each transcript
at debug level: the bus has a subscriber, so its latency shows too.
"""

from __future__ import annotations

import base64
import logging

import trio

from rtbus import sim
from rtbus.bus import Envelope
from rtbus.session import Session

from ._service import Service

__all__ = ["run_demo", "speak"]

_VOICE_TURN = {
    "instructions": "You are a friendly demo voice agent.",
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}},
}
_APPEND_BYTES = 4800  # 100 ms of PCM16 at 24 kHz: the size a real microphone loop sends
_APPEND_SECONDS = 0.1


_log = logging.getLogger("rtbus.demo")


async def run_demo(service: Service, sessions: int, turn_seconds: float) -> None:
    """Run ``sessions`` demo sessions (``demo-1``...) until cancelled; returns at once for 0."""
    if sessions:
        await service.add_worker(_transcripts, types="response.*", id="demo-transcripts")
    async with trio.open_nursery() as demo:
        for n in range(sessions):
            demo.start_soon(_demo_session, service, f"demo-{n + 1}", turn_seconds)


async def _demo_session(service: Service, id: str, turn_seconds: float) -> None:
    session = await service.open_session(id=id, session=_VOICE_TURN)
    while True:
        await speak(session, seconds=1.0)
        await trio.sleep(turn_seconds)


async def speak(session: Session, *, seconds: float) -> None:
    """A user turn: ``seconds`` of speech, then half a second of silence that server VAD
    ends the turn on, in 100 ms appends at real time."""
    speech = sim.speech_like_pcm16(seconds)
    silence = bytes(len(sim.speech_like_pcm16(0.5)))
    for audio in (speech, silence):
        for start in range(0, len(audio), _APPEND_BYTES):
            chunk = base64.b64encode(audio[start : start + _APPEND_BYTES]).decode()
            await session.send({"type": "input_audio_buffer.append", "audio": chunk})
            await trio.sleep(_APPEND_SECONDS)


def _transcripts(envelope: Envelope) -> None:
    transcript = getattr(envelope.event, "transcript", None)
    if envelope.type == "response.output_audio_transcript.done" and transcript:
        _log.debug("demo transcript session=%s text=%r", envelope.session_id, transcript)
