"""The session actor: one Realtime session, its connection, and its place on the bus.

A ``Session`` is both the handle callers hold (``send``, ``state``, ``statistics``) and the
actor a supervisor runs (``run``). What must outlive one connection lives on the handle: the
send queue, the sequencer, the event-id counter, and the counters metrics read (``_counts``).
Each connection goes:

    connect -> session.created -> session.update -> session.updated -> ready -> pump

and every server event, from the first, is published on the bus in order, with the monotonic
time it arrived. Failures are classified (``rtbus.protocol.Disposition``):

* a recoverable ``error`` event is published; if no subscription takes this session's errors,
  the seed's rule makes it a failure of the actor (its supervisor decides);
* a lost connection, a retryable close code or ``session_expired`` reconnects with backoff,
  re-applies the config, flushes the queued client events and publishes
  ``rtbus.session.reconnected``: the conversation upstream is new;
* anything the reconnect policy will not retry (a bad key, a refused config) fails the actor
  as ``Fatal``: it is not restarted.
"""

from __future__ import annotations

import enum
import itertools
import random
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import trio

from rtbus.actors import ActorContext, Fatal
from rtbus.bus import Bus
from rtbus.protocol import (
    ClientEvent,
    Disposition,
    ErrorEvent,
    ProtocolError,
    RealtimeConfig,
    RealtimeError,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ServerEvent,
    UnknownEvent,
    classify_error,
)
from rtbus.transport import (
    ConnectTarget,
    RealtimeWebSocket,
    ReconnectAttempts,
    SendQueue,
    SendQueueStatistics,
    open_target,
)

from ._cause import RECYCLED, failure_cause
from ._counts import SessionCounts, Tally
from ._errors import HandshakeTimeoutError, UnhandledServerError
from ._labels import OTHER
from ._lifecycle import (
    SessionBadFrame,
    SessionClosed,
    SessionDisconnected,
    SessionFailed,
    SessionReady,
    SessionReconnected,
)
from ._sequencer import ResponseSequencer
from ._spec import SessionSpec

__all__ = ["Session", "SessionState", "SessionStatistics"]

ClientEventLike = ClientEvent | Mapping[str, Any]
AnyServerEvent = ServerEvent | UnknownEvent


class SessionState(enum.Enum):
    """Where a session is in its life."""

    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class SessionStatistics:
    """A snapshot of one session, read at scrape time; ``counts`` are cumulative over every
    connection and restart of the session."""

    id: str
    model: str
    state: SessionState
    connects: int
    reconnects: int
    events_published: int
    responses_active: bool
    send_queue: SendQueueStatistics
    counts: SessionCounts


@attrs.frozen
class _Why:
    """Why the next connection is made: text for people, and its bounded cause label."""

    reason: str = ""
    cause: str = OTHER


class _Recycle(Exception):
    """Internal: the connection was closed on purpose to replace the upstream session."""


class _Stopped(Exception):
    """Internal: the connection failed while the session was being stopped anyway."""


