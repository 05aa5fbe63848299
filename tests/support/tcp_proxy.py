"""A TCP relay on 127.0.0.1 in front of a real server, for what the network does to a client.

``cut`` makes every connection open now half-open, as when a NAT or a load balancer forgets
it: bytes stop flowing both ways, and neither side gets a FIN or a reset. Connections made
afterwards are relayed as usual, so a client that notices can reconnect.

``coalesce`` holds what the server sends on a connection until the bytes so far satisfy it,
then hands them to the client in one write: a test can make the client read two of the
server's messages in one receive, an ordering that is otherwise only likely.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import trio

__all__ = ["TcpProxy", "handshake_then_close"]


class TcpProxy:
    """Relays connections to ``127.0.0.1:target_port``; start it with ``nursery.start``."""

    def __init__(
        self, target_port: int, *, coalesce: Callable[[bytes], bool] | None = None
    ) -> None:
        self.target_port = target_port
        self.port = 0
        self._coalesce = coalesce
        self._cut = trio.Event()
        self.connections = 0
        self.bytes_from_clients = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/bus"

    async def run(self, *, task_status: trio.TaskStatus[TcpProxy]) -> None:
        serve = functools.partial(trio.serve_tcp, self._relay, 0, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            listeners: list[trio.SocketListener] = await nursery.start(serve)
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self)

    def cut(self) -> None:
        """Make every connection open now half-open; later ones are relayed."""
        self._cut.set()
        self._cut = trio.Event()

    async def _relay(self, client: trio.SocketStream) -> None:
        self.connections += 1
        cut = self._cut
        async with (
            client,
            await trio.open_tcp_stream("127.0.0.1", self.target_port) as server,
            trio.open_nursery() as nursery,
        ):
            done = nursery.cancel_scope
            nursery.start_soon(self._pump, client, server, cut, done, None, self._count)
            nursery.start_soon(self._pump, server, client, cut, done, self._coalesce, None)

    def _count(self, chunk: bytes) -> None:
        self.bytes_from_clients += len(chunk)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        cut: trio.Event,
        done: trio.CancelScope,
        coalesce: Callable[[bytes], bool] | None,
        count: Callable[[bytes], None] | None,
    ) -> None:
        held = b""
        try:
            async for received in source:
                if cut.is_set():
                    await trio.sleep_forever()  # the bytes are lost; nobody is told
                chunk = bytes(received)
                if count is not None:
                    count(chunk)
                held += chunk
                if coalesce is None or coalesce(held):
                    coalesce = None  # once: then relay as it comes
                    await sink.send_all(held)
                    held = b""
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if not cut.is_set():
            done.cancel()  # one side hung up: so does the relay, both ways


def handshake_then_close(data: bytes) -> bool:
    """Whether ``data`` holds a WebSocket handshake's response and, after it, a
    whole close frame (a server's frames are unmasked; the first byte is FIN + opcode 8)."""
    _, ended, frames = data.partition(b"\r\n\r\n")
    if not ended or len(frames) < 2 or frames[0] != 0x88:
        return False
    return len(frames) >= 2 + frames[1]  # the whole frame: a short reason, no extended length
