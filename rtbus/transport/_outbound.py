"""``SendQueue``: the bounded queue of client events that outlives one connection.

A session keeps taking client events while its connection is down; the queue holds them and
one writer task drains them into whichever connection is attached.

Ordering guarantee:

* Frames go out in the order their ``send`` calls were queued, one at a time, by the single
  writer (:meth:`SendQueue.run`), whatever connection they go out on.
* Across a reconnect nothing is reordered: what had not gone out waits, and goes out first
  on the next attached connection. A frame whose write failed because the connection closed
  stays at the head and is written again on the next one; WebSocket has no acknowledgement, so
  a frame the kernel took just before a drop can still be lost (at most once, never twice).
* A sender cancelled before the writer took its event withdraws it; once the writer is writing
  it, it goes out regardless (a half-written frame would break the connection).
* An optional :class:`SendGate` is asked before each frame and may hold the head of the queue
  (the session holds a ``response.create`` while a response runs); what is behind it waits too.

``send`` returns only once the frame was handed to a live connection. It raises
``SendQueueFull`` at once when ``max_size`` events wait, and every waiting sender gets
``SendQueueClosed`` (caused by the reason) when the queue fails or closes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import trio

from rtbus.protocol import ClientEvent, ConfigError, ConnectionClosedError, RtbusError

from ._connection import client_frame

__all__ = [
    "FrameSink",
    "SendGate",
    "SendQueue",
    "SendQueueClosed",
    "SendQueueFull",
    "SendQueueStatistics",
]

ClientEventLike = ClientEvent | Mapping[str, Any]


class SendQueueFull(RtbusError):
    """Raised by :meth:`SendQueue.send` at once when ``max_size`` events already wait.

    The senders outpace the connection, or the connection has been down for long enough to
    fill the queue; the event was not queued.
    """

    def __init__(self, max_size: int) -> None:
        super().__init__(f"the send queue is full ({max_size} events wait); event not sent")
        self.max_size = max_size


class SendQueueClosed(RtbusError):
    """Raised to senders when the queue failed (the reconnect gave up; see the cause) or closed.

    The event was not sent.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the send queue is closed: {reason}; event not sent")
        self.reason = reason


class FrameSink(Protocol):
    """Where the writer puts frames: a live connection (``RealtimeWebSocket``)."""

    async def send_frame(self, frame: bytes) -> None:
        """Send one encoded client event; ``ConnectionClosedError`` if the connection is gone."""


class SendGate(Protocol):
    """Decides when the head of the queue may go out; told when it went."""

    async def wait_ready(self, event: ClientEventLike) -> None:
        """Return once ``event`` may be written."""

    def sent(self, event: ClientEventLike) -> None:
        """``event`` was handed to the connection."""


@attrs.frozen(kw_only=True)
class SendQueueStatistics:
    """A snapshot of the queue: events waiting, capacity, events sent, connection state."""

    queued: int
    max_size: int
    sent: int
    attached: bool
    closed: bool


@attrs.define(eq=False)
class _Pending:
    event: ClientEventLike
    frame: bytes
    done: trio.Event = attrs.Factory(trio.Event)
    writing: bool = False
    failure: BaseException | None = None
    reason: str = ""


