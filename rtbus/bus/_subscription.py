"""A subscription: one subscriber's bounded buffer of envelopes, with its overflow policy.

Invariants:

* The buffer is a deque holding at most ``maxsize`` envelopes, counting the one a
  ``delivery()`` has handed out and not yet settled (``_held``): memory stays bounded even
  while a handler works.
* Publishers blocked under ``block`` wait in FIFO order with their envelope
  (``_publishers``). Room is handed to them the moment it appears (their envelopes move
  into the buffer, in that order), so publishers wait only while the buffer is full and a
  later publisher can never slip in ahead. (Order across the subscriptions of one publish
  is the bus's business: it lets one publish per session wait at a time.)
* Reading is one task at a time, and a delivery counts as a read until it settles; a second
  reader gets ``trio.BusyResourceError``. Every read is a cancel point; one that leaves a
  backlog is a schedule point only once its reader has run for a while (``Turns``).
* A blocked publisher is never left behind: closing the subscription, ending it (the bus
  closed), disconnecting it and cutting it loose all reschedule every waiting publisher.
* With a ``block_timeout`` a publisher waits at most that long here. The first one to run
  out of time cuts the subscription loose (TOO_SLOW): everything not delivered for good is
  counted as dropped (the buffer and the waiting publishers' envelopes), every publisher is
  released, and ``_wait_for_room`` returns the ``SubscriberDisconnected`` for the bus to
  announce. The timer exists only while a publisher waits: the path with room has none.
* States: OPEN takes envelopes; ENDED (the bus closed) takes no more but drains what it
  holds, then reads end; CLOSED (the subscriber closed it), OVERFLOWED (``disconnect``) and
  TOO_SLOW (``block`` past ``block_timeout``) discard the buffer and reads raise.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Final

import attrs
import trio

from rtbus._turns import Turns

from ._envelope import Envelope
from ._errors import SubscriberOverflowError, SubscriberTooSlowError
from ._filters import SessionFilter, TypeFilter
from ._lifecycle import SubscriberDisconnected
from ._overflow import OverflowPolicy
from ._tap import BusTap

__all__ = ["Subscription", "SubscriptionStatistics"]


class _State(enum.Enum):
    OPEN = "open"
    ENDED = "ended"
    CLOSED = "closed"
    OVERFLOWED = "overflowed"
    TOO_SLOW = "too_slow"


# States whose buffer may still be read (an ended subscription drains first).
_READABLE: Final = frozenset({_State.OPEN, _State.ENDED})
_log = logging.getLogger("rtbus.bus")


@attrs.frozen
class SubscriptionStatistics:
    """A snapshot of one subscription, for the subscriber and for metrics at scrape time.

    * ``delivered`` -- envelopes the subscriber has taken for good (received, or a delivery
      that settled cleanly).
    * ``dropped`` -- envelopes discarded by the overflow policy.
    * ``lag`` -- envelopes dropped between the subscriber's previous read and its latest one:
      read it right after a receive to learn how many were missed before that envelope.
    * ``queued`` -- envelopes in the buffer, counting one being handled by a delivery.
    * ``redelivered`` -- deliveries whose handler raised, so the envelope went back.
    * ``publishers_waiting`` -- publishers blocked on this subscription (``block`` only).
    * ``blocked_seconds`` -- how long the longest-waiting of them has waited (0.0 if none).
    * ``block_timeout`` -- how long a publisher may wait before the subscription is cut
      loose (``None``: for ever).
    * ``offered`` -- envelopes published to it; every one is accounted for, always:
      ``offered == delivered + dropped + queued + publishers_waiting + discarded +
      withdrawn``, so nothing is ever lost uncounted.
    * ``discarded`` -- envelopes left unread when the subscriber closed it (or the bus closed
      on a publisher still waiting): given up by the subscriber, not by a policy.
    * ``withdrawn`` -- envelopes whose publisher was cancelled while it waited for room.
    """

    delivered: int
    dropped: int
    lag: int
    queued: int
    maxsize: int
    policy: OverflowPolicy
    redelivered: int
    publishers_waiting: int
    blocked_seconds: float = 0.0
    block_timeout: float | None = None
    offered: int = 0
    discarded: int = 0
    withdrawn: int = 0


class Subscription(trio.abc.AsyncResource):
    """A subscriber's view of the bus: a bounded buffer and an async iterator of envelopes.

    Made by ``Bus.subscribe``, which registers it at once, so nothing published after that
    call is missed. Use it as an async context manager so it is closed when you are done.

    Two ways to read:

    * ``async for envelope in sub`` (or ``await sub.receive()``) takes each envelope out of
      the buffer as it is handed over: if the handler then fails, that envelope is gone.
    * ``async with sub.delivery() as envelope`` keeps the envelope at the head of the buffer
      until the block exits cleanly. If the body raises or is cancelled it stays there, so a
      worker restarted around the same subscription gets it again; under ``block`` nothing is
      lost across the restart. This is how a supervised worker should read.

    Both end with the bus: ``receive`` and ``delivery`` raise ``trio.EndOfChannel`` and the
    iterator stops once an ended subscription is drained. Reading a subscription closed with
    ``aclose`` raises ``trio.ClosedResourceError``; one that overflowed under ``disconnect``
    raises ``SubscriberOverflowError``.
    """

    def __init__(
        self,
        *,
        types: TypeFilter,
        sessions: SessionFilter,
        maxsize: int,
        policy: OverflowPolicy,
        on_detach: Callable[[Subscription], None],
        block_timeout: float | None = None,
        tap: BusTap | None = None,
        observer: bool = False,
    ) -> None:
        self._tap = tap
        #: Only watches: it does not count as handling a session's errors (``Bus.subscribe``).
        self.observer = observer
        self._types = types
        self._sessions = sessions
        self._maxsize = maxsize
        self._policy = policy
        self._block_timeout = block_timeout
        self._on_full = _ON_FULL[policy]
        self._on_detach: Callable[[Subscription], None] | None = on_detach
        self._state = _State.OPEN
        self._buffer: deque[Envelope] = deque()
        self._held: Envelope | None = None
        self._reading = False
        self._reader: trio.lowlevel.Task | None = None
        self._turns = Turns()  # a read that did not wait lets others run only now and then
        self._spill: Callable[[], object] | None = None  # ``on_full``
        # Each waiting publisher's envelope and when it began to wait (oldest first).
        self._publishers: dict[trio.lowlevel.Task, tuple[Envelope, float]] = {}
        self._delivered = self._dropped = self._redelivered = 0
        self._given_up = 0  # publishers past block_timeout, aborted, not yet counted
        self._offered = self._discarded = self._withdrawn = 0
        self._stopped: trio.Event | None = None  # made for wait_stopped only
        self._lag = self._dropped_since_read = 0

    def __repr__(self) -> str:
        sessions = "*" if self._sessions is None else sorted(self._sessions)
        types = "*" if self._types.everything else [*sorted(self._types.exact), *self._types.globs]
        return (
            f"<Subscription types={types} sessions={sessions} policy={self._policy.value} "
            f"maxsize={self._maxsize}{self._timeout_shown()} state={self._state.value}>"
        )

    def _timeout_shown(self) -> str:
        return "" if self._block_timeout is None else f" block_timeout={self._block_timeout:g}s"

    @property
    def policy(self) -> OverflowPolicy:
        """What this subscription does when its buffer is full."""
        return self._policy

    @property
    def maxsize(self) -> int:
        """How many envelopes the buffer holds."""
        return self._maxsize

    @property
    def block_timeout(self) -> float | None:
        """How long a publisher may wait for room before the subscription is cut loose."""
        return self._block_timeout

    @property
    def lag(self) -> int:
        """Envelopes dropped just before the latest read's first, as ``statistics().lag``
        (without making a snapshot: a forwarder asks this per read)."""
        return self._lag

    @property
    def buffered(self) -> int:
        """Envelopes waiting in the buffer, as ``statistics().queued`` but for one a
        ``delivery()`` holds (without making a snapshot: a forwarder asks this per turn)."""
        return len(self._buffer)

    def on_full(self, take: Callable[[], object] | None) -> None:
        """While set, a publish that finds the buffer full first calls ``take``, and the
        policy applies only if that left no room. For a reader that gathers a batch over
        several turns and only counts what arrives (the gateway's forwarder): ``take`` reads
        what is buffered (``receive_buffered``), so the buffer absorbs what it would had the
        reader taken each turn's. ``None`` unsets it."""
        self._spill = take

    @property
    def closed(self) -> bool:
        """Whether it takes no more envelopes (closed, overflowed under ``disconnect``, cut
        loose for being too slow, or the bus closed)."""
        return self._state is not _State.OPEN

    @property
    def _disconnected(self) -> bool:
        """Whether its policy closed it (``disconnect`` or a ``block_timeout``)."""
        return self._state in _DISCONNECTED

    def statistics(self) -> SubscriptionStatistics:
        """A frozen snapshot of this subscription's counters."""
        return SubscriptionStatistics(
            delivered=self._delivered,
            dropped=self._dropped,
            lag=self._lag,
            queued=self._occupancy(),
            maxsize=self._maxsize,
            policy=self._policy,
            redelivered=self._redelivered,
            publishers_waiting=len(self._publishers),
            blocked_seconds=self.blocked_seconds(),
            block_timeout=self._block_timeout,
            offered=self._offered,
            discarded=self._discarded,
            withdrawn=self._withdrawn,
        )

    def blocked_seconds(self) -> float:
        """How long the longest-waiting publisher has waited for room here (0.0 if none)."""
        for _, since in self._publishers.values():
            return trio.current_time() - since  # the first is the oldest
        return 0.0

    # -- reading -------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def receive(self) -> Envelope:
        """The next envelope, taken out of the buffer; waits while the buffer is empty.

        Raises ``trio.EndOfChannel`` once the bus has closed and the buffer is drained.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._begin_read()
        try:
            parked = await self._wait_for_head()
            envelope = self._take()
        finally:
            self._reading = False
        self._delivered += 1
        if self._tap is not None:
            self._tap.taken(envelope, trio.current_time())
        await self._turns.after_read(parked=parked, waiting=len(self._buffer))
        return envelope

    async def receive_batch(self, max_items: int) -> list[Envelope]:
        """Up to ``max_items`` envelopes, in order: waits for the first, then takes whatever
        else is buffered, in one scheduler turn (a forwarder that writes in batches reads so).

        ``lag`` afterwards counts the envelopes dropped before the batch. Raises like
        ``receive``.
        """
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._begin_read()
        try:
            parked = await self._wait_for_head()
            batch = self._take_batch(max_items)
        finally:
            self._reading = False
        await self._turns.after_read(parked=parked, waiting=len(self._buffer))
        return batch

    def receive_buffered(self, max_items: int) -> list[Envelope]:
        """Up to ``max_items`` envelopes already buffered, without waiting: empty when none
        is, or when the subscription can no longer be read (the next ``receive`` raises why).

        Not a checkpoint. A forwarder that took a batch reads so after a scheduler turn, to
        add what the publishers of that turn brought before it writes (``lag`` as after
        ``receive_batch``).
        """
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if not self._buffer or self._state not in _READABLE:
            return []
        self._begin_read()
        try:
            return self._take_batch(max_items)
        finally:
            self._reading = False

    def _take_batch(self, max_items: int) -> list[Envelope]:
        batch = [self._take()]
        while self._buffer and len(batch) < max_items:
            batch.append(self._buffer.popleft())
        self._admit_publishers()
        self._delivered += len(batch)
        if self._tap is not None:
            now = trio.current_time()
            for envelope in batch:
                self._tap.taken(envelope, now)
        return batch

    @contextlib.asynccontextmanager
    async def delivery(self) -> AsyncIterator[Envelope]:
        """The next envelope, removed from the buffer only when the block exits cleanly.

        If the block raises or is cancelled the envelope goes back to the head of the buffer
        for the next read (counted in ``redelivered``), unless the subscription has been
        closed meanwhile, or ``drop_oldest`` gave it up to make room (``maxsize=1``).
        Raises ``trio.EndOfChannel`` on entry once the bus has closed and the buffer is
        drained.
        """
        envelope = await self._hold()
        try:
            yield envelope
        except BaseException:
            self._settle(envelope, done=False)
            raise
        self._settle(envelope, done=True)

    async def _hold(self) -> Envelope:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._begin_read()
        try:
            parked = await self._wait_for_head()
        except BaseException:
            self._reading = False
            raise
        self._held = envelope = self._take()
        await self._turns.after_read(parked=parked, waiting=len(self._buffer))
        return envelope

    def _settle(self, envelope: Envelope, *, done: bool) -> None:
        self._reading = False
        if self._held is not envelope:
            return  # given up by drop_oldest, or the subscription was closed meanwhile
        self._held = None
        if done:
            self._delivered += 1
            if self._tap is not None:
                self._tap.taken(envelope, trio.current_time())
            self._admit_publishers()
        else:
            self._buffer.appendleft(envelope)
            self._redelivered += 1

    def _begin_read(self) -> None:
        if self._reading:
            raise trio.BusyResourceError(
                "another task is reading this subscription, or a delivery is in progress"
            )
        self._reading = True

    async def _wait_for_head(self) -> bool:
        """Wait until the buffer has an envelope; whether this task had to park."""
        self._raise_if_unreadable()
        parked = False
        while not self._buffer:
            if self._state is _State.ENDED:
                raise trio.EndOfChannel
            await self._park_reader()
            parked = True
            self._raise_if_unreadable()
        return parked

    def _raise_if_unreadable(self) -> None:
        if self._state is _State.CLOSED:
            raise trio.ClosedResourceError("this subscription was closed")
        if self._state is _State.OVERFLOWED:
            raise SubscriberOverflowError(self._maxsize, self._dropped)
        if self._state is _State.TOO_SLOW:
            raise SubscriberTooSlowError(self._maxsize, self._dropped, self._block_timeout)

    def _take(self) -> Envelope:
        envelope = self._buffer.popleft()
        self._lag, self._dropped_since_read = self._dropped_since_read, 0
        self._admit_publishers()
        return envelope

    async def _park_reader(self) -> None:
        self._reader = trio.lowlevel.current_task()

        def abort(raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._reader = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _wake_reader(self) -> None:
        if self._reader is not None:
            trio.lowlevel.reschedule(self._reader)
            self._reader = None

    # -- publishing (called by the bus) --------------------------------------------------

    def _offer(self, envelope: Envelope) -> bool:
        """Queue ``envelope``; False when the publisher must wait (``_wait_for_room``)."""
        if self._state is not _State.OPEN:
            return True
        full = self._full()
        self._offered += 1
        if full:
            return self._on_full(self, envelope)
        self._buffer.append(envelope)
        self._wake_reader()
        return True

    def _would_block(self) -> bool:
        return self._policy is OverflowPolicy.BLOCK and self._state is _State.OPEN and self._full()

    def _full(self) -> bool:
        """Whether the buffer is full, once an ``on_full`` reader has taken what it would.
        A ``take`` that raises costs only its own batch: it is logged, and the policy
        applies as if it had taken nothing."""
        if self._occupancy() < self._maxsize:
            return False
        if self._spill is not None and not self._reading:
            try:
                self._spill()
            except Exception:
                _log.exception("a subscription's on_full reader failed; its policy applies")
        return self._occupancy() >= self._maxsize

    async def _wait_for_room(self, envelope: Envelope) -> SubscriberDisconnected | None:
        """Park the publisher until its envelope is admitted or the subscription stops.

        With a ``block_timeout``, a publisher still parked when it runs out cuts the
        subscription loose and returns what happened, for the bus to announce.
        """
        task = trio.lowlevel.current_task()
        since = trio.current_time()
        self._publishers[task] = (envelope, since)
        timeout = self._block_timeout

        def abort(raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            del self._publishers[task]
            # Publishers whose deadlines pass together are all aborted before the first of
            # them runs: the one that cuts counts the others' envelopes as lost too.
            if timeout is not None and trio.current_time() >= since + timeout:
                self._given_up += 1
            else:
                self._withdrawn += 1
            return trio.lowlevel.Abort.SUCCEEDED

        if timeout is None:
            await trio.lowlevel.wait_task_rescheduled(abort)
            return None
        with trio.move_on_at(since + timeout) as waiting:
            await trio.lowlevel.wait_task_rescheduled(abort)
        # Rescheduled (admitted or released) means no Cancelled was raised in the scope, even
        # if the deadline passed meanwhile: only a publisher still parked gives up, and only
        # the first of those cuts.
        if waiting.cancelled_caught and self._state is _State.OPEN:
            return self._cut_loose(since)
        return None

    def _cut_loose(self, since: float) -> SubscriberDisconnected:
        """A publisher waited ``block_timeout``: close the subscription so the fleet moves
        on. Lost: what is buffered and every waiting or given-up publisher's envelope."""
        assert self._block_timeout is not None
        now = trio.current_time()
        lost = self._occupancy() + len(self._publishers) + self._given_up
        self._given_up = 0
        self._count_dropped(lost)
        self._stop(_State.TOO_SLOW)
        return SubscriberDisconnected(
            subscription=repr(self),
            policy=self._policy,
            reason="too_slow",
            maxsize=self._maxsize,
            block_timeout=self._block_timeout,
            blocked=now - since,
            dropped=lost,
            at=now,
        )

    def _admit_publishers(self) -> None:
        while self._publishers and self._occupancy() < self._maxsize:
            task = next(iter(self._publishers))
            self._buffer.append(self._publishers.pop(task)[0])
            trio.lowlevel.reschedule(task)
        if self._buffer:
            self._wake_reader()

    def _release_publishers(self) -> None:
        for task in self._publishers:
            trio.lowlevel.reschedule(task)
        self._publishers.clear()

    def _occupancy(self) -> int:
        return len(self._buffer) + (self._held is not None)

    # -- overflow policies: what _offer does when the buffer is full ---------------------

    def _block(self, envelope: Envelope) -> bool:
        return False

    def _drop_oldest(self, envelope: Envelope) -> bool:
        if self._buffer:
            self._buffer.popleft()
        else:
            self._held = None  # the only envelope is being handled: it will not come back
        self._count_dropped(1)
        self._buffer.append(envelope)
        return True

    def _drop_newest(self, envelope: Envelope) -> bool:
        self._count_dropped(1)
        return True

    def _disconnect(self, envelope: Envelope) -> bool:
        # Everything not yet delivered for good is lost: the queue, an envelope a handler
        # holds (it can no longer be settled), and the one that did not fit.
        self._count_dropped(self._occupancy() + 1)
        self._stop(_State.OVERFLOWED)
        return True

    def _count_dropped(self, count: int) -> None:
        self._dropped += count
        self._dropped_since_read += count

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the subscription now: discard its buffer, release blocked publishers.

        A task waiting in ``receive`` or ``delivery`` gets ``trio.ClosedResourceError``.
        Idempotent.
        """
        if self._state is not _State.CLOSED:
            self._stop(_State.CLOSED)

    async def wait_stopped(self) -> None:
        """Return once reading would raise rather than wait: the subscription was closed,
        overflowed under ``disconnect`` or cut loose for being too slow (not when the bus
        closed: that drains). For a forwarder that stops reading while its own consumer
        has no room and must still learn at once that it was cut."""
        if self._state in _STOPPED:
            await trio.lowlevel.checkpoint()
            return
        if self._stopped is None:
            self._stopped = trio.Event()
        await self._stopped.wait()

    async def aclose(self) -> None:
        """Close the subscription (see ``close``); a checkpoint, as ``aclose`` always is."""
        self.close()
        await trio.lowlevel.checkpoint()

    def _end(self) -> None:
        """The bus closed: take nothing more, drain what is queued, then end reads."""
        if self._state is _State.OPEN:
            self._state = _State.ENDED
            # Released (and any given up at their deadline): their envelopes never enter.
            self._discarded += len(self._publishers) + self._given_up
            self._given_up = 0
            self._release_publishers()
            self._wake_reader()

    def _stop(self, state: _State) -> None:
        if state is _State.CLOSED:
            # Publishers given up at their deadline whose cut never came are discarded too.
            self._discarded += self._occupancy() + len(self._publishers) + self._given_up
            self._given_up = 0
        self._state = state
        self._buffer.clear()
        self._held = None
        self._release_publishers()
        self._wake_reader()
        if self._stopped is not None:
            self._stopped.set()
        self._detach()

    def _detach(self) -> None:
        on_detach, self._on_detach = self._on_detach, None
        if on_detach is not None:
            on_detach(self)


_DISCONNECTED = frozenset({_State.OVERFLOWED, _State.TOO_SLOW})
_STOPPED = frozenset({_State.CLOSED, *_DISCONNECTED})

_ON_FULL: dict[OverflowPolicy, Callable[[Subscription, Envelope], bool]] = {
    OverflowPolicy.BLOCK: Subscription._block,
    OverflowPolicy.DROP_OLDEST: Subscription._drop_oldest,
    OverflowPolicy.DROP_NEWEST: Subscription._drop_newest,
    OverflowPolicy.DISCONNECT: Subscription._disconnect,
}
