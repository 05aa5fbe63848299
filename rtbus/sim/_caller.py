"""The person on the other end of a simulated phone call: speaks, pauses, hangs up.

A ``Caller`` runs beside a call's control connection (a ``Companion`` of ``SimConnection``)
and feeds the session ``input_audio_buffer.append`` frames as the phone line would deliver
the caller's voice: ``speech_seconds`` of the simulator's speech-like audio, then silence,
``pause_seconds`` after the agent's answer ends, paced like audio (``SimOptions.speed``). The
session's own machinery does the rest: server VAD hears the speech (``speech_started`` and
``speech_stopped``), commits it, transcribes it if asked, and answers with a response. After
``turns`` turns the caller hangs up: the call ends and the control WebSocket is closed with
1000 ``"call ended"``.

The real service's close on a hang-up is not documented; rtbus's simulator chooses a normal
closure (1000), so a client treats it as the end of the session and does not reconnect.

VAD runs on ``audio/pcm`` only (as everywhere in the simulator): with a G.711 input format and
turn detection on, the caller commits each turn and asks for a response, standing in for the
VAD; with turn detection off, committing is the controller's job, as with the real service.
"""

from __future__ import annotations

import base64
from typing import Final

import attrs
import orjson
import trio

from ._audio import _chunk, audio_format
from ._calls import Call, CallState
from ._connection import Companion, SimConnection

__all__ = ["Caller", "HANGUP_CODE", "HANGUP_REASON"]

HANGUP_CODE: Final = 1000
HANGUP_REASON: Final = "call ended"
_CHUNK_SECONDS: Final = 0.1
# Silence after each utterance: past server VAD's default 500 ms, so the turn ends.
_TRAILING_SILENCE: Final = 0.8
_SILENCE_BYTE: Final = {"audio/pcm": 0x00, "audio/pcmu": 0xFF, "audio/pcma": 0xD5}


@attrs.frozen
class Caller:
    """How the caller behaves; one instance serves every call of a server."""

    turns: int = 3
    speech_seconds: float = 1.0
    pause_seconds: float = 4.0
    speed: float | None = 1.0

    def companion(self, call: Call) -> Companion:
        """The task that plays this caller on ``call``'s control connection."""

        async def speak(connection: SimConnection) -> None:
            await self._converse(call, connection)

        return speak

    async def _converse(self, call: Call, connection: SimConnection) -> None:
        # turns_taken lives on the call: a control connection that reconnects mid-call
        # does not restart the conversation.
        while call.turns_taken < self.turns and call.state is CallState.ACTIVE:
            await self._wait(self.pause_seconds)
            await self._say(connection)
            call.turns_taken += 1
            await connection.wait_quiet()
        await self._wait(self.pause_seconds)
        call.end(CallState.ENDED, "caller hung up")

    async def _say(self, connection: SimConnection) -> None:
        format_type = _input_format(connection)
        speech = _chunk(format_type, 0, audio_format(format_type).bytes_for(self.speech_seconds))
        silence = bytes([_SILENCE_BYTE.get(format_type, 0)]) * audio_format(format_type).bytes_for(
            _TRAILING_SILENCE
        )
        await self._stream(connection, format_type, speech + silence)
        if format_type != "audio/pcm" and _vad_on(connection):
            # What the real service's VAD would do with G.711, which the simulator's cannot.
            await connection.feed(orjson.dumps({"type": "input_audio_buffer.commit"}))
            await connection.feed(orjson.dumps({"type": "response.create"}))

    async def _stream(self, connection: SimConnection, format_type: str, audio: bytes) -> None:
        step = audio_format(format_type).bytes_for(_CHUNK_SECONDS)
        for start in range(0, len(audio), step):
            chunk = base64.b64encode(audio[start : start + step]).decode()
            await connection.feed(
                orjson.dumps({"type": "input_audio_buffer.append", "audio": chunk})
            )
            await self._wait(_CHUNK_SECONDS)

    async def _wait(self, seconds: float) -> None:
        if self.speed is None:
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep(seconds / self.speed)


def _input_format(connection: SimConnection) -> str:
    return str(_dig(connection.session.session, "audio", "input", "format", "type"))


def _vad_on(connection: SimConnection) -> bool:
    return isinstance(_dig(connection.session.session, "audio", "input", "turn_detection"), dict)


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
