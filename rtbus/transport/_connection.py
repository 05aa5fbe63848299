"""``RealtimeWebSocket``: the Realtime emitter on one WebSocket, read in the caller's task.

Invariants:

* Reading has one core, ``read``: take the next message off the wire (receiving in the
  calling task when none waits), decode it, and hand out what was read (the event with its
  raw bytes and arrival, or an ``Unreadable`` frame), raising the connection's failure as
  its typed exception (``ConnectionClosedError`` with code and reason,
  ``KeepaliveTimeoutError``). A session actor reads there and classifies each outcome once.
* The emitter is an adapter on top, for library users: ``receive()``, ``dispatch_events()``
  and ``async for`` read through ``read`` and then ``_dispatch``, so handlers see every event
  whichever style drives the connection, and every failure goes through the emitter's one
  error path (``_on_error``): a server ``error`` event, an unreadable or binary frame, an
  abnormal close, a keepalive timeout.
* The connection's life is a state and a table (``_state``): reading takes new frames off
  the wire only while OPEN, and its end is reported once; a close with code 1000, by either
  side, or one this side started, just ends reading. Frames already received when a close of
  ours starts (or while it waits for the peer's answer) are still handed out: a recycle must
  not lose the last events of the connection it replaces.
* Reading ends once: after the close has been reported, further reads return nothing.
  Messages received before a drop are read first; after a close of ours started, none is.
* Frames go out in the order ``send`` was called (a FIFO lock); nothing is sent for an event
  that does not validate.
* ``aclose`` is idempotent and bounded by ``close_timeout`` even when the server never sends
  its close frame; it receives the answer itself unless a reader is receiving. A cancelled
  close aborts the stream at once: nobody would be left to wait for the answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any, Final, NamedTuple

import attrs
import orjson
import trio

from rtbus.emitter import RealtimeEmitter
from rtbus.protocol import (
    CLIENT_EVENT_CLASSES,
    ClientEvent,
    ConnectionClosedError,
    ProtocolError,
    RealtimeError,
    ServerEvent,
    UnknownEvent,
    client_event_from_dict,
    decode_client_event,
    decode_server_event,
    encode,
)

from ._exceptions import ConnectTimeoutError, KeepaliveTimeoutError, map_exceptions
from ._handshake import open_stream, upgrade
from ._keepalive import keep_alive
from ._options import ConnectOptions
from ._state import ConnectionState, Happening, next_state
from ._target import ConnectTarget
from ._wire import CloseStatus, Wire

__all__ = [
    "CloseStatus",
    "ConnectionStatistics",
    "RealtimeWebSocket",
    "Received",
    "Unreadable",
    "client_frame",
    "connect",
]

_CLIENT_CLASSES: Final = frozenset([*CLIENT_EVENT_CLASSES.values(), UnknownEvent])
# Codes an endpoint must never put in a close frame (RFC 6455 section 7.4.1).
_RESERVED_CLOSE_CODES: Final = frozenset({1004, 1005, 1006, 1015})


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


class Received(NamedTuple):
    """One server event as :meth:`RealtimeWebSocket.receive` hands it out.

    A named tuple, not an attrs class: one is made per event on the hot path, and a tuple is
    the cheapest immutable value to make.
    """

    event: ServerEvent | UnknownEvent
    raw: bytes
    """The frame's payload as it came off the socket: forward it, never re-encode."""
    received_at: float
    """``trio.current_time()`` when the frame was taken off the socket."""


class Unreadable(NamedTuple):
    """A frame the server sent that could not be read (not JSON, no ``type``, binary): what
    :meth:`RealtimeWebSocket.read` hands out for it. Reading goes on after one."""

    message: str
    cause: BaseException | None


# How a close cancelled before its frame went out ended: the server saw no close frame.
_ABORTED: Final = CloseStatus(1006, "aborted: the close was cancelled")
_KEEPALIVE_TIMEOUT: Final = CloseStatus(1006, "keepalive timeout")


