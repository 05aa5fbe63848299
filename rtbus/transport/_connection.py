"""``RealtimeWebSocket``: the Realtime emitter on one trio-websocket connection.

Invariants:

* Reading has one path, ``_next_event``: read a frame, decode it, return the event. Both
  ``dispatch_events()`` and ``async for`` go through it and then through ``_dispatch``, so
  handlers see every event whichever style drives the connection.
* Every failure goes through the emitter's one error path (``_on_error``): a server ``error``
  event, an unreadable or binary frame, an abnormal close, a keepalive timeout. A transport
  failure is handed on as a ``RealtimeError`` whose ``__cause__`` is the specific error
  (``ConnectionClosedError`` with code and reason, ``KeepaliveTimeoutError``).
* A close with code 1000, by either side, or one this side started, just ends reading.
* Reading ends once: after the close has been reported, further reads return nothing.
* Frames go out in the order ``send`` was called (a FIFO lock); nothing is sent for an event
  that does not validate.
* ``aclose`` is idempotent and bounded by ``close_timeout`` even when the server never sends
  its close frame. A close handshake needs the reader (trio-websocket's task, run under the
  connection's owner) to read the server's answer: once the owner is cancelled the reader is
  gone, so a cancelled close aborts the stream at once instead of waiting for the timeout.
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any, Final

import attrs
import orjson
import trio
import trio_websocket

from rtbus.emitter import RealtimeEmitter
from rtbus.protocol import (
    CLIENT_EVENT_CLASSES,
    ClientEvent,
    ProtocolError,
    RealtimeError,
    ServerEvent,
    UnknownEvent,
    client_event_from_dict,
    decode_client_event,
    decode_server_event,
    encode,
)
from rtbus.protocol._errors import ConnectionClosedError

from ._exceptions import ConnectTimeoutError, KeepaliveTimeoutError, closed_error, map_exceptions
from ._keepalive import keep_alive
from ._options import ConnectOptions
from ._target import ConnectTarget, Endpoint

__all__ = [
    "CloseStatus",
    "ConnectionStatistics",
    "RealtimeWebSocket",
    "client_frame",
    "connect",
]

_CLIENT_CLASSES: Final = frozenset([*CLIENT_EVENT_CLASSES.values(), UnknownEvent])
# Codes an endpoint must never put in a close frame (RFC 6455 section 7.4.1).
_RESERVED_CLOSE_CODES: Final = frozenset({1004, 1005, 1006, 1015})


@attrs.frozen
class CloseStatus:
    """How the connection ended: the close code and reason (1006: dropped, no close frame)."""

    code: int
    reason: str = ""


@attrs.frozen(kw_only=True)
class ConnectionStatistics:
    """A snapshot of one connection's counters, cheap to take at any time (scrape time)."""

    frames_received: int
    bytes_received: int
    frames_sent: int
    bytes_sent: int
    decode_errors: int
    decodes: int
    """Text frames handed to the decoder (decodable or not)."""
    decode_seconds: float
    """Wall-clock seconds spent decoding those frames, in total."""
    pings_sent: int
    pongs_received: int
    last_pong_rtt: float | None
    """Seconds between the last answered ping and its pong."""
    close: CloseStatus | None


# How a close cancelled before its frame went out ended: the server saw no close frame.
_ABORTED: Final = CloseStatus(1006, "aborted: the close was cancelled")


def client_frame(event: ClientEvent | Mapping[str, Any]) -> str:
    """The TEXT frame for one client event; ``ProtocolError`` if it is not a valid one.

    A dict is validated as strictly as the upstream checks it, then sent as its own JSON; a
    typed event is encoded, and its frame checked the same way; an event ``type`` rtbus does
    not model passes unchecked (the server judges it).
    """
    if not isinstance(event, Mapping):
        if type(event) not in _CLIENT_CLASSES:
            raise ProtocolError(
                f"{type(event).__name__} is not a client event: send an rtbus client event "
                "(rtbus.protocol.SessionUpdateEvent, ...) or a dict in its JSON shape"
            )
        frame = encode(event)
        # attrs does not check what a typed event holds: decode the frame as the upstream would.
        decode_client_event(frame)
        return frame.decode()
    client_event_from_dict(event)
    try:
        return orjson.dumps(dict(event)).decode()
    except orjson.JSONEncodeError as exc:
        raise ProtocolError(
            f"not serialisable as JSON: {exc}", event_type=event.get("type")
        ) from exc


def _cancelled() -> bool:
    """Whether the calling task is cancelled: its next checkpoint raises ``Cancelled``."""
    return trio.current_effective_deadline() == -math.inf


def _status(reason: trio_websocket.CloseReason | None) -> CloseStatus:
    if reason is None:
        return CloseStatus(1006)
    return CloseStatus(int(reason.code), reason.reason or "")


def _text_size(text: str) -> int:
    # isascii() is O(1) in CPython; base64 audio and most JSON take the cheap branch.
    return len(text) if text.isascii() else len(text.encode())


