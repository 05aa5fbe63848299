"""Events to push through the Redis bridge in tests: valid Realtime frames, published as the
session actor publishes them (the decoded event with its raw bytes), a steady load of them,
and what of them is in Redis."""

from __future__ import annotations

import base64
from collections import Counter

import orjson
import trio

from rtbus.bus import Bus, Envelope
from rtbus.protocol import decode_server_event
from support.polling import eventually
from support.redis_server import RedisServer

__all__ = ["AUDIO", "KEYS", "TEXT", "Load", "frame", "in_redis", "publish"]

KEYS = (b"{rtbus}:events:audio", b"{rtbus}:events:events")
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


class Load:
    """Publishes mixed events for a few sessions as fast as the bus takes them, until stopped."""

    def __init__(self, bus: Bus, sessions: int = 5) -> None:
        self.bus = bus
        self.sessions = sessions
        self.published: set[tuple[str, int]] = set()
        self.running = True

    async def run(self) -> None:
        n = 0
        while self.running:
            session = f"s{n % self.sessions}"
            envelope = await publish(self.bus, session, AUDIO if n % 4 else TEXT, n)
            self.published.add((envelope.session_id, envelope.seq))
            n += 1
            if n % 25 == 0:
                await trio.sleep(0.001)  # a steady stream, not one burst

    async def more(self, count: int) -> None:
        target = len(self.published) + count
        await eventually(lambda: len(self.published) >= target)


async def in_redis(server: RedisServer) -> Counter[tuple[str, int]]:
    """(session, seq) of every entry in the event streams, with how many copies of each."""
    found: Counter[tuple[str, int]] = Counter()
    async with server.client() as redis:
        for key in KEYS:
            for entry in await redis.xrange(key):
                fields = entry.field_values
                session = fields[b"session"]
                assert isinstance(session, bytes)
                found[session.decode(), int(fields[b"seq"])] += 1
    return found
