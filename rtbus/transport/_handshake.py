"""Opening a connection: TCP (and TLS), then the WebSocket upgrade, on websockets' sans-IO
``ClientProtocol``.

Invariants:

* Nothing here bounds time or translates errors: the caller brings its deadline and maps
  the exceptions (``_exceptions.map_exceptions``), so one ``connect_timeout`` covers TCP, TLS
  and the upgrade together.
* ``open_stream`` hands back an open stream or closes what it opened; the stream given to
  ``upgrade`` stays the caller's to close, whatever the upgrade raised.
* The protocol handed back is ``OPEN`` and has parsed nothing past the ``101`` answer; the
  bytes that arrived after it in the same segments are handed back beside it, for the wire
  to read first, so no frame is lost.
* Nothing is logged at DEBUG: websockets would log the request's headers, secrets included.
* A refusal is ``InvalidStatus`` with the response's status and body (chunked bodies too);
  anything else wrong with the answer is another ``InvalidHandshake``.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Sequence

import trio
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ._options import ConnectOptions
from ._target import ConnectTarget, Endpoint

__all__ = ["Stream", "open_stream", "upgrade"]

Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]


class _QuietLog(logging.LoggerAdapter[logging.Logger]):
    """websockets' log with its DEBUG level switched off for good: at DEBUG it writes every
    request header (the API key among them) and every frame, whatever the app configured."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and super().isEnabledFor(level)


_LOG = _QuietLog(logging.getLogger("websockets.client"))
# websockets' own limits (8 KiB lines, 128 headers) are far below this.
_HEAD_LIMIT = 1024 * 1024


async def open_stream(endpoint: Endpoint, options: ConnectOptions) -> Stream:
    """A TCP stream to ``endpoint``, wrapped in TLS (handshaken) when it wants TLS."""
    if not endpoint.tls:
        return await trio.open_tcp_stream(endpoint.host, endpoint.port)
    context = options.ssl_context or _default_ssl_context()
    stream = await trio.open_ssl_over_tcp_stream(
        endpoint.host, endpoint.port, ssl_context=context, https_compatible=True
    )
    try:
        # Now, not lazily on the first read, so a certificate error fails the connect at
        # once and reads as a TLS failure.
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def upgrade(
    stream: Stream,
    target: ConnectTarget,
    options: ConnectOptions,
    *,
    subprotocols: Sequence[str] | None = None,
) -> tuple[ClientProtocol, bytes]:
    """Upgrade ``stream`` to a WebSocket to ``target``: the protocol, ``OPEN``, and the bytes
    that came after the ``101`` answer (the start of the first frames), not yet parsed.

    Raises the handshake's ``InvalidHandshake`` (``InvalidStatus`` for a refusal).
    """
    protocol = ClientProtocol(
        parse_uri(target.url),
        subprotocols=None if subprotocols is None else [Subprotocol(s) for s in subprotocols],
        max_size=options.max_message_size,
        logger=_LOG,
    )
    request = protocol.connect()
    for name, value in target.headers:
        request.headers[name] = value
    protocol.send_request(request)
    await stream.send_all(b"".join(protocol.data_to_send()))
    head: bytearray | None = bytearray()
    while _waiting(protocol):
        data = await stream.receive_some(options.receive_buffer_size)
        if not data:
            protocol.receive_eof()
        elif head is None:
            protocol.receive_data(bytes(data))  # The rest of a refusal's body.
        else:
            head += data
            early = _answer(protocol, head)
            if early is not None:
                if _opened(protocol):
                    protocol.events_received()  # The 101 answer: the wire reads frames only.
                    return protocol, early
                head = None
    if protocol.handshake_exc is None:
        raise AssertionError("the handshake ended neither open nor failed")
    raise protocol.handshake_exc


def _waiting(protocol: ClientProtocol) -> bool:
    return protocol.state is State.CONNECTING and protocol.handshake_exc is None


def _opened(protocol: ClientProtocol) -> bool:
    return protocol.state is State.OPEN


def _answer(protocol: ClientProtocol, head: bytearray) -> bytes | None:
    """Give the protocol the answer's head once it is whole; what came after it (frames, or
    the start of a refusal's body, which the protocol is then given too), or ``None`` while
    the head is incomplete.

    The protocol gets the head alone because the frames after it are cut by the wire, which
    must start at a frame boundary (``Wire._split``). A head past ``_HEAD_LIMIT`` without its
    end goes to the protocol whole: it refuses it.
    """
    end = head.find(b"\r\n\r\n")
    if end < 0 and len(head) <= _HEAD_LIMIT:
        return None
    cut = len(head) if end < 0 else end + 4
    protocol.receive_data(bytes(head[:cut]))
    rest = bytes(head[cut:])
    if not _opened(protocol) and rest:
        protocol.receive_data(rest)
    return rest


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the trust store takes milliseconds: once per process, not per connection.
    return ssl.create_default_context()
