"""Events to push through the Redis bridge in tests: valid Realtime frames, published as the
session actor publishes them (the decoded event with its raw bytes)."""

from __future__ import annotations

import base64

import orjson

from rtbus.bus import Bus, Envelope
from rtbus.protocol import decode_server_event

__all__ = ["AUDIO", "TEXT", "frame", "publish"]

AUDIO = "response.output_audio.delta"
TEXT = "response.output_text.delta"


def frame(type: str, n: int, *, audio_bytes: int = 16) -> bytes:
    """A valid server frame of ``type`` (an audio or text delta) numbered ``n``."""
    delta = base64.b64encode(bytes(audio_bytes)).decode() if type == AUDIO else f"word{n} "
    return orjson.dumps(
        {
            "type": type,
            "event_id": f"event_{n}",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": delta,
        }
    )


async def publish(bus: Bus, session_id: str, type: str, n: int) -> Envelope:
    """Publish frame ``n`` of ``type`` for ``session_id``, raw bytes and all."""
    raw = frame(type, n)
    return await bus.publish(session_id, type, decode_server_event(raw), received_at=0.0, raw=raw)