class RealtimeWebSocket(RealtimeEmitter, trio.abc.AsyncResource):
    """A live connection to a Realtime session, from :func:`rtbus.open_realtime`.

    Bind handlers with ``on``/``once``/``off``, then drive it with :meth:`dispatch_events` or
    ``async for event in rt``; :meth:`send` client events; :meth:`aclose` when done. Made by
    ``open_realtime``/``open_target``, which run its background tasks; not built directly.
    """

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        options: ConnectOptions,
    ) -> None:
        super().__init__()
        self._ws = ws
        # trio-websocket leaves the stream open when the peer dropped it; we close it.
        self._stream = stream
        self._options = options
        self._send_lock = trio.StrictFIFOLock()
        self._background = trio.CancelScope()
        self._closed = trio.Event()
        self._closing = False
        self._reading_done = False
        self._failure: RealtimeError | None = None
        self._close: CloseStatus | None = None
        self._frames_in = self._bytes_in = self._frames_out = self._bytes_out = 0
        self._decode_errors = self._pings = self._pongs = 0
        self._decodes = 0
        self._decode_seconds = 0.0
        self._last_rtt: float | None = None
        self._last_frame_at = 0.0
        self._last_frame = ""

    @property
    def last_frame_at(self) -> float:
        """``trio.current_time()`` when the newest frame was taken off the connection, before
        it was decoded: a subscriber's latency is measured from here."""
        return self._last_frame_at

    @property
    def last_frame(self) -> str:
        """The newest text frame as it came off the connection: a publisher hands it on as
        ``Envelope.raw``, so a gateway forwards the upstream bytes instead of re-encoding."""
        return self._last_frame

    @property
    def close_status(self) -> CloseStatus | None:
        """How the connection ended, or ``None`` while it is open."""
        return self._close

    def statistics(self) -> ConnectionStatistics:
        """The connection's counters now."""
        return ConnectionStatistics(
            frames_received=self._frames_in,
            bytes_received=self._bytes_in,
            frames_sent=self._frames_out,
            bytes_sent=self._bytes_out,
            decode_errors=self._decode_errors,
            decodes=self._decodes,
            decode_seconds=self._decode_seconds,
            pings_sent=self._pings,
            pongs_received=self._pongs,
            last_pong_rtt=self._last_rtt,
            close=self._close,
        )

    async def send(self, event: ClientEvent | Mapping[str, Any]) -> None:
        """Send one client event (an rtbus client event or a dict in its JSON shape).

        Raises ``ProtocolError`` (and sends nothing) when the event is malformed, and
        ``ConnectionClosedError`` when the connection is closed.
        """
        await self.send_frame(client_frame(event))

    async def send_frame(self, frame: str) -> None:
        """Send one client event already encoded by :func:`client_frame`, as a TEXT frame."""
        async with self._send_lock:
            self._check_open()
            try:
                await self._ws.send_message(frame)
            except trio_websocket.ConnectionClosed as exc:
                raise self._closed_error(exc.reason) from exc
            self._frames_out += 1
            self._bytes_out += _text_size(frame)

    async def dispatch_events(self) -> None:
        """Read server events and hand each to its handlers until the connection closes.

        Returns when the connection closed normally; an error nobody handles is raised.
        """
        while (event := await self._next_event()) is not None:
            await self._dispatch(event)

    def __aiter__(self) -> RealtimeWebSocket:
        return self

    async def __anext__(self) -> ServerEvent | UnknownEvent:
        """The next server event, after its handlers ran; an ``error`` event only once the
        error path chose not to raise it."""
        event = await self._next_event()
        if event is None:
            raise StopAsyncIteration
        await self._dispatch(event)
        return event

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; within ``close_timeout``; idempotent.

        A cancelled close (``trio.aclose_forcefully``, or an owner being cancelled) aborts
        the stream at once, and then raises ``trio.Cancelled``: the close handshake is only
        worth waiting for while the reader can read the server's answer, and the reader runs
        under the same owner, so it is cancelled too.
        """
        if code in _RESERVED_CLOSE_CODES or not 1000 <= code <= 4999:
            raise ValueError(f"{code} is not a close code an endpoint may send")
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            if _cancelled():
                self._ended(_ABORTED)
            else:
                self._ended(CloseStatus(code, reason))
                # Not shielded: cancelled while waiting for the answer, it stops waiting.
                with trio.move_on_after(self._options.close_timeout):
                    await self._ws.aclose(code, reason or None)
        finally:
            await self._release()

    async def _release(self) -> None:
        """Whatever the close handshake did: stop the background tasks, close the stream."""
        self._background.cancel()
        try:
            await trio.aclose_forcefully(self._stream)
        finally:
            # Set even when cancelled: a concurrent ``aclose`` waits for it.
            self._closed.set()

    async def _next_event(self) -> ServerEvent | UnknownEvent | None:
        """The next decodable server event, or ``None`` once the connection has closed."""
        while not self._reading_done:
            try:
                message = await self._ws.get_message()
                self._last_frame_at = trio.current_time()
            except trio_websocket.ConnectionClosed as exc:
                await self._end_reading(exc.reason)
                return None
            self._frames_in += 1
            if type(message) is not str:
                await self._binary_frame(message)
                continue
            self._bytes_in += _text_size(message)
            self._last_frame = message
            try:
                return self._decode(message)
            except ProtocolError as exc:
                self._decode_errors += 1
                await self._on_error(None, f"could not decode a server frame: {exc}", exc)
        return None

    def _decode(self, message: str) -> ServerEvent | UnknownEvent:
        # Timed here, not by the caller: the error path's await must not count as decoding.
        started = perf_counter()
        try:
            return decode_server_event(message)
        finally:
            self._decode_seconds += perf_counter() - started
            self._decodes += 1

    async def _binary_frame(self, message: str | bytes) -> None:
        self._bytes_in += len(message)
        self._decode_errors += 1
        text = f"the server sent a binary frame ({len(message)} bytes); Realtime frames are text"
        await self._on_error(None, text)

    async def _end_reading(self, reason: trio_websocket.CloseReason | None) -> None:
        if self._reading_done:
            return
        self._reading_done = True
        failure = self._failure or self._close_failure(reason)
        self._ended(_status(reason))
        if failure is not None:
            await self._fail(failure)

    def _close_failure(self, reason: trio_websocket.CloseReason | None) -> RealtimeError | None:
        if self._closing or (reason is not None and reason.code == 1000):
            return None
        return closed_error(reason)

    async def _fail(self, error: RealtimeError) -> None:
        """The one error path for a failure that already is an rtbus error (its cause)."""
        await self._on_error(None, str(error), error)

    def _ended(self, status: CloseStatus) -> None:
        # The first account of the end wins: a keepalive abort, then ours, then the server's.
        if self._close is None:
            self._close = status

    def _check_open(self) -> None:
        if self._close is not None or self._closing or self._ws.closed is not None:
            raise self._closed_error(self._ws.closed)

    def _closed_error(self, reason: trio_websocket.CloseReason | None) -> ConnectionClosedError:
        if self._close is not None:
            return ConnectionClosedError(self._close.code, self._close.reason)
        return closed_error(reason)

    async def _run_keepalive(self) -> None:
        interval, pong_timeout = self._options.keepalive_interval, self._options.pong_timeout
        assert interval is not None
        with self._background:
            try:
                await keep_alive(
                    self._ping, self._pong, interval=interval, pong_timeout=pong_timeout
                )
            except trio_websocket.ConnectionClosed:
                return  # Reading reports why it closed.
            self._failure = KeepaliveTimeoutError(pong_timeout)
            self._ended(CloseStatus(1006, "keepalive timeout"))
            await self._abort()

    async def _ping(self) -> None:
        self._pings += 1
        await self._ws.ping()

    def _pong(self, rtt: float) -> None:
        self._pongs += 1
        self._last_rtt = rtt

    async def _abort(self) -> None:
        # No close handshake with a peer that does not answer: close the stream under
        # trio-websocket, whose reader task then ends the connection.
        await trio.aclose_forcefully(self._stream)


async def connect(
    nursery: trio.Nursery, target: ConnectTarget, options: ConnectOptions
) -> RealtimeWebSocket:
    """Open a connection to ``target`` whose background tasks run in ``nursery``.

    Errors raised here are translated; a rejection arrives from trio-websocket's reader task
    through ``nursery`` instead, for the caller to translate (see ``open_target``).
    """
    with map_exceptions(target), trio.move_on_after(options.connect_timeout) as deadline:
        ws, stream = await handshake(nursery, target, options)
    if deadline.cancelled_caught:
        raise ConnectTimeoutError(target.display_url, options.connect_timeout)
    rt = RealtimeWebSocket(ws, stream, options)
    if options.keepalive_interval is not None:
        nursery.start_soon(rt._run_keepalive)
    return rt


async def handshake(
    nursery: trio.Nursery,
    target: ConnectTarget,
    options: ConnectOptions,
    *,
    subprotocols: Sequence[str] | None = None,
) -> tuple[trio_websocket.WebSocketConnection, trio.abc.Stream]:
    """A handshaken WebSocket to ``target`` whose reader runs in ``nursery``, and the stream
    under it, which is the caller's to close (trio-websocket leaks it otherwise). Not bounded
    and not translated: the caller brings its deadline and its errors (the gateway client
    uses it too)."""
    endpoint = target.endpoint
    stream = await _open_stream(endpoint, options)
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


async def _open_stream(
    endpoint: Endpoint, options: ConnectOptions
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if not endpoint.tls:
        return await trio.open_tcp_stream(endpoint.host, endpoint.port)
    context = options.ssl_context or _default_ssl_context()
    stream = await trio.open_ssl_over_tcp_stream(
        endpoint.host, endpoint.port, ssl_context=context, https_compatible=True
    )
    try:
        # Now, not lazily inside trio-websocket's reader task, which would swallow a
        # certificate error and leave the connect to time out.
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the trust store takes milliseconds: once per process, not per connection.
    return ssl.create_default_context()