class Session:
    """One supervised Realtime session: the handle to talk to it and the actor that runs it."""

    def __init__(
        self,
        id: str,
        spec: SessionSpec,
        upstream: RealtimeConfig,
        bus: Bus,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.id = id
        self.spec = spec
        self.state = SessionState.CONNECTING
        self._upstream = upstream
        self._bus = bus
        self._rng = rng or random.Random()
        self._sequencer = ResponseSequencer()
        self._changed = trio.Event()
        gate = self if spec.sequence_responses else None
        self._queue = SendQueue(spec.send_queue_size, gate=gate)
        self._event_ids = itertools.count(1)
        self._tally = Tally()
        # Why the actor last failed: a restarted actor's first connection is a reconnect.
        self._restart_cause = OTHER
        self._wire: RealtimeWebSocket | None = None
        self._published = 0
        self._failure: RealtimeError | None = None
        self._attempts: ReconnectAttempts = spec.reconnect.attempts(self._rng)
        self._current: RealtimeWebSocket | None = None
        self._recycled = False
        self._stopping = False
        self._serving = trio.CancelScope()
        self._ready_signalled = False
        self._ended = False

    # -- the handle ---------------------------------------------------------------------

    async def send(self, event: ClientEventLike) -> None:
        """Send a client event; returns once it went out on a live connection.

        While the session reconnects the event waits in the send queue and goes out, in
        order, once the config is re-applied. An event without an ``event_id`` gets one, so
        the server's errors about it can be matched. Raises ``ProtocolError`` for a malformed
        event, ``SendQueueFull`` when the queue is full, ``SendQueueClosed`` once the session
        failed or closed.
        """
        stamped = self._stamped(event)
        await self._queue.send(stamped)
        self._tally.sent(_event_type(stamped))

    def statistics(self) -> SessionStatistics:
        """A frozen snapshot of this session."""
        wire = self._wire
        return SessionStatistics(
            id=self.id,
            model=self.spec.model,
            state=self.state,
            connects=self._tally.connects,
            reconnects=max(0, self._tally.connects - 1),
            events_published=self._published,
            responses_active=self._sequencer.busy,
            send_queue=self._queue.statistics(),
            counts=self._tally.snapshot(None if wire is None else wire.statistics()),
        )

    # -- the SendGate the queue's writer asks (response sequencing) ---------------------

    async def wait_ready(self, event: ClientEventLike) -> None:
        """Hold an in-band ``response.create`` while a response runs upstream."""
        while not self._sequencer.may_send(event):
            await self._changed.wait()

    def sent(self, event: ClientEventLike) -> None:
        """The writer sent ``event``."""
        self._sequencer.sent(event, _event_id(event))

    # -- the actor ----------------------------------------------------------------------

    async def run(self, ctx: ActorContext, *, task_status: trio.TaskStatus[Session]) -> None:
        """The actor: connect, get ready, pump events; reconnect until told to stop."""
        # Per incarnation: a restarted actor signals readiness again, in a fresh scope.
        self._ready_signalled = False
        self._serving = trio.CancelScope()
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._queue.run)
            nursery.start_soon(self._stop_when_asked, ctx)
            try:
                await self._serve(task_status)
            except _Stopped:
                pass
            except Exception as exc:
                # Raised below, outside the nursery, so the supervisor sees it unwrapped.
                failure = exc
            finally:
                nursery.cancel_scope.cancel()
        if failure is not None:
            await self._failed(failure)
            raise failure
        await self._end(SessionState.CLOSED, SessionClosed(reason=self._closed_reason()))
        self._retire()

    async def _serve(self, task_status: trio.TaskStatus[Session]) -> None:
        """Connections, one after another, until one ends normally or a stop cancels them."""
        default = ConnectTarget.from_config(
            self._upstream,
            self.spec.model,
            extra_headers=self.spec.extra_headers,
            extra_query=self.spec.extra_query,
        )
        target, why = default, _Why(cause=self._restart_cause)
        with self._serving:
            while True:
                try:
                    await self._connection(target, why, task_status)
                except _Recycle:
                    target, why = default, _Why(RECYCLED, RECYCLED)
                    continue
                except UnhandledServerError:
                    raise  # not the connection's failure: the actor's
                except RealtimeError as failure:
                    why = _Why(str(failure), failure_cause(failure))
                    await self._back_off(failure, why)
                    target = await self.spec.reconnect.target(self._attempts.attempt, default)
                else:
                    return

    async def _back_off(self, failure: RealtimeError, why: _Why) -> None:
        """Wait before the next attempt, or fail for good if the policy will not retry."""
        if self._stopping:
            raise _Stopped
        delay = self._attempts.failed(failure, trio.current_time())
        if delay is None:
            raise Fatal(f"session {self.id} failed: {failure}") from failure
        self.state = SessionState.RECONNECTING
        attempt = self._attempts.attempt
        self._tally.disconnected(why.cause)
        await self._publish(
            SessionDisconnected(reason=why.reason, attempt=attempt, retry_in=delay, cause=why.cause)
        )
        await trio.sleep(delay)

    async def _connection(
        self, target: ConnectTarget, why: _Why, task_status: trio.TaskStatus[Session]
    ) -> None:
        """One connection, from connect to close; raises what ended it unless it was normal."""
        self._failure, self._recycled = None, False
        self._tally.connects += 1
        try:
            async with open_target(target, options=self.spec.connect) as rt:
                self._wire = rt
                await self._connected(rt, why, task_status)
        finally:
            # After open_target closed it: how it closed is known now.
            self._connection_ended()
        if self._failure is not None:
            raise self._failure
        if self._recycled and not self._stopping:
            raise _Recycle

    async def _connected(
        self, rt: RealtimeWebSocket, why: _Why, task_status: trio.TaskStatus[Session]
    ) -> None:
        rt.on("error", self._connection_error)
        upstream_id = await self._handshake(rt)
        self._sequencer.reset()
        self._notify()
        self._attempts.connected(trio.current_time())
        self._current = rt
        self._queue.attach(rt)
        self.state = SessionState.READY
        await self._announce(why, upstream_id, task_status)
        try:
            await self._pump_until_closed(rt)
        finally:
            self._current = None
            self._queue.detach()

    def _connection_ended(self) -> None:
        if self._wire is not None:
            self._tally.connection_ended(self._wire.statistics())
            self._wire = None

    async def _pump_until_closed(self, rt: RealtimeWebSocket) -> None:
        async with trio.open_nursery() as nursery:
            if self.spec.recycle_after is not None:
                nursery.start_soon(self._recycle, rt)
            await self._pump(rt)
            nursery.cancel_scope.cancel()

    async def _handshake(self, rt: RealtimeWebSocket) -> str:
        """Wait for ``session.created``, apply the config, wait for ``session.updated``."""
        with trio.move_on_after(self.spec.ready_timeout) as scope:
            created = await self._until(rt, "session.created", None)
            update_id = self._next_event_id()
            await rt.send(self.spec.update_event(update_id))
            self._tally.sent("session.update")
            await self._until(rt, "session.updated", update_id)
        if scope.cancelled_caught:
            # An upstream that did not answer in ready_timeout will not answer a close frame
            # in close_timeout either: abort, so the retry (or the failure) is not held up.
            await trio.aclose_forcefully(rt)
            raise HandshakeTimeoutError(self.spec.ready_timeout)
        return str(getattr(getattr(created, "session", None), "id", None) or "")

    async def _until(self, rt: RealtimeWebSocket, type: str, refused_if: str | None) -> object:
        """Pump events until one of ``type``; the config being refused is fatal."""
        async for event in rt:
            await self._take(event, rt)
            if event.type == type:
                return event
            if _refuses(event, refused_if):
                assert isinstance(event, ErrorEvent)
                refused = RealtimeError.from_event(event)
                raise Fatal(f"the session config was refused: {event.error.message}") from refused
        raise self._failure or RealtimeError(f"the connection closed before {type}")

    async def _pump(self, rt: RealtimeWebSocket) -> None:
        async for event in rt:
            await self._take(event, rt)

    async def _take(self, event: AnyServerEvent, rt: RealtimeWebSocket) -> None:
        """Publish one server event, then let the session react to it."""
        await self._publish(event, received_at=rt.last_frame_at, raw=rt.last_frame.encode())
        react = _REACTIONS.get(event.type)
        if react is not None:
            await react(self, event)

    # -- reactions to server events (a table, see _REACTIONS) ---------------------------

    async def _on_response_created(self, event: AnyServerEvent) -> None:
        assert isinstance(event, ResponseCreatedEvent)
        response = event.response
        self._sequencer.on_created(response.id or "", in_band=response.conversation_id is not None)
        self._notify()

    async def _on_response_done(self, event: AnyServerEvent) -> None:
        assert isinstance(event, ResponseDoneEvent)
        self._sequencer.on_done(event.response.id or "")
        self._notify()

    async def _on_error_event(self, event: AnyServerEvent) -> None:
        assert isinstance(event, ErrorEvent)
        self._tally.server_error(event.error.type, event.error.code)
        self._sequencer.on_error(event.error.event_id)
        self._notify()
        disposition = classify_error(event.error.type, event.error.code)
        if disposition is Disposition.FATAL:
            error = RealtimeError.from_event(event)
            raise Fatal(f"session {self.id}: {error}") from error
        if disposition is Disposition.RECONNECT:
            raise RealtimeError.from_event(event)
        if not self._bus.has_subscriber(self.id, "error"):
            # The seed's rule: an error nobody listens for fails loudly.
            raise UnhandledServerError.from_event(event).with_unhandled_hint()

    async def _connection_error(self, error: RealtimeError) -> None:
        """The emitter's error path. Server ``error`` events are handled as events."""
        if error.error is not None:
            return
        if isinstance(error.__cause__, ProtocolError):
            await self._publish(SessionBadFrame(message=str(error)))
            return
        self._failure = error

    # -- lifecycle ----------------------------------------------------------------------

    async def _announce(
        self, why: _Why, upstream_id: str, task_status: trio.TaskStatus[Session]
    ) -> None:
        """Tell the bus (ready, or reconnected: the upstream is new), then the supervisor."""
        connects = self._tally.connects
        if connects == 1:
            event: SessionReady | SessionReconnected = SessionReady(
                model=self.spec.model, upstream_session_id=upstream_id
            )
        else:
            self._tally.reconnected(why.cause)
            event = SessionReconnected(
                reason=why.reason,
                attempt=connects - 1,
                upstream_session_id=upstream_id,
                cause=why.cause,
            )
        await self._publish(event)
        if not self._ready_signalled:
            self._ready_signalled = True
            task_status.started(self)

    def abandon(self) -> int:
        """Its supervisor gave up restarting it: it is over for good. Senders still waiting
        get ``SendQueueClosed``; returns how many client events it leaves unsent."""
        unsent = self._queue.statistics().queued
        self._queue.fail(Fatal(f"session {self.id}: its supervisor gave up restarting it"))
        self._retire()
        return unsent

    @property
    def ended(self) -> bool:
        """Whether the session is over for good: closed, or failed with ``Fatal``."""
        return self._ended

    async def _end(self, state: SessionState, event: SessionClosed | SessionFailed) -> None:
        self.state = state
        with trio.CancelScope(shield=True):
            await self._publish(event)

    async def _failed(self, failure: Exception) -> None:
        cause = self._restart_cause = failure_cause(failure)
        self._tally.failed(cause)
        await self._end(SessionState.FAILED, SessionFailed(reason=str(failure), cause=cause))
        if isinstance(failure, Fatal):
            # Not restarted: senders waiting on the queue learn now, not never.
            self._queue.fail(failure)
            self._retire()

    def _retire(self) -> None:
        """Over for good: the bus drops the sequence counter (a restart would continue it)."""
        self._ended = True
        self._bus.forget(self.id)

    def _closed_reason(self) -> str:
        return "closed by rtbus" if self._stopping else "closed by the server"

    async def _stop_when_asked(self, ctx: ActorContext) -> None:
        """A stop request: take no more events, let the running response finish, close 1000.

        The supervisor cancels the actor if this outlasts the child's shutdown grace.
        """
        await ctx.wait_stop_requested()
        self._stopping = True
        self.state = SessionState.CLOSING
        await self._queue.aclose()
        await self._until_idle()
        if self._current is None:
            # Between connections (backing off, connecting): nothing to close gracefully.
            self._serving.cancel()
        else:
            await self._current.aclose(1000, "session closed")

    async def _recycle(self, rt: RealtimeWebSocket) -> None:
        assert self.spec.recycle_after is not None
        await trio.sleep(self.spec.recycle_after)
        with trio.move_on_after(self.spec.recycle_grace):
            await self._until_idle()
        self._recycled = True
        await rt.aclose(1000, "recycled before the upstream session limit")

    async def _until_idle(self) -> None:
        while self._sequencer.busy:
            await self._changed.wait()

    # -- plumbing -----------------------------------------------------------------------

    async def _publish(
        self, event: object, *, received_at: float | None = None, raw: bytes | None = None
    ) -> None:
        """Publish ``event``; a server event with the time its frame arrived and the frame's
        bytes, a lifecycle event with now."""
        type_ = getattr(event, "type", "")
        at = trio.current_time() if received_at is None else received_at
        try:
            self._bus.publish_nowait(self.id, type_, event, received_at=at, raw=raw)
        except trio.WouldBlock:
            await self._bus.publish(self.id, type_, event, received_at=at, raw=raw)
        self._published += 1
        self._tally.published(type_)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _next_event_id(self) -> str:
        return f"{self.id}:{next(self._event_ids)}"

    def _stamped(self, event: ClientEventLike) -> ClientEventLike:
        if _event_id(event):
            return event
        if isinstance(event, Mapping):
            return {**event, "event_id": self._next_event_id()}
        return attrs.evolve(event, event_id=self._next_event_id())


def _refuses(event: AnyServerEvent, client_event_id: str | None) -> bool:
    """Whether ``event`` is the server refusing the client event ``client_event_id``."""
    if client_event_id is None or not isinstance(event, ErrorEvent):
        return False
    return event.error.event_id == client_event_id


def _event_type(event: ClientEventLike) -> object:
    return event.get("type") if isinstance(event, Mapping) else event.type


def _event_id(event: ClientEventLike) -> str:
    if isinstance(event, Mapping):
        return str(event.get("event_id") or "")
    return event.event_id or ""


_Reaction = Callable[[Session, AnyServerEvent], Any]
_REACTIONS: Final[Mapping[str, _Reaction]] = {
    "response.created": Session._on_response_created,
    "response.done": Session._on_response_done,
    "error": Session._on_error_event,
}