def client_frame(event: ClientEvent | Mapping[str, Any]) -> bytes:
    """The TEXT frame's payload for one client event; ``ProtocolError`` if it is not a valid one.

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
        return frame
    client_event_from_dict(event)
    try:
        return orjson.dumps(dict(event))
    except orjson.JSONEncodeError as exc:
        raise ProtocolError(
            f"not serialisable as JSON: {exc}", event_type=event.get("type")
        ) from exc


def _cancelled() -> bool:
    """Whether the calling task is cancelled: its next checkpoint raises ``Cancelled``."""
    return trio.current_effective_deadline() == -math.inf


class RealtimeWebSocket(RealtimeEmitter, trio.abc.AsyncResource):
    """A live connection to a Realtime session, from :func:`rtbus.open_realtime`.

    Bind handlers with ``on``/``once``/``off``, then drive it with :meth:`receive`,
    :meth:`dispatch_events` or ``async for event in rt``; :meth:`send` client events;
    :meth:`aclose` when done. Made by ``open_realtime``/``open_target``; not built directly.
    """

    def __init__(self, wire: Wire, options: ConnectOptions) -> None:
        super().__init__()
        self._wire = wire
        self._inbox = wire.inbox
        self._options = options
        self._background = trio.CancelScope()
        self._closed = trio.Event()  # set on CLOSED: a second ``aclose`` waits for it
        self._state = ConnectionState.OPEN
        self._failure: RealtimeError | None = None
        self._frames_in = self._bytes_in = self._frames_out = self._bytes_out = 0
        self._decode_errors = self._decodes = 0
        self._decode_seconds = 0.0
        self._last_rtt: float | None = None
        self._last_frame_at = 0.0
        self._last_raw = b""

    @property
    def close_status(self) -> CloseStatus | None:
        """How the connection ended, or ``None`` while it is open."""
        return self._wire.close

    def statistics(self) -> ConnectionStatistics:
        """The connection's counters now."""
        wire = self._wire
        return ConnectionStatistics(
            frames_received=self._frames_in,
            bytes_received=self._bytes_in,
            frames_sent=self._frames_out,
            bytes_sent=self._bytes_out,
            decode_errors=self._decode_errors,
            decodes=self._decodes,
            decode_seconds=self._decode_seconds,
            pings_sent=wire.pings_sent,
            pongs_received=wire.pongs_received,
            last_pong_rtt=self._last_rtt,
            close=wire.close,
        )

    async def send(self, event: ClientEvent | Mapping[str, Any]) -> None:
        """Send one client event (an rtbus client event or a dict in its JSON shape).

        Raises ``ProtocolError`` (and sends nothing) when the event is malformed, and
        ``ConnectionClosedError`` when the connection is closed.
        """
        await self.send_frame(client_frame(event))

    async def send_frame(self, frame: bytes) -> None:
        """Send one client event already encoded by :func:`client_frame`, as a TEXT frame."""
        await self._wire.send_text(frame)
        self._frames_out += 1
        self._bytes_out += len(frame)

    async def read(self) -> Received | Unreadable | None:
        """The core reader, below the emitter: the next server event with its raw bytes and
        arrival time, an ``Unreadable`` frame, or ``None`` once the connection closed
        normally. A failure of the connection (an abnormal close, a keepalive timeout) is
        raised as its typed exception (``ConnectionClosedError``, ``KeepaliveTimeoutError``),
        once. No handler runs and no error is classified here: the caller does it, once."""
        inbox = self._inbox
        while inbox or self._state is ConnectionState.OPEN:
            if not inbox:
                if await self._wire.fill():
                    continue
                break
            if self._state is ConnectionState.CLOSED:
                break  # the stream is released: what it left unread is not the peer's news
            raw, text, received_at = inbox.popleft()
            self._frames_in += 1
            self._bytes_in += len(raw)
            if not text:
                self._decode_errors += 1
                message = (
                    f"the server sent a binary frame ({len(raw)} bytes); Realtime frames are text"
                )
                return Unreadable(message, None)
            self._last_raw, self._last_frame_at = raw, received_at
            try:
                return Received(self._decode(raw), raw, received_at)
            except ProtocolError as exc:
                self._decode_errors += 1
                return Unreadable(f"could not decode a server frame: {exc}", exc)
        if self._state is ConnectionState.OPEN:
            self._happen(Happening.READ_ENDED)
            failure = self._read_failure()
            if failure is not None:
                raise failure
        return None

    async def receive(self) -> Received | None:
        """The next server event with its raw bytes and arrival time, after its handlers ran;
        ``None`` once the connection has closed. Errors take the error path as for
        ``async for``."""
        received = await self._next_received()
        if received is not None:
            await self._dispatch(received.event)
        return received

    async def dispatch_events(self) -> None:
        """Read server events and hand each to its handlers until the connection closes.

        Returns when the connection closed normally; an error nobody handles is raised.
        """
        while (received := await self._next_received()) is not None:
            await self._dispatch(received.event)

    def __aiter__(self) -> RealtimeWebSocket:
        return self

    async def __anext__(self) -> ServerEvent | UnknownEvent:
        """The next server event, after its handlers ran; an ``error`` event only once the
        error path chose not to raise it."""
        received = await self._next_received()
        if received is None:
            raise StopAsyncIteration
        await self._dispatch(received.event)
        return received.event

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; within ``close_timeout``; idempotent.

        A cancelled close (``trio.aclose_forcefully``, or an owner being cancelled) aborts
        the stream at once, and then raises ``trio.Cancelled``.
        """
        if code in _RESERVED_CLOSE_CODES or not 1000 <= code <= 4999:
            raise ValueError(f"{code} is not a close code an endpoint may send")
        if self._state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            await self._closed.wait()
            return
        self._happen(Happening.CLOSE_STARTED)
        try:
            if _cancelled():
                self._wire.record(_ABORTED)
            else:
                self._wire.record(CloseStatus(code, reason))
                # Not shielded: cancelled while waiting for the answer, it stops waiting.
                with trio.move_on_after(self._options.close_timeout):
                    await self._wire.close_handshake(code, reason)
        finally:
            await self._release()

    async def _release(self) -> None:
        """Whatever the close handshake did: stop the keepalive, close the stream."""
        self._background.cancel()
        try:
            await self._wire.abort()
        finally:
            # Even when cancelled: a concurrent ``aclose`` waits for it.
            self._happen(Happening.RELEASED)
            self._closed.set()

    async def _next_received(self) -> Received | None:
        """The emitter's reading: ``read``, with unreadable frames and the connection's
        failure sent down the one error path (handed to ``error`` handlers, or raised)."""
        while True:
            try:
                item = await self.read()
            except RealtimeError as failure:
                await self._on_error(None, str(failure), failure)
                return None
            if not isinstance(item, Unreadable):
                return item
            await self._on_error(None, item.message, item.cause)

    def _decode(self, raw: bytes) -> ServerEvent | UnknownEvent:
        # Timed here, not by the caller: the error path's await must not count as decoding.
        started = perf_counter()
        try:
            return decode_server_event(raw)
        finally:
            self._decode_seconds += perf_counter() - started
            self._decodes += 1

    def _read_failure(self) -> RealtimeError | None:
        """How reading ended, while the connection was open: a failure (a keepalive timeout,
        an abnormal close) unless the peer closed normally."""
        status = self._wire.close or CloseStatus(1006)
        if self._failure is None and status.code != 1000:
            return ConnectionClosedError(status.code, status.reason)
        return self._failure

    def _happen(self, happening: Happening) -> None:
        self._state = next_state(self._state, happening)

    async def _run_keepalive(self) -> None:
        interval, pong_timeout = self._options.keepalive_interval, self._options.pong_timeout
        assert interval is not None
        wire = self._wire
        with self._background:
            try:
                await keep_alive(
                    wire.ping,
                    self._pong,
                    interval=interval,
                    pong_timeout=pong_timeout,
                    heard_at=lambda: wire.heard_at,
                )
            except ConnectionClosedError:
                return  # Reading reports why it closed.
            self._failure = KeepaliveTimeoutError(pong_timeout)
            wire.record(_KEEPALIVE_TIMEOUT)
            # No close handshake with a peer that does not answer: whoever reads sees the end.
            await wire.abort()

    def _pong(self, rtt: float) -> None:
        self._last_rtt = rtt


async def connect(target: ConnectTarget, options: ConnectOptions) -> RealtimeWebSocket:
    """Open a connection to ``target`` within ``connect_timeout``; errors translated."""
    return RealtimeWebSocket(await open_wire(target, options), options)


async def open_wire(
    target: ConnectTarget, options: ConnectOptions, *, subprotocols: Sequence[str] | None = None
) -> Wire:
    """A WebSocket to ``target``, handshaken within ``connect_timeout`` (offering
    ``subprotocols``), as a ``Wire`` its caller reads and closes. Raises ``ConnectError``
    (``ConnectTimeoutError``, ``ConnectionRejectedError``), the handshake's and the OS's
    errors translated."""
    with map_exceptions(target), trio.move_on_after(options.connect_timeout) as deadline:
        stream = await open_stream(target.endpoint, options)
        try:
            protocol, early = await upgrade(stream, target, options, subprotocols=subprotocols)
        except BaseException:
            # Refused, failed or cancelled: the stream is ours to close.
            await trio.aclose_forcefully(stream)
            raise
    if deadline.cancelled_caught:
        raise ConnectTimeoutError(target.display_url, options.connect_timeout)
    return Wire(stream, protocol, options, early)
