"""The in-process bus: sessions publish envelopes, subscriptions take the ones they match.

Invariants:

* Each session's envelopes carry ``seq`` 1, 2, 3, ... in publish order; ``forget`` drops the
  counter when the session ends (a session id used again starts over at 1).
* One ``Envelope`` per publish, the same object in every subscription.
* Routing goes through a ``RoutingIndex``: subscriptions that do not match are not visited.
* At most one publish per session waits under ``block`` at a time; the others queue on the
  session's turn (a FIFO lock made only while one waits). Without it, two publishers released
  by one subscription could reach the next one in either order.
* Statistics are counted where they happen (in each subscription) and summed when asked for;
  a subscription's counts are folded into the bus's totals when it detaches, so the totals
  never go down. Nothing is counted per publish but ``published``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs
import trio

from ._envelope import Envelope
from ._errors import BusArgumentError
from ._filters import parse_sessions, parse_types
from ._overflow import OverflowPolicy, parse_policy
from ._routing import RoutingIndex
from ._subscription import Subscription, SubscriptionStatistics

__all__ = ["Bus", "BusStatistics"]


@attrs.frozen
class BusStatistics:
    """A snapshot of the bus, read at scrape time.

    * ``published`` -- envelopes published since the bus was made.
    * ``delivered`` -- envelopes subscribers have taken, over all subscriptions ever.
    * ``dropped`` -- envelopes discarded, by the overflow policy that discarded them
      (every policy is a key; ``block`` never drops).
    * ``subscriptions`` -- subscriptions open now.
    * ``sessions`` -- sessions with a sequence counter (published and not yet forgotten).
    """

    published: int
    delivered: int
    dropped: Mapping[OverflowPolicy, int]
    subscriptions: int
    sessions: int


class Bus(trio.abc.AsyncResource):
    """The in-process bus every session publishes to and every worker subscribes to.

    Close it with ``aclose`` (or use it as an async context manager): subscriptions then take
    nothing more, hand out what they hold, and their iterators stop.
    """

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}
        # Sessions with a publish waiting under ``block``: later publishes queue on the lock.
        self._turns: dict[str, trio.Lock] = {}
        self._routes: RoutingIndex[Subscription] = RoutingIndex()
        self._live: dict[Subscription, None] = {}  # insertion-ordered set
        self._published = 0
        self._retired_delivered = 0
        self._retired_dropped = dict.fromkeys(OverflowPolicy, 0)
        self._closed = False

    def subscribe(
        self,
        *,
        sessions: str | Iterable[str] = "*",
        types: str | Iterable[str] = "*",
        maxsize: int = 256,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
    ) -> Subscription:
        """A new subscription to the envelopes matching ``sessions`` and ``types``.

        ``sessions`` is ``"*"``, one session id, or an iterable of ids; ``types`` is ``"*"``,
        one type or glob (``"response.*"``), or an iterable of them. ``maxsize`` bounds the
        subscription's buffer and ``overflow`` (an ``OverflowPolicy`` or its value) says what
        happens when it is full. It is registered at once: envelopes published from now on
        reach it. Raises ``BusArgumentError`` for a bad argument and
        ``trio.ClosedResourceError`` once the bus is closed.
        """
        self._raise_if_closed()
        _check_maxsize(maxsize)
        type_filter, session_filter = parse_types(types), parse_sessions(sessions)
        subscription = Subscription(
            types=type_filter,
            sessions=session_filter,
            maxsize=maxsize,
            policy=parse_policy(overflow),
            on_detach=self._detach,
        )
        self._routes.add(subscription, type_filter, session_filter)
        self._live[subscription] = None
        return subscription

    async def publish(
        self,
        session_id: str,
        type: str,
        event: object,
        *,
        received_at: float,
        raw: bytes | None = None,
    ) -> Envelope:
        """Publish ``event`` for ``session_id``; the envelope, with its sequence number.

        Under ``block`` this waits while a matching subscription is full, and later publishes
        for the same session wait their turn behind it, so order holds even with several
        publishers. If cancelled while waiting, the envelope has reached the subscriptions
        before the full one and not the rest; its ``seq`` is spent, so those subscribers see
        the gap. Lifecycle events (``rtbus.session.reconnected``, ...) go through here too,
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
        event: object,
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
        """
        return bool(self._routes.targets(session_id, type))

    def forget(self, session_id: str) -> None:
        """Drop ``session_id``'s sequence counter: the session has ended."""
        self._seqs.pop(session_id, None)

    def statistics(self) -> BusStatistics:
        """A frozen snapshot of the bus's counters."""
        dropped = dict(self._retired_dropped)
        delivered = self._retired_delivered
        for subscription in self._live:
            stats = subscription.statistics()
            delivered += stats.delivered
            dropped[stats.policy] += stats.dropped
        return BusStatistics(
            published=self._published,
            delivered=delivered,
            dropped=MappingProxyType(dropped),
            subscriptions=len(self._live),
            sessions=len(self._seqs),
        )

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
        self, session_id: str, type: str, event: object, received_at: float, raw: bytes | None
    ) -> Envelope:
        turn = self._turns[session_id]
        await turn.acquire()
        try:
            # Routes and the bus itself may have changed while this publish waited its turn.
            targets = self._targets(session_id, type)
            envelope = self._stamp(session_id, type, event, received_at, raw)
            await self._deliver(envelope, targets)
        finally:
            self._release_turn(session_id, turn)
        return envelope

    async def _finish_in_turn(self, envelope: Envelope, targets: tuple[Subscription, ...]) -> None:
        # The first target refused: from here on this publish holds its session's turn, so
        # a later publish for the session cannot overtake it in the targets still ahead.
        turn = self._turns[envelope.session_id] = trio.Lock()
        turn.acquire_nowait()
        try:
            await targets[0]._wait_for_room(envelope)
            await self._deliver(envelope, targets[1:])
        finally:
            self._release_turn(envelope.session_id, turn)

    @staticmethod
    async def _deliver(envelope: Envelope, targets: tuple[Subscription, ...]) -> None:
        for subscription in targets:
            if not subscription._offer(envelope):
                await subscription._wait_for_room(envelope)

    def _release_turn(self, session_id: str, turn: trio.Lock) -> None:
        turn.release()  # hands the lock to the next publish of the session, if any (FIFO)
        if not turn.locked():
            del self._turns[session_id]

    def _stamp(
        self, session_id: str, type: str, event: object, received_at: float, raw: bytes | None
    ) -> Envelope:
        seq = self._seqs[session_id] = self._seqs.get(session_id, 0) + 1
        self._published += 1
        return Envelope(session_id, seq, type, event, received_at, raw)

    def _detach(self, subscription: Subscription) -> None:
        self._routes.remove(subscription)
        del self._live[subscription]
        stats = subscription.statistics()
        self._retired_delivered += stats.delivered
        self._retired_dropped[stats.policy] += stats.dropped

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the bus is closed")


def _check_maxsize(maxsize: object) -> None:
    # bool is an int, but maxsize=True is a mistake, not a buffer of one.
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
        raise BusArgumentError("maxsize", f"must be an int of at least 1, got {maxsize!r}")
