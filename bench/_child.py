"""What a benchmark shares with the child processes it starts (a client, a consumer): the
lines they answer with, and upstream frames stamped with the time they were published.

The stamp is ``time.perf_counter_ns()``: the system's monotonic clock, the same in every
process on the machine (trio's clock is not: each run adds its own offset).
"""

from __future__ import annotations

import attrs
import orjson
import trio

_STAMP = b'"event_id":"t'
_FIELDS: dict[str, object] = {"response_id": "resp_1", "item_id": "item_1"}


class Lines:
    """The lines a child writes to its stdout, one at a time."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        """The next line, without its newline; ``RuntimeError`` if the child ended first."""
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some()
            if not data:
                raise RuntimeError("the benchmark's child process ended without answering")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


@attrs.frozen
class Stamped:
    """An event's upstream frame cut where its stamp goes (its ``event_id``):
    ``head + ns + tail``."""

    head: bytes
    tail: bytes

    @classmethod
    def of(cls, payload: dict[str, object]) -> Stamped:
        """The frame of a response delta with ``payload``'s ``type`` and fields."""
        fields = {"type": payload["type"], "event_id": "t0", **_FIELDS}
        frame = orjson.dumps(fields | {"output_index": 0, "content_index": 0} | payload)
        head, _, tail = frame.partition(b"t0")
        return cls(head + b"t", tail)

    def frame(self, ns: int) -> bytes:
        return b"".join((self.head, str(ns).encode(), self.tail))


def stamp_of(raw: bytes) -> int:
    """The ``perf_counter_ns`` a frame was published at."""
    at = raw.index(_STAMP) + len(_STAMP)
    return int(raw[at : raw.index(b'"', at)])
