"""The simulator's front door: one port for the WebSocket API and the REST API.

The server reads each connection's first request head with h11. A WebSocket upgrade is handed
to trio-websocket with the bytes already read put back in front of the stream
(``rtbus._replay.ReplayStream``), so the handshake code sees the connection from its first
byte; any other request is plain HTTP, answered here (keep-alive, one request at a time) by a
``handler``.

Why not a second server (hypercorn) on another port: the calls API and the WebSocket share
one ``base_url`` in every client (``{base_url}/realtime/calls`` and ``{base_url}/realtime``),
and the WebSocket side must keep owning its raw TCP stream so that faults can cut it.

Invariants:

* A request head larger than ``MAX_HEAD`` or a body larger than ``MAX_BODY`` is answered
  413/431 and the connection closed; a malformed request is answered 400 and closed.
* The replayed stream yields exactly the bytes the peer sent, in order, then the live stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import h11
import trio

from ._calls import Reply

__all__ = [
    "MAX_HEAD",
    "FrontDoor",
    "PlainRequest",
    "Upgrade",
    "read_front_door",
    "serve_plain",
]

MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 4 * 1024 * 1024
_RECEIVE: Final = 64 * 1024


@attrs.frozen
class PlainRequest:
    """An HTTP request that is not a WebSocket upgrade."""

    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> str:
        """The first value of header ``name`` (lower case), or ``""``."""
        return next((v.decode("latin-1") for n, v in self.headers if n == name), "")


@attrs.frozen
class Upgrade:
    """A WebSocket upgrade: the bytes read so far, to be replayed to the handshake."""

    consumed: bytes


FrontDoor = Upgrade | PlainRequest | None
Handler = Callable[[PlainRequest], Awaitable[Reply]]


async def read_front_door(stream: trio.SocketStream, connection: h11.Connection) -> FrontDoor:
    """The first request on ``stream``: an upgrade, a plain request, or ``None`` (gone)."""
    consumed = bytearray()
    event = await _next_event(stream, connection, consumed)
    if not isinstance(event, h11.Request):
        return None
    if _is_upgrade(event):
        return Upgrade(bytes(consumed))
    return await _finish(stream, connection, event)


async def serve_plain(
    stream: trio.SocketStream,
    connection: h11.Connection,
    first: PlainRequest,
    handler: Handler,
    *,
    idle_timeout: float,
) -> None:
    """Answer ``first`` and every later request on the connection, until either side closes
    or ``idle_timeout`` passes with no new request."""
    request: PlainRequest | None = first
    while request is not None:
        await _respond(stream, connection, await handler(request))
        if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
            return
        connection.start_next_cycle()
        request = None
        with trio.move_on_after(idle_timeout):
            event = await _next_event(stream, connection, bytearray())
            if isinstance(event, h11.Request):
                request = await _finish(stream, connection, event)


async def _finish(
    stream: trio.SocketStream, connection: h11.Connection, head: h11.Request
) -> PlainRequest | None:
    declared = dict(head.headers).get(b"content-length", b"0")
    if declared.isdigit() and int(declared) > MAX_BODY:
        await _refuse(stream, connection, 413, "request body too large")
        return None
    body = bytearray()
    while True:
        event = await _next_event(stream, connection, bytearray())
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                await _refuse(stream, connection, 413, "request body too large")
                return None
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            return None
    target = head.target.decode("latin-1")
    return PlainRequest(head.method.decode(), target, tuple(head.headers), bytes(body))


async def _next_event(
    stream: trio.SocketStream, connection: h11.Connection, consumed: bytearray
) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED] | None:
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            # h11's hint is 400, or 431 for a head past max_incomplete_event_size.
            await _refuse(stream, connection, exc.error_status_hint, "malformed request")
            return None
        if event is not h11.NEED_DATA:
            return event
        if len(consumed) > MAX_HEAD:
            await _refuse(stream, connection, 431, "request head too large")
            return None
        data = await _receive(stream)
        consumed += data
        connection.receive_data(data)
        if not data:
            return None


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(_RECEIVE)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


def _is_upgrade(request: h11.Request) -> bool:
    return any(n == b"upgrade" and v.lower() == b"websocket" for n, v in request.headers)


async def _respond(stream: trio.SocketStream, connection: h11.Connection, reply: Reply) -> None:
    headers = [*reply.headers, ("content-length", str(len(reply.body)))]
    data = connection.send(h11.Response(status_code=reply.status, headers=headers)) or b""
    data += connection.send(h11.Data(data=reply.body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def _refuse(
    stream: trio.SocketStream, connection: h11.Connection, status: int, message: str
) -> None:
    # A server may answer a broken request before reading it whole (IDLE) or after.
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    reply = Reply.error(status, message, None)
    reply = attrs.evolve(reply, headers=(*reply.headers, ("connection", "close")))
    await _respond(stream, connection, reply)
