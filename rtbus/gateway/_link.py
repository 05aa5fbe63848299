"""One connection of the bus client to a gateway: its URL, its opening and closing, its errors.

Invariants:

* The client owns the TCP (or TLS) stream and closes it, whatever happens: trio-websocket
  leaves it open when the peer closed first or the handshake was cancelled.
* trio-websocket's reader runs in a nursery that outlives the client's own tasks on the
  connection, so a close handshake can finish after they stop.
* A nursery of the client's raises a lone exception as itself, not as a group, so a caller
  of ``connect`` catches ``GatewayConnectionError`` (or its own exception) plainly.
* The token goes in the ``Authorization`` header only: never in the URL, a repr or a message.
* A half-open connection (the peer, or a NAT between, forgot it) answers nothing, not even a
  close: a ping left unanswered tells, and the stream is aborted, not closed gracefully.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import trio
import trio_websocket

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.protocol import RtbusError
from rtbus.transport import ConnectOptions, ConnectTarget, keep_alive, open_stream

from ._wire import SUBPROTOCOL

__all__ = [
    "GatewayConnectionError",
    "GatewayError",
    "auth_headers",
    "close_link",
    "closed_error",
    "gateway_url",
    "lost_error",
    "open_link",
    "ping_until_stalled",
    "quiet_nursery",
]

_BUS_PATH: Final = "/v1/bus"
_SCHEMES: Final = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
# Closes that a retry cannot fix: the token (policy violation) and the protocol version.
_FATAL_CLOSES: Final = frozenset({1002, 1008})


class GatewayError(RtbusError):
    """Raised when the service answered a request with an error frame.

    ``code`` is the frame's (``unknown_session``, ``invalid_event``, ... see docs/gateway.md),
    ``message`` what it said was wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return str(self.args[0])


class GatewayConnectionError(RtbusError):
    """Raised when the gateway cannot be reached, refused the connection, or the connection
    was lost before a request was answered.

    ``close_code`` is the WebSocket close code when the gateway closed (1008: the token was
    refused; 1002: the protocol version), else ``None``; ``fatal`` says no reconnect follows.
    """

    def __init__(
        self, message: str, *, close_code: int | None = None, fatal: bool | None = None
    ) -> None:
        super().__init__(message, close_code)
        self.close_code = close_code
        self.fatal = close_code in _FATAL_CLOSES if fatal is None else fatal

    def __str__(self) -> str:
        return str(self.args[0])


async def open_link(
    target: ConnectTarget, options: ConnectOptions, nursery: trio.Nursery
) -> tuple[trio_websocket.WebSocketConnection, trio.abc.Stream]:
    """A handshaken connection to ``target`` whose reader runs in ``nursery``, and its
    stream, which is the caller's to close (``close_link``)."""
    with trio.move_on_after(options.connect_timeout) as deadline:
        link, stream = await handshake(nursery, target, options, subprotocols=[SUBPROTOCOL])
    if deadline.cancelled_caught:
        timeout = options.connect_timeout
        url = target.display_url
        raise GatewayConnectionError(f"connecting to {url} timed out after {timeout:g}s")
    return link, stream


async def handshake(
    nursery: trio.Nursery,
    target: ConnectTarget,
    options: ConnectOptions,
    *,
    subprotocols: list[str],
) -> tuple[trio_websocket.WebSocketConnection, trio.abc.Stream]:
    """A handshaken trio-websocket to ``target`` whose reader runs in ``nursery``, and the
    stream under it, which is the caller's to close (trio-websocket leaks it otherwise)."""
    endpoint = target.endpoint
    stream = await open_stream(endpoint, options)
    try:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            endpoint.host_header,
            endpoint.resource,
            subprotocols=subprotocols,
            extra_headers=target.encoded_headers(),
            message_queue_size=options.message_queue_size,
            max_message_size=options.max_message_size,
            receive_buffer_size=options.receive_buffer_size,
        )
    except BaseException:
        # Rejected, timed out or cancelled: trio-websocket leaves the stream open; it is ours.
        await trio.aclose_forcefully(stream)
        raise
    return ws, stream


async def close_link(
    link: trio_websocket.WebSocketConnection, stream: trio.abc.Stream, grace: float
) -> None:
    """Close ``link`` (bounded and shielded: a cancelled owner still says goodbye, briefly),
    then its stream."""
    with trio.move_on_after(grace, shield=True):
        await link.aclose()
    await trio.aclose_forcefully(stream)


async def ping_until_stalled(
    link: trio_websocket.WebSocketConnection, options: ConnectOptions
) -> GatewayConnectionError | None:
    """Ping ``link`` every ``options.keepalive_interval`` seconds until a ping goes unanswered
    for ``options.pong_timeout``, and say so; None once the connection closed first (the
    reader says why), or at once with no keepalive. The caller then aborts the stream: a
    half-open connection would not answer a close either."""
    interval, pong_timeout = options.keepalive_interval, options.pong_timeout
    if interval is None:
        return None
    try:
        await keep_alive(link.ping, _ignore_rtt, interval=interval, pong_timeout=pong_timeout)
    except trio_websocket.ConnectionClosed:
        return None
    return GatewayConnectionError(f"the gateway answered no ping within {pong_timeout:g}s")


def _ignore_rtt(rtt: float) -> None:
    pass


def lost_error() -> GatewayConnectionError:
    return GatewayConnectionError(
        "the connection to the gateway was lost before the answer came; "
        "the request may or may not have been carried out"
    )


def closed_error(reason: trio_websocket.CloseReason | None) -> GatewayConnectionError:
    if reason is None:
        return GatewayConnectionError("the connection to the gateway ended")
    detail = f": {reason.reason}" if reason.reason else ""
    message = f"the gateway closed the connection with {reason.code}{detail}"
    return GatewayConnectionError(message, close_code=reason.code)


def auth_headers(token: str | None) -> list[tuple[str, str]]:
    if token is None:
        return []
    # Checked without showing it: a header break would let it smuggle other headers.
    if not isinstance(token, str) or not token or not token.isprintable() or token != token.strip():
        raise ValueError("token must be a non-empty printable string without surrounding spaces")
    return [("authorization", f"Bearer {token}")]


def gateway_url(url: str) -> str:
    """The gateway's WebSocket URL for ``url``: ``http(s)`` becomes ``ws(s)`` and an empty
    path becomes ``/v1/bus``. Raises ``ValueError`` for another scheme, or credentials in it
    (the token goes in a header, never in the URL)."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ValueError("the gateway URL must be ws://, wss://, http:// or https:// with a host")
    if parts.username is not None or parts.password is not None or "token" in parts.query:
        raise ValueError("the gateway URL must not carry credentials: pass token= instead")
    path = parts.path if parts.path.strip("/") else _BUS_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


@asynccontextmanager
async def quiet_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery that raises a lone exception as itself: a caller of ``connect`` should see
    ``GatewayConnectionError`` (or its own exception), not a group around it."""
    with unwrap_lone_exception():
        async with trio.open_nursery() as nursery:
            yield nursery
