"""A subscription to a service's bus through the gateway: the client's half.

The service holds the real subscription (filters, buffer, overflow policy); this half holds
what is in transit to the subscriber and turns frames back into envelopes when they are read.

Invariants:

* Flow control: ``server credit + frames in flight + frames buffered here + owed == window``.
  The subscriber reading a frame makes it owed; owed credit goes back to the service in
  batches (half a window). So at most ``window`` frames ever wait here, and a subscriber that
  stops reading leaves the rest in the service, where its policy applies.
* The requested ``maxsize`` is split: ``window`` here and ``maxsize - window`` (at least 1)
  in the service, so the subscription absorbs what an in-process one of that ``maxsize``
  would before its policy applies (``maxsize=1`` absorbs 2).
* Frames are decoded when read, in the reader's task, never on the connection's.
* Reads are scheduled as in process: each is a cancel point, and one that leaves a backlog
  (a message brings many frames) is a schedule point only once the reader has run for a
  while (``Turns``).
* After a reconnect the subscriber reads an ``rtbus.gateway.reconnected`` envelope first; then,
  before the first envelope of each session it had seen whose ``seq`` jumped, an
  ``rtbus.gateway.gap`` envelope saying which were not delivered. (For a subscription that
  filters by type, a jump may include envelopes it would not have taken anyway.)
* States as in process: ``ended`` (the remote bus closed) drains then ends reads;
  ``closed``, ``overflowed`` (``disconnect``), ``too_slow`` (``block`` past its
  ``block_timeout``) and ``failed`` (refused, or the connection gave up) discard the buffer
  and raise.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Final

import attrs
import orjson
import trio

from rtbus._turns import Turns
from rtbus.bus import (
    Envelope,
    Event,
    OverflowPolicy,
    SubscriberOverflowError,
    SubscriberTooSlowError,
    SubscriptionStatistics,
    Undecoded,
    decode_lifecycle,
)
from rtbus.protocol import decode_server_event

from ._frames import EventFrame
from ._wire import Subscribe

__all__ = [
    "GATEWAY_SESSION",
    "GatewayGap",
    "GatewayReconnected",
    "RemoteSubscription",
    "split_maxsize",
]

GATEWAY_SESSION: Final = "rtbus.gateway"
"""The ``session_id`` of the lifecycle envelopes the client itself makes."""

_MAX_SESSIONS_TRACKED: Final = 10_000  # per subscription, for gap detection


@attrs.frozen(kw_only=True)
class GatewayReconnected:
    """The connection to the gateway was lost and is back; this subscription is registered
    again. Envelopes published while it was away are lost (``rtbus.gateway.gap`` says which
    per session). ``attempt`` is how many connection attempts it took, ``down_for`` the
    seconds without one."""

    type: ClassVar[str] = "rtbus.gateway.reconnected"
    attempt: int
    down_for: float


@attrs.frozen(kw_only=True)
class GatewayGap:
    """Envelopes ``expected`` up to ``received - 1`` of ``session_id`` were published while the
    client was away and not delivered."""

    type: ClassVar[str] = "rtbus.gateway.gap"
    session_id: str
    expected: int
    received: int


def split_maxsize(maxsize: int) -> tuple[int, int]:
    """``(window, server_maxsize)`` for a requested ``maxsize``: half each. The window is
    what may be in flight against credit: a subscriber of a whole fleet on a loaded service
    (1,000 sessions, 13,300 events/s) needs thousands, since credit takes a few of the
    service's scheduler turns to come back; a window of at most 256 kept it a second
    behind, its publishers blocked (bench_fleet)."""
    window = max(1, maxsize // 2)
    return window, max(1, maxsize - window)


class _State(enum.Enum):
    OPEN = "open"
    ENDED = "ended"
    CLOSED = "closed"
    OVERFLOWED = "overflowed"
    TOO_SLOW = "too_slow"
    FAILED = "failed"


# What waits here: a frame with the time it arrived, or a lifecycle envelope made here.
_Item = tuple[EventFrame, float] | Envelope


class RemoteSubscription(trio.abc.AsyncResource):
    """A subscription to a remote service's bus; made by ``RemoteBus.subscribe``.

    Read it as an in-process ``Subscription``: ``async with`` (which waits until the service
    has registered it, so nothing published after that is missed), ``async for`` or
    ``receive``, ``statistics()``. With ``raw=True`` each envelope's ``event`` is the upstream
    frame's bytes, never decoded; otherwise server events are decoded with ``rtbus.protocol``
    and ``rtbus.*`` lifecycle events arrive as mappings of their fields.
    """

    def __init__(
        self,
        id: str,
        request: Callable[[int], Subscribe],
        *,
        maxsize: int,
        policy: OverflowPolicy,
        raw: bool,
        on_read: Callable[[RemoteSubscription], None],
        on_close: Callable[[RemoteSubscription], None],
    ) -> None:
        self.id = id
        self._request = request
        self._maxsize = maxsize
        self._policy = policy
        self._raw = raw
        self.window, self.server_maxsize = split_maxsize(maxsize)
        self._on_read = on_read
        self._on_close: Callable[[RemoteSubscription], None] | None = on_close
        self._state = _State.OPEN
        self._failure: BaseException | None = None
        self._registered = trio.Event()
        self._items: deque[_Item] = deque()
        self._frames = 0  # how many of the items are frames (they hold credit)
        self.owed = 0
        self._wakeup = trio.Event()
        self._reading = False
        self._turns = Turns()  # a read that did not wait lets others run only now and then
        self._delivered = self._dropped = self._lag = 0
        self._last_seq: dict[str, int] = {}
        self._unsure: set[str] = set()
        self._reconnects = 0
        self._block_timeout: float | None = None  # the service's answer says

    def __repr__(self) -> str:
        return (
            f"<RemoteSubscription {self.id} policy={self._policy.value} "
            f"maxsize={self._maxsize} raw={self._raw} state={self._state.value}>"
        )

    @property
    def policy(self) -> OverflowPolicy:
        return self._policy

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def closed(self) -> bool:
        """Whether it takes no more envelopes."""
        return self._state is not _State.OPEN

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot in the in-process shape. ``dropped`` and ``lag`` are what the service
        reported with the envelopes read so far; ``queued`` counts what waits here;
        ``redelivered`` and ``publishers_waiting`` are not known here (0)."""
        return SubscriptionStatistics(
            delivered=self._delivered,
            dropped=self._dropped,
            lag=self._lag,
            queued=len(self._items),
            maxsize=self._maxsize,
            policy=self._policy,
            redelivered=0,
            publishers_waiting=0,
        )

    # -- the subscriber's side -------------------------------------------------------------

    async def __aenter__(self) -> RemoteSubscription:
        await self.wait_registered()
        return self

    async def wait_registered(self) -> None:
        """Return once the service has registered the subscription; raises why it could not."""
        await self._registered.wait()
        if self._state is not _State.OPEN:
            self._raise_if_unreadable()

    def __aiter__(self) -> RemoteSubscription:
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def receive(self) -> Envelope:
        """The next envelope; waits while none is here. Raises ``trio.EndOfChannel`` once the
        remote bus closed and everything here was read."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._reading:
            raise trio.BusyResourceError("another task is reading this subscription")
        self._reading = True
        parked = False
        try:
            while not self._items:
                self._raise_if_unreadable()
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                parked = True
            envelope = self._take()
        finally:
            self._reading = False
        self._delivered += 1
        await self._turns.after_read(parked=parked, waiting=len(self._items))
        return envelope

    def close(self) -> None:
        """Close it now: discard what waits here; the service closes its half. Idempotent."""
        if self._state is not _State.CLOSED:
            self._stop(_State.CLOSED)

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def _take(self) -> Envelope:
        item = self._items[0]
        if isinstance(item, Envelope):
            self._items.popleft()
            return item
        frame, arrived = item
        gap = self._gap(frame)
        if gap is not None:
            return gap  # the frame stays at the head, for the next read
        self._items.popleft()
        self._frames -= 1
        self.owed += 1
        self._on_read(self)
        self._lag = frame.lag
        self._dropped += frame.lag
        return self._envelope(frame, arrived)

    def _gap(self, frame: EventFrame) -> Envelope | None:
        """The gap envelope to read before ``frame``, if envelopes of its session were lost
        while the client was away; else None, and ``frame``'s seq is recorded."""
        session_id, seq = frame.session_id, frame.seq
        if session_id in self._unsure:
            self._unsure.discard(session_id)
            last = self._last_seq.get(session_id)
            if last is not None and last + 1 < seq:
                gap = GatewayGap(session_id=session_id, expected=last + 1, received=seq)
                return self._lifecycle(gap)
        self._last_seq.pop(session_id, None)  # re-inserted: the most recent last
        if len(self._last_seq) >= _MAX_SESSIONS_TRACKED:
            del self._last_seq[next(iter(self._last_seq))]
        self._last_seq[session_id] = seq
        return None

    def _envelope(self, frame: EventFrame, arrived: float) -> Envelope:
        raw = frame.event
        event: Event
        if self._raw:
            event = Undecoded(frame.type)
        elif frame.type.startswith("rtbus."):
            event = decode_lifecycle(raw)
        else:
            event = decode_server_event(raw)
        received_at = arrived - frame.age
        return Envelope(frame.session_id, frame.seq, frame.type, event, received_at, raw)

    def _lifecycle(self, event: GatewayGap | GatewayReconnected) -> Envelope:
        # Numbered apart from every session: reconnects count from 1, gaps are 0.
        seq = self._reconnects if isinstance(event, GatewayReconnected) else 0
        json = orjson.dumps(attrs.asdict(event) | {"type": event.type})
        shown: Event = Undecoded(event.type) if self._raw else event
        return Envelope(GATEWAY_SESSION, seq, event.type, shown, trio.current_time(), json)

    def _raise_if_unreadable(self) -> None:
        if self._state is _State.ENDED:
            raise trio.EndOfChannel
        if self._state is _State.CLOSED:
            raise trio.ClosedResourceError("this subscription was closed")
        if self._state is _State.OVERFLOWED:
            raise SubscriberOverflowError(self._maxsize, self._dropped)
        if self._state is _State.TOO_SLOW:
            raise SubscriberTooSlowError(self._maxsize, self._dropped, self._block_timeout)
        if self._failure is not None:
            raise self._failure

    # -- the connection's side -------------------------------------------------------------

    def request(self, req: int) -> Subscribe:
        """The subscribe request for a new connection: the service's share of ``maxsize``,
        and the credit reset to the room free here."""
        self.owed = 0
        credit = max(0, self.window - self._frames)
        return attrs.evolve(self._request(req), maxsize=self.server_maxsize, credit=credit)

    def registered(self, *, reconnected: GatewayReconnected | None, result: object = None) -> None:
        """The service registered it (``result`` is its answer); ``reconnected`` when on a
        new connection."""
        if isinstance(result, dict):
            self._block_timeout = result.get("block_timeout")
        if reconnected is not None and self._registered.is_set():
            self._reconnects += 1
            self._unsure = set(self._last_seq)
            self._push(self._lifecycle(reconnected))
        self._registered.set()

    def deliver(self, frame: EventFrame, arrived: float) -> None:
        if self._state is _State.OPEN:
            self._frames += 1
            self._push((frame, arrived))

    def overflowed(self, dropped: int) -> None:
        """The service's half overflowed under ``disconnect`` and is gone."""
        if self._state is _State.OPEN:
            self._dropped += dropped + self._frames
            self._stop(_State.OVERFLOWED)

    def too_slow(self, dropped: int) -> None:
        """The service's half kept a publisher waiting past its ``block_timeout`` and was
        cut loose."""
        if self._state is _State.OPEN:
            self._dropped += dropped + self._frames
            self._stop(_State.TOO_SLOW)

    def fail(self, failure: BaseException) -> None:
        """It cannot go on: the service refused it or the connection gave up."""
        if self._state is _State.OPEN:
            self._failure = failure
            self._stop(_State.FAILED)

    def end(self) -> None:
        """The remote bus was closed: what waits here can still be read, then reads end."""
        if self._state is _State.OPEN:
            self._state = _State.ENDED
            self._registered.set()
            self._wakeup.set()

    def _push(self, item: _Item) -> None:
        self._items.append(item)
        self._wakeup.set()

    def _stop(self, state: _State) -> None:
        self._state = state
        self._items.clear()
        self._frames = 0
        self._registered.set()
        self._wakeup.set()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)
