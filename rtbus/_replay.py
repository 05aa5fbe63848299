"""A socket stream whose first bytes were read already, to tell whose the connection is.

Two front doors read the start of a connection before they know who serves it: the
simulator's (its WebSocket API and its REST API share a port) and the service's HTTP surface
(the bus gateway beside hypercorn). Each hands the chosen server the stream with what it read
put back in front, so that server sees the connection from its first byte.

It imports nothing from rtbus, so any layer can use it.
"""

from __future__ import annotations

import trio

__all__ = ["ReplayStream"]


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
