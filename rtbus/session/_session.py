"""The session actor: one Realtime session, its connection, and its place on the bus.

A ``Session`` is both the handle callers hold (``send``, ``state``, ``statistics``) and the
actor a supervisor runs (``run``). What must outlive one connection lives on the handle: the
send queue, the sequencer, the event-id counter, and the counters metrics read (``_counts``).
Each connection goes:

    connect -> session.created -> session.update -> session.updated -> ready -> pump

and every server event, from the first, is published on the bus in order, with the monotonic
time it arrived. Failures are classified (``rtbus.protocol.Disposition``):

* a recoverable ``error`` event is published; if no subscription takes this session's errors,
  openai-node's rule (an error nobody handles fails loudly) makes it a failure of the actor
  (its supervisor restarts it, and the conversation is resumed);
* a lost connection, a retryable close code or ``session_expired`` reconnects with backoff,
  re-applies the config, publishes ``rtbus.session.reconnected``, restores the conversation
  record, publishes ``rtbus.session.resumed``, and only then flushes the queued client events;
* anything the reconnect policy will not retry (a bad key, a refused config) fails the actor
  as ``Fatal``: it is not restarted.

The conversation record (``_record``) lives on the handle, fed with every server event, so
it survives reconnects and actor restarts alike. A recycle is make-before-break: the next
upstream session is opened and given the record while the current one finishes its
response (``_prepare``), then the session switches to it at the turn boundary (``_switch``),
giving it only what was added meanwhile. Connections are held by tasks of their own
(``_link``) so the prepared one outlives the one it replaces.

The session's state moves only along the table in ``_state`` (it says what happened, the
table says where that leaves it); a stop wins over whatever the connection does meanwhile.

A server error caused by a client event goes back to its sender: ``send(..., on_refused=)``
hands it to the sender, who has then handled it; ``rtbus.session.event_refused`` names the
event and the sender on the bus either way.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import trio

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.actors import ActorContext, Fatal
from rtbus.bus import Bus, Event
from rtbus.protocol import (
    ClientEvent,
    Disposition,
    ErrorDetails,
    ErrorEvent,
    EventOutcome,
    RealtimeConfig,
    RealtimeError,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ServerEvent,
    SessionBadFrame,
    SessionClosed,
    SessionDisconnected,
    SessionEventRefused,
    SessionFailed,
    SessionReady,
    SessionReconnected,
    SessionRecycled,
    SessionResumed,
    UnknownEvent,
    classify_error,
)
from rtbus.transport import (
    ConnectTarget,
    Received,
    ReconnectAttempts,
    SendQueue,
    SendQueueStatistics,
)

from ._cause import RECYCLED, failure_cause
from ._counts import SessionCounts, Tally
from ._errors import HandshakeTimeoutError, UnhandledServerError
from ._labels import OTHER
from ._link import Link, open_link
from ._record import ConversationRecord, ConversationSnapshot, RestorePlan
from ._restore import Restored, Take, restore
from ._sequencer import ResponseSequencer
from ._spec import SessionSpec
from ._state import Happening, SessionState, next_state

__all__ = ["RefusalHandler", "Session", "SessionStatistics"]

_log = logging.getLogger("rtbus.session")

ClientEventLike = ClientEvent | Mapping[str, Any]
AnyServerEvent = ServerEvent | UnknownEvent
RefusalHandler = Callable[[ErrorDetails], object]
"""Takes the upstream's error object (its type, code, message, param and the event's id) for a
client event its sender sent (see ``Session.send``); the same as through the gateway."""

# Client events whose sender is remembered, for errors that come back about them.
_SENDERS_KEPT = 1024


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


@attrs.frozen
class _Sender:
    name: str
    on_refused: RefusalHandler | None


@attrs.define(eq=False)
class _Prepared:
    """The next upstream session of a recycle: open, configured, given the record."""

    link: Link
    upstream_id: str
    restored: frozenset[str]
    started_at: float
    held_back: list[Received]


class _Recycle(Exception):
    """Internal: the connection was closed on purpose to replace the upstream session; with
    the prepared next one, or ``None`` to connect anew (preparing it failed)."""

    def __init__(self, prepared: _Prepared | None) -> None:
        super().__init__(prepared)
        self.prepared = prepared


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
        self._link: Link | None = None
        self._published = 0
        self._attempts: ReconnectAttempts = spec.reconnect.attempts(self._rng)
        self._current: Link | None = None
        self._recycled: _Recycle | None = None
        self._nursery: trio.Nursery | None = None
        self._record = ConversationRecord(spec.record, spec.summarize)
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._upstream_id = ""
        self._lost_at: float | None = None
        self._interrupted: str | None = None
        self._recycle_after = spec.recycle_after_for(upstream)
        self._serving = trio.CancelScope()
        self._ready_signalled = False
        self._ended = False

    # -- the handle ---------------------------------------------------------------------

    async def send(
        self,
        event: ClientEventLike,
        *,
        sender: str = "",
        on_refused: RefusalHandler | None = None,
    ) -> str:
        """Send a client event; returns its ``event_id`` once it went out on a live connection.

        While the session reconnects the event waits in the send queue and goes out, in
        order, once the config is re-applied and the conversation restored. An event without
        an ``event_id`` gets one, so the server's errors about it can be matched: if the
        upstream refuses it, ``rtbus.session.event_refused`` names it and ``sender``, and
        ``on_refused`` (if given) gets the server's ``error`` event. A named sender, or one
        that passes ``on_refused``, has handled the error, so it never fails the session; an
        anonymous one leaves it to the bus (no ``error`` subscriber: the session fails).
        Raises ``ProtocolError`` for a malformed event, ``SendQueueFull`` when the queue is
        full, ``SendQueueClosed`` once the session failed or closed.
        """
        stamped = self._stamped(event)
        event_id = _event_id(stamped)
        self._remember_sender(event_id, _Sender(sender, on_refused))
        try:
            await self._queue.send(stamped)
        except BaseException:
            self._senders.pop(event_id, None)
            raise
        self._tally.sent(_event_type(stamped))
        return event_id

    async def submit(
        self, event: ClientEventLike, *, sender: str = "", within: float
    ) -> EventOutcome:
        """Send a client event and wait up to ``within`` seconds (after it went out) for the
        upstream to refuse it: the outcome says ``accepted`` (no error named it in that time)
        or ``refused`` with the server's error. The error is handled either way. Raises what
        ``send`` raises."""
        refused: list[ErrorDetails] = []
        answered = trio.Event()

        def on_refused(error: ErrorDetails) -> None:
            refused.append(error)
            answered.set()

        event_id = await self.send(event, sender=sender, on_refused=on_refused)
        with trio.move_on_after(within):
            await answered.wait()
        error = refused[0] if refused else None
        return EventOutcome(event_id=event_id, error=error)

    @property
    def interrupted_response(self) -> str | None:
        """The id of the response the last lost (or closed) connection cut off, until the
        conversation is resumed; ``None`` when none was running."""
        return self._interrupted

    def conversation(self) -> ConversationSnapshot:
        """What the session's conversation record holds now (what a new upstream session
        would be given back)."""
        return self._record.snapshot()

    def set_summary(self, summary: str | None) -> None:
        """Set the summary a restore puts in place of the items the record's bound dropped
        (a worker that summarises the call, say); ``None`` removes it."""
        self._record.set_summary(summary)

    def statistics(self) -> SessionStatistics:
        """A frozen snapshot of this session."""
        wire = None if self._link is None else self._link.rt
        return SessionStatistics(
            id=self.id,
            model=self.spec.model,
            state=self.state,
            connects=self._tally.connects,
            reconnects=max(0, self._tally.connects - 1),
            events_published=self._published,
            responses_active=self._sequencer.busy,
            send_queue=self._queue.statistics(),
            counts=self._tally.snapshot(
                None if wire is None else wire.statistics(), items_dropped=self._record.dropped
            ),
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
        if self.state is SessionState.FAILED:
            self._happen(Happening.RESTART)
        self._ready_signalled = False
        self._serving = trio.CancelScope()
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
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
        await self._end(Happening.CLOSE, SessionClosed(reason=self._closed_reason()))
        self._retire()

    async def _serve(self, task_status: trio.TaskStatus[Session]) -> None:
        """Connections, one after another, until one ends normally or a stop cancels them."""
        default = self._default_target()
        target, why = default, _Why(cause=self._restart_cause)
        prepared: _Prepared | None = None
        with self._serving:
            while True:
                try:
                    await self._connection(target, why, task_status, prepared)
                except _Recycle as recycle:
                    target, why = default, _Why(RECYCLED, RECYCLED)
                    prepared = recycle.prepared
                    continue
                except UnhandledServerError:
                    raise  # not the connection's failure: the actor's
                except RealtimeError as failure:
                    why = _Why(str(failure), failure_cause(failure))
                    await self._back_off(failure, why)
                    target = await self.spec.reconnect.target(self._attempts.attempt, default)
                else:
                    return
                prepared = None

    async def _back_off(self, failure: RealtimeError, why: _Why) -> None:
        """Wait before the next attempt, or fail for good if the policy will not retry."""
        if self._closing:
            raise _Stopped
        delay = self._attempts.failed(failure, trio.current_time())
        if delay is None:
            raise Fatal(f"session {self.id} failed: {failure}") from failure
        self._happen(Happening.LOST)
        attempt = self._attempts.attempt
        self._tally.disconnected(why.cause)
        await self._publish(
            SessionDisconnected(reason=why.reason, attempt=attempt, retry_in=delay, cause=why.cause)
        )
        if self._closing:
            raise _Stopped  # asked to stop while this was published: waiting is for nothing
        await trio.sleep(delay)

    async def _connection(
        self,
        target: ConnectTarget,
        why: _Why,
        task_status: trio.TaskStatus[Session],
        prepared: _Prepared | None = None,
    ) -> None:
        """One connection, from connect to close; raises what ended it unless it was normal."""
        self._tally.connects += 1
        link = prepared.link if prepared is not None else await self._open(target)
        self._link = link
        try:
            if prepared is None:
                upstream_id = await self._handshake(link, self._take)
                await self._announce(why, upstream_id)
                await self._resume(link, why, upstream_id)
            else:
                upstream_id = await self._switch(prepared)
            await self._serve_link(link, upstream_id, task_status)
        finally:
            await link.close()
            self._connection_ended(link)
        recycled, self._recycled = self._recycled, None
        if recycled is not None and self._closing:
            await _let_go(recycled.prepared)  # stopping: the next session will not be used
        elif recycled is not None:
            raise recycled

    async def _open(self, target: ConnectTarget) -> Link:
        assert self._nursery is not None
        return await open_link(self._nursery, target, self.spec.connect, self._bad_frame)

    async def _serve_link(
        self, link: Link, upstream_id: str, task_status: trio.TaskStatus[Session]
    ) -> None:
        """The connection is live: client events flow, and every server event is taken."""
        self._upstream_id = upstream_id
        self._attempts.connected(trio.current_time())
        self._current = link
        self._queue.attach(link.rt)
        self._happen(Happening.LIVE)
        if not self._ready_signalled:
            self._ready_signalled = True
            task_status.started(self)
        try:
            await self._pump_until_closed(link)
        finally:
            self._current = None
            self._queue.detach()
            self._lost()

    def _lost(self) -> None:
        """The connection is gone (or being replaced): nothing runs on it any more."""
        self._lost_at = trio.current_time()
        self._interrupted = self._record.interrupt()
        self._sequencer.reset()
        self._notify()

    def _waited(self) -> float:
        """Seconds since the connection was lost: how long the caller has waited."""
        now = trio.current_time()
        return now - (now if self._lost_at is None else self._lost_at)

    def _connection_ended(self, link: Link) -> None:
        if self._link is link:
            self._tally.connection_ended(link.rt.statistics())
            self._link = None

    async def _pump_until_closed(self, link: Link) -> None:
        with unwrap_lone_exception():
            async with trio.open_nursery() as nursery:
                if self._recycle_after is not None:
                    nursery.start_soon(self._recycle, link, self._recycle_after)
                await self._pump(link)
                nursery.cancel_scope.cancel()

    # -- resume: the conversation outlives the connection -------------------------------

    async def _resume(self, link: Link, why: _Why, upstream_id: str) -> None:
        """Give a new upstream session the conversation record, before any queued event."""
        if self._tally.connects == 1 or not self.spec.resume:
            return
        self._happen(Happening.RESTORING)
        plan = self._record.restore_plan()
        with trio.move_on_after(self.spec.ready_timeout) as scope:
            restored = await self._restore(link, plan, self._take)
        if scope.cancelled_caught:
            await trio.aclose_forcefully(link.rt)
            raise HandshakeTimeoutError(self.spec.ready_timeout)
        await self._publish(self._resumed(why.cause, plan, restored, upstream_id, self._waited()))

    def _resumed(
        self, cause: str, plan: RestorePlan, restored: Restored, upstream_id: str, waited: float
    ) -> SessionResumed:
        self._tally.resumed(cause, restored.restored)
        interrupted, self._interrupted = self._interrupted, None
        return SessionResumed(
            cause=cause,
            items_restored=restored.restored,
            items_dropped=plan.dropped,
            items_untranscribed=plan.untranscribed,
            items_refused=restored.refused,
            summarized=plan.summary is not None,
            previous_upstream_session_id=self._upstream_id,
            upstream_session_id=upstream_id,
            waited_seconds=waited,
            interrupted_response_id=interrupted,
        )

    async def _restore(self, link: Link, plan: RestorePlan, take: Take) -> Restored:
        return await restore(link, plan, self._next_restore_id, take)

    # -- recycle: make before break ------------------------------------------------------

    async def _recycle(self, link: Link, after: float) -> None:
        """Replace the upstream session before its limit: prepare the next one beside this
        one, wait for a turn boundary, then close this one for the switch."""
        await trio.sleep(after)
        prepared = await self._prepare()
        try:
            with trio.move_on_after(self.spec.recycle_grace):
                await self._until_idle()
        except BaseException:
            # The current connection failed (or the session stops) meanwhile: the prepared
            # one is nobody's now, and an open upstream session costs money.
            await _let_go(prepared)
            raise
        # No client event may reach this connection from now on: they wait for the next.
        self._queue.detach()
        self._recycled = _Recycle(prepared)
        await link.rt.aclose(1000, "recycled before the upstream session limit")

    async def _prepare(self) -> _Prepared | None:
        """The next upstream session, configured and given the record; what it sends is
        held back until the switch. ``None`` if it could not be had: the recycle then
        connects anew after closing this one."""
        started_at = trio.current_time()
        held_back: list[Received] = []
        link: Link | None = None

        async def hold_back(received: Received) -> None:
            held_back.append(received)

        try:
            with trio.fail_after(self.spec.ready_timeout):
                link = await self._open(self._default_target())
                upstream_id = await self._handshake(link, hold_back)
                plan = self._record.restore_plan()
                await self._restore(link, plan, hold_back)
        except (RealtimeError, trio.TooSlowError, Fatal):
            if link is not None:
                await link.close()
            return None
        except BaseException:
            if link is not None:  # cancelled: the next session must not stay open unread
                with trio.CancelScope(shield=True):
                    await link.close()
            raise
        return _Prepared(link, upstream_id, plan.item_ids, started_at, held_back)

    async def _switch(self, prepared: _Prepared) -> str:
        """Make the prepared upstream session the live one: publish what it sent so far,
        give it what the record gained since its restore, and say so."""
        self._lost()
        self._happen(Happening.RESTORING)
        for received in prepared.held_back:
            await self._take(received)
        plan = self._record.restore_plan(since=prepared.restored)
        with trio.move_on_after(self.spec.ready_timeout) as scope:
            restored = await self._restore(prepared.link, plan, self._take)
        if scope.cancelled_caught:
            # An upstream that stopped answering would hold the queued events for ever.
            await trio.aclose_forcefully(prepared.link.rt)
            raise HandshakeTimeoutError(self.spec.ready_timeout)
        self._tally.recycled(len(prepared.restored) + restored.restored)
        await self._publish(
            SessionRecycled(
                previous_upstream_session_id=self._upstream_id,
                upstream_session_id=prepared.upstream_id,
                items_restored=len(prepared.restored) + restored.restored,
                switch_seconds=self._waited(),
            )
        )
        self._interrupted = None
        return prepared.upstream_id

    def _default_target(self) -> ConnectTarget:
        return ConnectTarget.from_config(
            self._upstream,
            self.spec.connects_to,
            extra_headers=self.spec.extra_headers,
            extra_query=self.spec.extra_query,
        )

    async def _handshake(self, link: Link, take: Take) -> str:
        """Wait for ``session.created``, apply the config, wait for ``session.updated``."""
        with trio.move_on_after(self.spec.ready_timeout) as scope:
            created = await self._until(link, take, "session.created", None)
            update_id = self._next_event_id()
            await link.rt.send(self.spec.update_event(update_id))
            self._tally.sent("session.update")
            await self._until(link, take, "session.updated", update_id)
        if scope.cancelled_caught:
            # An upstream that did not answer in ready_timeout will not answer a close frame
            # in close_timeout either: abort, so the retry (or the failure) is not held up.
            await trio.aclose_forcefully(link.rt)
            raise HandshakeTimeoutError(self.spec.ready_timeout)
        return _upstream_session_id(created)

    async def _until(
        self, link: Link, take: Take, type: str, refused_if: str | None
    ) -> AnyServerEvent:
        """Take events until one of ``type``; the config being refused is fatal."""
        while (received := await link.next()) is not None:
            event = received.event
            if _refuses(event, refused_if):
                assert isinstance(event, ErrorEvent)
                refused = RealtimeError.from_event(event)
                raise Fatal(f"the session config was refused: {event.error.message}") from refused
            await take(received)
            if event.type == type:
                return event
        raise RealtimeError(f"the connection closed before {type}")

    async def _pump(self, link: Link) -> None:
        while (received := await link.next()) is not None:
            await self._take(received)

    async def _take(self, received: Received) -> None:
        """Publish one server event with the time its frame arrived and its bytes, then let
        the record and the session react to it."""
        event = received.event
        await self._publish(event, received_at=received.received_at, raw=received.raw)
        self._record.observe(event)
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
        handled = await self._refused(event)
        if not handled and not self._bus.has_subscriber(self.id, "error"):
            # The rule of openai-node's realtime base module: an error nobody handles fails
            # loudly. Here that is a supervised failure of this one session.
            raise UnhandledServerError.from_event(event)

    async def _refused(self, event: ErrorEvent) -> bool:
        """Take a server error about a client event back to its sender; whether it is
        handled (the sender took it, or it was rtbus's own restore)."""
        event_id = event.error.event_id or ""
        if event_id.startswith(self._restore_prefix):
            return True  # counted in rtbus.session.resumed
        sender = self._senders.pop(event_id, None)
        if sender is None:
            return False
        error = event.error
        refused = SessionEventRefused(
            event_id=event_id,
            sender=sender.name,
            code=error.code,
            message=error.message,
            param=error.param,
        )
        await self._publish(refused)
        if sender.on_refused is not None:
            try:
                sender.on_refused(event.error)
            except Exception:
                # The sender's handler is the sender's business: it never fails the session.
                _log.exception("the on_refused handler of %s raised", sender.name or "a sender")
        # A named sender (the control API, a gateway connection) learns of it through the
        # event above; an anonymous one that passed no handler left it to the bus.
        return bool(sender.name) or sender.on_refused is not None

    async def _bad_frame(self, message: str) -> None:
        await self._publish(SessionBadFrame(message=message))

    # -- lifecycle ----------------------------------------------------------------------

    async def _announce(self, why: _Why, upstream_id: str) -> None:
        """Tell the bus: ready, or reconnected (to a new upstream session)."""
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

    async def _end(self, happening: Happening, event: SessionClosed | SessionFailed) -> None:
        self._happen(happening)
        with trio.CancelScope(shield=True):
            await self._publish(event)

    async def _failed(self, failure: Exception) -> None:
        cause = self._restart_cause = failure_cause(failure)
        self._tally.failed(cause)
        await self._end(Happening.FAIL, SessionFailed(reason=str(failure), cause=cause))
        if isinstance(failure, Fatal):
            # Not restarted: senders waiting on the queue learn now, not never.
            self._queue.fail(failure)
            self._retire()

    def _retire(self) -> None:
        """Over for good: the bus drops the sequence counter (a restart would continue it)."""
        self._ended = True
        self._bus.forget(self.id)

    def _closed_reason(self) -> str:
        return "closed by rtbus" if self._closing else "closed by the server"

    async def _stop_when_asked(self, ctx: ActorContext) -> None:
        """A stop request: take no more events, let the running response finish, close 1000.

        The supervisor cancels the actor if this outlasts the child's shutdown grace.
        """
        await ctx.wait_stop_requested()
        self._happen(Happening.STOP)
        await self._queue.aclose()
        await self._until_idle()
        if self._current is None:
            # Between connections (backing off, connecting): nothing to close gracefully.
            self._serving.cancel()
        else:
            await self._current.rt.aclose(1000, "session closed")

    async def _until_idle(self) -> None:
        while self._sequencer.busy:
            await self._changed.wait()

    # -- plumbing -----------------------------------------------------------------------

    async def _publish(
        self, event: Event, *, received_at: float | None = None, raw: bytes | None = None
    ) -> None:
        """Publish ``event``; a server event with the time its frame arrived and the frame's
        bytes, a lifecycle event with now."""
        type_ = event.type
        at = trio.current_time() if received_at is None else received_at
        try:
            self._bus.publish_nowait(self.id, type_, event, received_at=at, raw=raw)
        except trio.WouldBlock:
            await self._bus.publish(self.id, type_, event, received_at=at, raw=raw)
        self._published += 1
        self._tally.published(type_)

    def _happen(self, happening: Happening) -> None:
        self.state = next_state(self.state, happening)

    @property
    def _closing(self) -> bool:
        """Asked to stop: no reconnect, no recycle, no restart of the wait."""
        return self.state is SessionState.CLOSING

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _next_event_id(self) -> str:
        return f"{self.id}:{next(self._event_ids)}"

    @property
    def _restore_prefix(self) -> str:
        return f"{self.id}:restore:"

    def _next_restore_id(self) -> str:
        return f"{self._restore_prefix}{next(self._event_ids)}"

    def _remember_sender(self, event_id: str, sender: _Sender) -> None:
        self._senders[event_id] = sender
        while len(self._senders) > _SENDERS_KEPT:
            self._senders.popitem(last=False)

    def _stamped(self, event: ClientEventLike) -> ClientEventLike:
        if _event_id(event):
            return event
        if isinstance(event, Mapping):
            return {**event, "event_id": self._next_event_id()}
        return attrs.evolve(event, event_id=self._next_event_id())


async def _let_go(prepared: _Prepared | None) -> None:
    """Close a prepared next upstream session that will not be used, whatever else happens."""
    if prepared is not None:
        with trio.CancelScope(shield=True):
            await prepared.link.close()


def _upstream_session_id(created: AnyServerEvent) -> str:
    """The id in ``session.created``: a field the GA session models leave to extra fields."""
    session = getattr(created, "session", None)
    extra: Mapping[str, object] = getattr(session, "_extra", {})
    return str(getattr(session, "id", None) or extra.get("id") or "")


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
