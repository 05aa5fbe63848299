"""One connection of the bus client to a gateway: its URL, its opening and closing, its errors.

The connection is a ``rtbus.transport.Wire``, the WebSocket the upstream connections use: no
reader task of its own and no channel, so a server message costs the client's reading task one
pass, not a hop through another task.

Invariants:

* The client owns the connection and closes it, whatever happens: ``Wire.close_within``
  says goodbye within a bound, then closes the stream.
* A nursery of the client's raises a lone exception as itself, not as a group, so a caller
  of ``connect`` catches ``GatewayConnectionError`` (or its own exception) plainly.
* The token goes in the ``Authorization`` header only: never in the URL, a repr or a message.
* A half-open connection (the peer, or a NAT between, forgot it) answers nothing, not even a
  close: a ping left unanswered tells, and the stream is aborted, not closed gracefully. A
  connection that brings events is alive: pings go out only after ``keepalive_interval`` of
  silence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import trio

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.protocol import ConnectionClosedError, RtbusError
from rtbus.transport import (
    ConnectError,
    ConnectOptions,
    ConnectTarget,
    ConnectTimeoutError,
    Wire,
    keep_alive,
    open_wire,
)

from ._wire import SUBPROTOCOL

__all__ = [
    "GatewayConnectionError",
    "GatewayError",
    "auth_headers",
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


async def open_link(target: ConnectTarget, options: ConnectOptions) -> Wire:
    """A handshaken connection to ``target``, which the caller reads and closes
    (``Wire.close_within``); raises ``GatewayConnectionError`` when it cannot be opened."""
    try:
        return await open_wire(target, options, subprotocols=[SUBPROTOCOL])
    except ConnectTimeoutError:
        timeout, url = options.connect_timeout, target.display_url
        raise GatewayConnectionError(f"connecting to {url} timed out after {timeout:g}s") from None
    except ConnectError as exc:
        # Most say where they could not connect; a refusal (an HTTP status) does not.
        message = str(exc)
        if target.display_url not in message:
            message = f"could not connect to {target.display_url}: {message}"
        raise GatewayConnectionError(message) from None


async def ping_until_stalled(link: Wire, options: ConnectOptions) -> GatewayConnectionError | None:
    """Ping ``link`` after every ``options.keepalive_interval`` seconds of silence until a
    ping goes unanswered for ``options.pong_timeout``, and say so; None once the connection
    closed first (the reader says why), or at once with no keepalive. The caller then aborts
    the link: a half-open connection would not answer a close either."""
    interval, pong_timeout = options.keepalive_interval, options.pong_timeout
    if interval is None:
        return None
    try:
        await keep_alive(
            link.ping,
            _ignore_rtt,
            interval=interval,
            pong_timeout=pong_timeout,
            heard_at=lambda: link.heard_at,
        )
    except ConnectionClosedError:
        return None
    return GatewayConnectionError(f"the gateway answered no ping within {pong_timeout:g}s")


def _ignore_rtt(rtt: float) -> None:
    pass


def lost_error() -> GatewayConnectionError:
    return GatewayConnectionError(
        "the connection to the gateway was lost before the answer came; "
        "the request may or may not have been carried out"
    )


def closed_error(link: Wire | None) -> GatewayConnectionError:
    """How ``link`` ended, as an error; fatal only for the refusals the gateway itself sent
    (a close of ours after garbage on the stream is a 1002 too, and worth a reconnect)."""
    if link is None or link.close is None:
        return GatewayConnectionError("the connection to the gateway ended")
    status = link.close
    detail = f": {status.reason}" if status.reason else ""
    if not link.peer_closed:
        message = f"the connection to the gateway ended with {status.code}{detail}"
        return GatewayConnectionError(message, close_code=status.code, fatal=False)
    message = f"the gateway closed the connection with {status.code}{detail}"
    return GatewayConnectionError(message, close_code=status.code)


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
