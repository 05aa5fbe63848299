"""The in-process bus: sessions publish envelopes, subscriptions take the ones they match.

Invariants:

* Each session's envelopes carry ``seq`` 1, 2, 3, ... in publish order; ``forget`` drops the
  counter when the session ends (a session id used again starts over at 1).
* One ``Envelope`` per publish, the same object in every subscription.
* Routing goes through a ``RoutingIndex``: subscriptions that do not match are not visited.
* At most one publish per session waits under ``block`` at a time; the others queue on the
  session's turn (a FIFO lock made only while one waits). Without it, two publishers released
  by one subscription could reach the next one in either order.
* A publish waits at most ``block_timeout`` on a subscription that has one. The first
  publisher past it cuts that subscription loose: every publisher waiting on it is released
  at once and goes on, still holding its session's turn, to the subscriptions after it in
  the same order, so per-session order and "one waiting publish per session" hold. The
  timer is armed only once a publisher has to wait; a publish that finds room pays nothing.
* A cut is logged and announced as ``rtbus.bus.subscriber_disconnected`` under
  ``BUS_SESSION``, by the publisher that cut it, once its own envelope has been delivered
  and its turn released (the announcement is an ordinary publish: it never holds a turn it
  has not taken in order).
* Statistics are counted where they happen (in each subscription) and summed when asked for;
  a subscription's counts are folded into the bus's totals when it detaches, so the totals
  never go down. Nothing is counted per publish but ``published``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

import attrs
import trio

from ._envelope import Envelope, Event
from ._errors import BusArgumentError
from ._filters import parse_sessions, parse_types
from ._lifecycle import BUS_SESSION, SubscriberDisconnected
from ._overflow import OverflowPolicy, parse_policy
from ._routing import RoutingIndex
from ._subscription import Subscription, SubscriptionStatistics
from ._tap import BusTap

__all__ = ["Bus", "BusLimits", "BusStatistics", "check_maxsize", "checked_timeout"]

_log = logging.getLogger("rtbus.bus")

_NO_DISCONNECTIONS: Final = MappingProxyType(dict.fromkeys(OverflowPolicy, 0))


def checked_timeout(argument: str, seconds: float) -> float:
    # bool is an int, but block_timeout=True is a mistake, not one second.
    number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if number and seconds > 0 and math.isfinite(seconds):
        return seconds
    raise BusArgumentError(argument, f"must be a positive number of seconds, got {seconds!r}")


def _timeout(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    checked_timeout(attribute.name, value)


@attrs.frozen(kw_only=True)
class BusLimits:
    """How long slow subscribers may hold the publishers up.

    * ``remote_block_timeout`` -- the ``block_timeout`` of subscriptions made for subscribers
      the service does not control: the gateway's default (and the most a client may ask
      for) and the Redis bridge's. 5 s: long enough for a healthy consumer to ride out a GC
      pause, a network hiccup or a burst (a session publishes tens of events a second, so it
      is hundreds of envelopes of slack on top of the buffer); short enough that a stuck one
      costs every session a few seconds once, not for as long as it stays connected.
    * ``blocked_warn_seconds`` -- a publisher blocked this long shows in
      ``Bus.readiness_problem`` (``/readyz``): long past a burst, well before a cut.

    Subscriptions made in process with ``Bus.subscribe`` wait for ever unless told.
    """

    remote_block_timeout: float = attrs.field(default=5.0, validator=_timeout)
    blocked_warn_seconds: float = attrs.field(default=1.0, validator=_timeout)


@attrs.frozen
class BusStatistics:
    """A snapshot of the bus, read at scrape time.

    * ``published`` -- envelopes published since the bus was made.
    * ``delivered`` -- envelopes subscribers have taken, over all subscriptions ever.
    * ``dropped`` -- envelopes discarded, by the overflow policy that discarded them
      (every policy is a key; ``block`` drops only when it cuts a subscription loose past
      its ``block_timeout``).
    * ``subscriptions`` -- subscriptions open now.
    * ``sessions`` -- sessions with a sequence counter (published and not yet forgotten).
    * ``disconnected`` -- subscriptions closed by their policy, by policy: ``disconnect``
      overflowed, ``block`` kept a publisher waiting past ``block_timeout``.
    * ``blocked_seconds_max`` -- how long the longest-waiting publisher now has waited.
    """

    published: int
    delivered: int
    dropped: Mapping[OverflowPolicy, int]
    subscriptions: int
    sessions: int
    disconnected: Mapping[OverflowPolicy, int] = _NO_DISCONNECTIONS
    blocked_seconds_max: float = 0.0


class Bus(trio.abc.AsyncResource):
    """The in-process bus every session publishes to and every worker subscribes to.

    Close it with ``aclose`` (or use it as an async context manager): subscriptions then take
    nothing more, hand out what they hold, and their iterators stop.

    ``limits`` bound how long slow subscribers may hold publishers up (``BusLimits``).
    """

    def __init__(self, limits: BusLimits | None = None, *, tap: BusTap | None = None) -> None:
        self.limits = BusLimits() if limits is None else limits
        self._tap = tap
        self._seqs: dict[str, int] = {}
        # Sessions with a publish waiting under ``block``: later publishes queue on the lock.
        self._turns: dict[str, trio.Lock] = {}
        self._routes: RoutingIndex[Subscription] = RoutingIndex()
        self._live: dict[Subscription, None] = {}  # insertion-ordered set
        self._published = 0
        self._retired_delivered = 0
        self._retired_dropped = dict.fromkeys(OverflowPolicy, 0)
        self._disconnected = dict.fromkeys(OverflowPolicy, 0)
        self._closed = False

    def subscribe(
        self,
        *,
        sessions: str | Iterable[str] = "*",
        types: str | Iterable[str] = "*",
        maxsize: int = 256,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = None,
        observer: bool = False,
    ) -> Subscription:
        """A new subscription to the envelopes matching ``sessions`` and ``types``.

        ``sessions`` is ``"*"``, one session id, or an iterable of ids; ``types`` is ``"*"``,
        one type or glob (``"response.*"``), or an iterable of them. ``maxsize`` bounds the
        subscription's buffer and ``overflow`` (an ``OverflowPolicy`` or its value) says what
        happens when it is full. Under ``block``, ``block_timeout`` (seconds) bounds how long
        one publish waits for room: past it the subscription is cut loose and its reader gets
        ``SubscriberTooSlowError``; ``None`` waits for ever. It is registered at once:
        envelopes published from now on reach it. Raises ``BusArgumentError`` for a bad
        argument and ``trio.ClosedResourceError`` once the bus is closed.

        An ``observer`` subscription (``rtbus tail``, a dashboard) only watches: it does not
        count as someone handling a session's ``error`` events (``has_subscriber``), so
        watching a service never changes what an unhandled error does.
        """
        self._raise_if_closed()
        check_maxsize(maxsize)
        if block_timeout is not None:
            checked_timeout("block_timeout", block_timeout)
        type_filter, session_filter = parse_types(types), parse_sessions(sessions)
        subscription = Subscription(
            types=type_filter,
            sessions=session_filter,
            maxsize=maxsize,
            policy=parse_policy(overflow),
            on_detach=self._detach,
            block_timeout=block_timeout,
            tap=self._tap,
            observer=observer,
        )
        self._routes.add(subscription, type_filter, session_filter)
        self._live[subscription] = None
        return subscription

    async def publish(
        self,
        session_id: str,
        type: str,
        event: Event,
        *,
        received_at: float,
        raw: bytes | None = None,
    ) -> Envelope:
        """Publish ``event`` for ``session_id``; the envelope, with its sequence number.

        Under ``block`` this waits while a matching subscription is full, and later publishes
        for the same session wait their turn behind it, so order holds even with several
        publishers. A subscription with a ``block_timeout`` is waited on at most that long,
        then cut loose, and this publish goes on to the rest (and then announces the cut). If
        cancelled while waiting, the envelope has reached the subscriptions before the full
        one and not the rest; its ``seq`` is spent, so those subscribers see the gap.
        Lifecycle events (``rtbus.session.reconnected``, ...) go through here too,
        under their own types.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        targets = self._targets(session_id, type)
        if session_id in self._turns:
            return await self._publish_in_turn(session_id, type, event, received_at, raw)
        envelope = self._stamp(session_id, type, event, received_at, raw)
        for index, subscription in enumerate(targets):
            if not subscription._offer(envelope):
                await self._finish_in_turn(envelope, targets[index:])
                return envelope
        await trio.lowlevel.cancel_shielded_checkpoint()
        return envelope

    def publish_nowait(
        self,
        session_id: str,
        type: str,
        event: Event,
        *,
        received_at: float,
        raw: bytes | None = None,
    ) -> Envelope:
        """Publish without waiting, all or nothing.

        Raises ``trio.WouldBlock`` if a matching ``block`` subscription is full, or another
        publish for the session is waiting; then the envelope reached no one and no ``seq``
        was spent.
        """
        targets = self._targets(session_id, type)
        if session_id in self._turns or any(sub._would_block() for sub in targets):
            raise trio.WouldBlock
        envelope = self._stamp(session_id, type, event, received_at, raw)
        for subscription in targets:
            subscription._offer(envelope)
        return envelope

    def has_subscriber(self, session_id: str, type: str) -> bool:
        """Whether an envelope of ``type`` from ``session_id`` would reach any subscription.

        The session actor asks this about ``error``: an error nobody takes must fail loudly.
        Observer subscriptions do not count: they watch, they do not handle.
        """
        return any(not sub.observer for sub in self._routes.targets(session_id, type))

    def forget(self, session_id: str) -> None:
        """Drop ``session_id``'s sequence counter: the session has ended."""
        self._seqs.pop(session_id, None)

    def statistics(self) -> BusStatistics:
        """A frozen snapshot of the bus's counters."""
        dropped = dict(self._retired_dropped)
        delivered = self._retired_delivered
        blocked = 0.0
        for subscription in self._live:
            stats = subscription.statistics()
            delivered += stats.delivered
            dropped[stats.policy] += stats.dropped
            blocked = max(blocked, stats.blocked_seconds)
        return BusStatistics(
            published=self._published,
            delivered=delivered,
            dropped=MappingProxyType(dropped),
            subscriptions=len(self._live),
            sessions=len(self._seqs),
            disconnected=MappingProxyType(dict(self._disconnected)),
            blocked_seconds_max=blocked,
        )

    def readiness_problem(self) -> str | None:
        """``None`` unless a publisher has waited ``blocked_warn_seconds`` or more on one
        subscription; then which, and for how long (a ``/readyz`` check)."""
        worst, seconds = None, 0.0
        for subscription in self._live:
            waited = subscription.blocked_seconds()
            if waited > seconds:
                worst, seconds = subscription, waited
        if worst is None or seconds < self.limits.blocked_warn_seconds:
            return None
        return f"a publisher blocked {seconds:.1f}s on {worst!r}"

    def subscription_statistics(self) -> tuple[SubscriptionStatistics, ...]:
        """A snapshot of every open subscription, in the order they were made."""
        return tuple(subscription.statistics() for subscription in self._live)

    async def aclose(self) -> None:
        """Close the bus: no more publishing or subscribing; subscriptions drain, then end.

        Publishers blocked on a subscription are released. Idempotent.
        """
        if not self._closed:
            self._closed = True
            self._routes.clear()
            for subscription in list(self._live):
                subscription._end()
        await trio.lowlevel.checkpoint()

    def _targets(self, session_id: str, type: str) -> tuple[Subscription, ...]:
        self._raise_if_closed()
        if not (session_id and isinstance(session_id, str)):
            raise BusArgumentError("session_id", f"must be a non-empty str, got {session_id!r}")
        if not (type and isinstance(type, str)):
            raise BusArgumentError("type", f"must be a non-empty str, got {type!r}")
        return self._routes.targets(session_id, type)

    async def _publish_in_turn(
        self, session_id: str, type: str, event: Event, received_at: float, raw: bytes | None
    ) -> Envelope:
        turn = self._turns[session_id]
        await turn.acquire()
        try:
            # Routes and the bus itself may have changed while this publish waited its turn.
            targets = self._targets(session_id, type)
            envelope = self._stamp(session_id, type, event, received_at, raw)
            cuts = await self._deliver(envelope, targets)
        finally:
            self._release_turn(session_id, turn)
        await self._announce(cuts)
        return envelope

    async def _finish_in_turn(self, envelope: Envelope, targets: tuple[Subscription, ...]) -> None:
        # The first target refused: from here on this publish holds its session's turn, so
        # a later publish for the session cannot overtake it in the targets still ahead.
        turn = self._turns[envelope.session_id] = trio.Lock()
        turn.acquire_nowait()
        try:
            cut = await targets[0]._wait_for_room(envelope)
            cuts = await self._deliver(envelope, targets[1:])
        finally:
            self._release_turn(envelope.session_id, turn)
        await self._announce(cuts if cut is None else [cut, *cuts])

    @staticmethod
    async def _deliver(
        envelope: Envelope, targets: tuple[Subscription, ...]
    ) -> list[SubscriberDisconnected]:
        cuts = []
        for subscription in targets:
            if not subscription._offer(envelope):
                cut = await subscription._wait_for_room(envelope)
                if cut is not None:
                    cuts.append(cut)
        return cuts

    async def _announce(self, cuts: list[SubscriberDisconnected]) -> None:
        for cut in cuts:
            _log.warning(
                "subscriber too slow, disconnected: a publisher waited %.1fs on %s; "
                "%d envelopes it will never see",
                cut.blocked,
                cut.subscription,
                cut.dropped,
            )
            try:
                await self.publish(BUS_SESSION, cut.type, cut, received_at=cut.at)
            except trio.ClosedResourceError:
                return  # the bus closed meanwhile: nobody is left to tell

    def _release_turn(self, session_id: str, turn: trio.Lock) -> None:
        turn.release()  # hands the lock to the next publish of the session, if any (FIFO)
        if not turn.locked():
            del self._turns[session_id]

    def _stamp(
        self, session_id: str, type: str, event: Event, received_at: float, raw: bytes | None
    ) -> Envelope:
        seq = self._seqs[session_id] = self._seqs.get(session_id, 0) + 1
        self._published += 1
        envelope = Envelope(session_id, seq, type, event, received_at, raw)
        if self._tap is not None:
            self._tap.published(envelope)
        return envelope

    def _detach(self, subscription: Subscription) -> None:
        self._routes.remove(subscription)
        del self._live[subscription]
        stats = subscription.statistics()
        self._retired_delivered += stats.delivered
        self._retired_dropped[stats.policy] += stats.dropped
        if subscription._disconnected:
            self._disconnected[stats.policy] += 1

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the bus is closed")


def check_maxsize(maxsize: object) -> None:
    # bool is an int, but maxsize=True is a mistake, not a buffer of one.
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
        raise BusArgumentError("maxsize", f"must be an int of at least 1, got {maxsize!r}")
