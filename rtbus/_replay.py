"""The start of a connection, read before it is known who serves it, and given back.

Two front doors read the start of a connection before they know who serves it: the
simulator's (its WebSocket API and its REST API share a port) and the service's HTTP surface
(the bus gateway beside hypercorn). Each hands the chosen server the stream with what it read
put back in front (``ReplayStream``), so that server sees the connection from its first byte.
The service's reads up to a marker (``read_until``): the end of the request line, then the
end of the gateway's request head.

It imports nothing from rtbus, so any layer can use it.
"""

from __future__ import annotations

from typing import Final

import trio

__all__ = ["ReplayStream", "read_until"]

_RECEIVE: Final = 64 * 1024


async def read_until(
    stream: trio.abc.ReceiveStream, marker: bytes, limit: int, data: bytes = b""
) -> bytes | None:
    """``data`` and what ``stream`` brings after it, until they hold ``marker`` or pass
    ``limit`` bytes; None if the stream ends first. Each byte is searched once: a peer that
    dribbles its bytes costs one scan in all, not one per receive. Unbounded in time: the
    caller brings the deadline."""
    buffer, searched = bytearray(data), 0
    while buffer.find(marker, searched) < 0 and len(buffer) <= limit:
        searched = max(0, len(buffer) - len(marker) + 1)
        received = await stream.receive_some(_RECEIVE)
        if not received:
            return None
        buffer += received
    return bytes(buffer)


class ReplayStream(trio.abc.HalfCloseableStream):
    """``stream`` with ``prefix`` put back in front of what it receives. ``socket`` is the
    stream's (a server may read the addresses from it)."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self.stream = stream
        self.socket = stream.socket
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            chunk, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return chunk
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()