class SendQueue(trio.abc.AsyncResource):
    """Client events waiting for a connection, sent in order by one writer task.

    Start :meth:`run` in a nursery, :meth:`attach` each new connection and :meth:`detach` it
    when it drops; :meth:`fail` when the reconnect gives up, :meth:`aclose` at the end.
    """

    def __init__(self, max_size: int = 256, *, gate: SendGate | None = None) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigError("max_size", f"must be an integer >= 1, got {max_size!r}")
        self._max_size = max_size
        self._gate = gate
        self._pending: deque[_Pending] = deque()
        self._sink: FrameSink | None = None
        self._wakeup = trio.lowlevel.ParkingLot()
        self._closed: tuple[str, BaseException | None] | None = None
        self._sent = 0
        self._writing = False

    async def send(self, event: ClientEventLike) -> None:
        """Queue ``event`` and return once its frame went out on a live connection.

        Raises ``ProtocolError`` for a malformed event, ``SendQueueFull`` when full (at once),
        ``SendQueueClosed`` when the queue failed or closed before the frame went out.
        """
        frame = client_frame(event)
        self._check_open()
        if len(self._pending) >= self._max_size:
            raise SendQueueFull(self._max_size)
        entry = _Pending(event, frame)
        self._pending.append(entry)
        self._wakeup.unpark_all()
        try:
            await entry.done.wait()
        except BaseException:
            self._withdraw(entry)
            raise
        if entry.reason:
            raise SendQueueClosed(entry.reason) from entry.failure

    def attach(self, sink: FrameSink) -> None:
        """Write to ``sink`` (a new live connection) from now on."""
        self._sink = sink
        self._wakeup.unpark_all()

    def detach(self) -> None:
        """Stop writing to the current connection; events wait for the next :meth:`attach`."""
        self._sink = None

    def fail(self, error: BaseException) -> None:
        """Give up: every waiting and later sender gets ``SendQueueClosed`` caused by ``error``."""
        self._close(f"{type(error).__name__}: {error}", error)

    async def aclose(self) -> None:
        """Close: every waiting and later sender gets ``SendQueueClosed``; idempotent."""
        self._close("the session closed", None)
        await trio.lowlevel.checkpoint()

    def statistics(self) -> SendQueueStatistics:
        """The queue's state now."""
        return SendQueueStatistics(
            queued=len(self._pending),
            max_size=self._max_size,
            sent=self._sent,
            attached=self._sink is not None,
            closed=self._closed is not None,
        )

    async def run(self) -> None:
        """The writer: drain the queue into the attached connection until the queue closes.

        Exactly one may run: the order guarantee rests on a single writer.
        """
        if self._writing:
            raise RuntimeError("this SendQueue already has a writer running")
        self._writing = True
        try:
            await self._write_all()
        finally:
            self._writing = False

    async def _write_all(self) -> None:
        while (ready := await self._next()) is not None:
            entry, sink = ready
            if not await self._admitted(entry, sink):
                continue
            entry.writing = True
            try:
                await sink.send_frame(entry.frame)
            except ConnectionClosedError:
                # Not sent: it stays at the head for the next connection.
                if self._sink is sink:
                    self._sink = None
            else:
                self._delivered(entry)
                if self._gate is not None:
                    self._gate.sent(entry.event)
            finally:
                entry.writing = False
                self._settle_if_closed(entry)

    async def _next(self) -> tuple[_Pending, FrameSink] | None:
        while self._closed is None:
            if self._pending and self._sink is not None:
                return self._pending[0], self._sink
            await self._wakeup.park()
        return None

    async def _admitted(self, entry: _Pending, sink: FrameSink) -> bool:
        """Wait for the gate; then whether ``entry`` is still the head, for the same sink."""
        if self._gate is None:
            return True
        await self._gate.wait_ready(entry.event)
        # The wait may have been long: the sender may have withdrawn, the connection gone.
        return self._sink is sink and bool(self._pending) and self._pending[0] is entry

    def _delivered(self, entry: _Pending) -> None:
        self._pending.remove(entry)
        self._sent += 1
        entry.done.set()

    def _withdraw(self, entry: _Pending) -> None:
        if not entry.writing and not entry.done.is_set():
            self._pending.remove(entry)

    def _check_open(self) -> None:
        if self._closed is not None:
            reason, failure = self._closed
            raise SendQueueClosed(reason) from failure

    def _close(self, reason: str, failure: BaseException | None) -> None:
        if self._closed is not None:
            return
        self._closed = (reason, failure)
        # The event being written is settled by the writer when the write ends.
        for entry in [e for e in self._pending if not e.writing]:
            self._settle(entry, reason, failure)
        self._wakeup.unpark_all()

    def _settle_if_closed(self, entry: _Pending) -> None:
        if self._closed is not None and not entry.done.is_set():
            self._settle(entry, *self._closed)

    def _settle(self, entry: _Pending, reason: str, failure: BaseException | None) -> None:
        self._pending.remove(entry)
        entry.reason, entry.failure = reason, failure
        entry.done.set()
