"""The bus gateway's WebSocket, served straight off the socket (``GET /v1/bus``).

The HTTP surface's door (``_http_door``) hands a connection whose request line asks for the
bus here, with the bytes it read to tell; hypercorn never sees it. The upgrade runs on
websockets' sans-IO ``ServerProtocol`` and the connection then on the same ``Wire`` as every
client connection rtbus opens, so each frame costs what it costs the client: hypercorn's ASGI
layers and wsproto cost the service two to three times more per gateway message
(BENCHMARKS.md).

Invariants:

* The request head is read within ``HANDSHAKE_SECONDS`` and at most ``_HEAD_LIMIT`` bytes;
  a request that is not a valid WebSocket upgrade gets websockets' 400 or 426 answer and the
  connection closes. websockets logs its warnings only: at DEBUG it would log the request's
  headers, the bearer token among them.
* The protocol is given the head alone: the bytes after it (the client's first frames) go to
  the wire, which cuts frames from a frame boundary.
* The stream is closed here whenever no wire is handed back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import trio
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from rtbus._replay import read_until
from rtbus.gateway import SUBPROTOCOL
from rtbus.transport import ConnectOptions, Wire

from ._http_wire import header_map

__all__ = ["HANDSHAKE_SECONDS", "WIRE_OPTIONS", "Refused", "Upgraded", "upgrade"]

HANDSHAKE_SECONDS: Final = 10.0
"""How long a client has to send its whole request head."""
_HEAD_LIMIT: Final = 64 * 1024  # websockets' own limits (8 KiB lines, 128 headers) are below
_HEAD_END: Final = b"\r\n\r\n"
_UNREADABLE: Final = "Failed to open a WebSocket connection: not a valid HTTP/1.1 request.\n"
# What the wire takes: hypercorn's default message limit, which the gateway had before; a
# request past ``Limits.max_frame_bytes`` below it gets an error frame, not a close.
WIRE_OPTIONS: Final = ConnectOptions(max_message_size=16 * 1024 * 1024, message_queue_size=64)


class _QuietLog(logging.LoggerAdapter[logging.Logger]):
    """websockets' log, its warnings only: at DEBUG it writes every request header (the
    token among them), at INFO a line per connection opened or refused."""

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and super().isEnabledFor(level)


_LOG: Final = _QuietLog(logging.getLogger("rtbus.gateway.socket"))


@attrs.frozen
class Upgraded:
    """An accepted upgrade: the open wire, the request's headers (names in lower case, the
    first of repeated ones) and the subprotocols it offered."""

    wire: Wire
    headers: Mapping[str, str] = attrs.field(repr=False)  # the bearer token among them
    offered: list[str]

    @classmethod
    def of(cls, wire: Wire, request: Request) -> Upgraded:
        # As the HTTP surface reads headers (latin-1): websockets keeps a byte it cannot
        # decode as a surrogate, which no check could encode back.
        raw = request.headers.raw_items()
        headers = header_map((n.encode(), v.encode("ascii", "surrogateescape")) for n, v in raw)
        offered = request.headers.get_all("Sec-WebSocket-Protocol")
        return cls(wire, headers, [name.strip() for value in offered for name in value.split(",")])


@attrs.frozen
class Refused:
    """An upgrade answered with ``status`` (400: not a valid HTTP/1.1 upgrade; 426: not an
    upgrade at all), its connection closed."""

    status: int


def _choose(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # Accept without one rather than answer 400: the gateway then closes with 1002 and a
    # reason a person can read (``gateway_endpoint``).
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


async def upgrade(stream: trio.abc.Stream, early: bytes) -> Upgraded | Refused | None:
    """Read the upgrade request (``early``: what was read of it already) and answer it: the
    open wire; or, its stream closed, how it was refused, or None if the client went away
    (or ran out of time) before its request was whole."""
    protocol = ServerProtocol(
        select_subprotocol=_choose, max_size=WIRE_OPTIONS.max_message_size, logger=_LOG
    )
    outcome: Refused | None = None
    try:
        with trio.move_on_after(HANDSHAKE_SECONDS):
            taken = await _request(stream, protocol, early)
            if isinstance(taken, Refused):
                outcome = taken
            elif taken is not None:
                request, rest = taken
                response = protocol.accept(request)
                protocol.send_response(response)
                accepted = response.status_code == 101
                outcome = None if accepted else Refused(response.status_code)
                await stream.send_all(b"".join(protocol.data_to_send()))
                if accepted:
                    return Upgraded.of(Wire(stream, protocol, WIRE_OPTIONS, rest), request)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    await trio.aclose_forcefully(stream)
    return outcome


async def _request(
    stream: trio.abc.Stream, protocol: ServerProtocol, early: bytes
) -> tuple[Request, bytes] | Refused | None:
    """The request and the bytes after its head; a refusal (sent) if it is none; None if
    the stream ended before the head did."""
    head = await read_until(stream, _HEAD_END, _HEAD_LIMIT, early)
    if head is None:
        return None
    end = head.find(_HEAD_END)
    cut = len(head) if end < 0 else end + len(_HEAD_END)
    protocol.receive_data(head[:cut])
    for event in protocol.events_received():
        if isinstance(event, Request):
            return event, head[cut:]
    # Not a request websockets can read (too long, malformed, not HTTP/1.1): its parser has
    # ended the connection, so the answer is written here.
    refused = Refused(400)
    await stream.send_all(protocol.reject(refused.status, _UNREADABLE).serialize())
    return refused
