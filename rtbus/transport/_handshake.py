"""Opening a connection: TCP (and TLS), then the WebSocket upgrade, on websockets' sans-IO
``ClientProtocol``.

Invariants:

* Nothing here bounds time or translates errors: the caller brings its deadline and maps
  the exceptions (``_exceptions.map_exceptions``), so one ``connect_timeout`` covers TCP, TLS
  and the upgrade together.
* ``open_stream`` hands back an open stream or closes what it opened; the stream given to
  ``upgrade`` stays the caller's to close, whatever the upgrade raised.
* The protocol handed back is ``OPEN`` and may already hold frames that arrived in the same
  segments as the ``101`` answer: the reader takes them first, so none is lost.
* A refusal is ``InvalidStatus`` with the response's status and body (chunked bodies too);
  anything else wrong with the answer is another ``InvalidHandshake``.
"""

from __future__ import annotations

import functools
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
) -> ClientProtocol:
    """Upgrade ``stream`` to a WebSocket to ``target``: the protocol, ``OPEN``.

    Raises the handshake's ``InvalidHandshake`` (``InvalidStatus`` for a refusal).
    """
    protocol = ClientProtocol(
        parse_uri(target.url),
        subprotocols=None if subprotocols is None else [Subprotocol(s) for s in subprotocols],
        max_size=options.max_message_size,
    )
    request = protocol.connect()
    for name, value in target.headers:
        request.headers[name] = value
    protocol.send_request(request)
    await stream.send_all(b"".join(protocol.data_to_send()))
    while protocol.state is State.CONNECTING and protocol.handshake_exc is None:
        data = await stream.receive_some(options.receive_buffer_size)
        if data:
            protocol.receive_data(bytes(data))  # A no-op on bytes; TLS may give a bytearray.
        else:
            protocol.receive_eof()
    if protocol.handshake_exc is not None:
        raise protocol.handshake_exc
    return protocol


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the trust store takes milliseconds: once per process, not per connection.
    return ssl.create_default_context()
