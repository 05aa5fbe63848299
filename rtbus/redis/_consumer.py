"""Consumer groups: at-least-once delivery of the bridged events to workers anywhere.

```python
async with rtbus.redis.subscribe(config, group="transcripts", types="response.done") as sub:
    await sub.run(handle)                 # or: async with sub.delivery() as envelope: ...
```

Invariants:

* An entry is acknowledged only after its handler returned. If the handler raises, the
  failure is recorded and the entry stays pending; if the consumer is cancelled or dies, it
  stays pending. Either way it comes back (here or to another consumer of the group) once it
  has been idle ``reclaim_idle_seconds``, through ``XAUTOCLAIM``.
* ``delivery()`` acknowledges as its block exits. ``run`` queues acknowledgements and sends
  them together: with every read from Redis (in the read's round trip: acknowledged before
  the read is served), once a batch is queued or the oldest has waited ``_ACK_DELAY`` (with
  the next read when one is due anyway), and at close. A queued acknowledgement leaves the
  queue only once Redis answered it. A consumer that dies between a handler's return and
  that answer gets the entry handled again (at-least-once), never lost.
* Every read first takes over what is due (a reclaim round every half reclaim idle time,
  and at once when the subscription starts), then reads new entries, blocking at most until
  the next round.
* Past ``max_deliveries`` an entry is not handed out again: it goes to the dead-letter stream
  with the last failure recorded for it. An entry that cannot be decoded goes there at once.
* Every loss -- an entry trimmed before the group acknowledged it, the group gone with
  Redis's data, a gap in a session's ``seq``, dead letters Redis lost -- is counted and
  reported to ``on_lost`` (or logged as a warning without one) by ``LossReporter``
  (``_losses``, which says when each is found). None is passed over silently.
* Entries outside the subscription's ``types``/``sessions`` filters are acknowledged unseen
  (counted as ``skipped``): filters belong to the group, so all its consumers must share them.
* While Redis is down, reads wait on the backoff curve and resume; acknowledgements that could
  not be sent stay queued and go with the next send. Redis losing its data (the group is gone)
  makes the group again, reports it, and goes on; entries read before that are still handed
  out (at-least-once).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

import attrs
import trio

from rtbus.bus import Event, Undecoded, decode_lifecycle, parse_sessions, parse_types
from rtbus.protocol import ProtocolError, decode_server_event

from ._client import RedisLink, open_link
from ._config import RedisConfig
from ._errors import GroupMissingError, RedisError, RedisUnavailableError, RedisVersionError
from ._group import Failure, GroupMember, Pending
from ._layout import RedisEnvelope, StreamLayout, decode_entry
from ._losses import LossReporter, LostEntries, LostHandler
from ._metrics import GroupCounts, RedisMetrics

__all__ = ["ConsumerStatistics", "LostEntries", "RedisSubscription"]

_log = logging.getLogger("rtbus.redis")
_MAX_BLOCK = 1.0
_ACK_DELAY = 0.05
_REQUIRED_FOR_GROUPS = "7.0"

Handler = Callable[[RedisEnvelope], object]
T = TypeVar("T")


@attrs.frozen
class ConsumerStatistics:
    """A snapshot of one consumer.

    * ``delivered`` -- envelopes handed out (``redelivered`` of them not for the first time).
    * ``acked`` -- handled, so acknowledged (sent with the next batch of acknowledgements);
      ``failed`` -- the handler raised.
    * ``reclaimed`` -- entries taken over after they sat idle with some consumer.
    * ``dead_lettered`` -- moved to the dead-letter stream.
    * ``trimmed`` -- lost: trimmed from the stream before the group acknowledged them.
    * ``missed`` -- lost: events of a session whose ``seq`` jumped over them (gaps).
    * ``recreated`` -- times the group was found gone (Redis lost it) and made again.
    * ``skipped`` -- outside this subscription's filters, acknowledged unseen.
    * ``up`` -- whether Redis answered the last command.
    """

    delivered: int
    redelivered: int
    acked: int
    failed: int
    reclaimed: int
    dead_lettered: int
    trimmed: int
    missed: int
    recreated: int
    skipped: int
    up: bool


class RedisSubscription(trio.abc.AsyncResource):
    """One consumer of a group; made by ``subscribe``, which checks the arguments.

    Enter it (``async with``) in the task that owns it: that connects, waiting while Redis is
    down, and makes the group. Read one delivery at a time, with ``delivery()`` or ``run``.
    """

    def __init__(
        self,
        config: RedisConfig,
        *,
        group: str,
        consumer: str,
        types: str | Iterable[str],
        sessions: str | Iterable[str],
        streams: Iterable[str] | None,
        raw: bool,
        start: str,
        on_lost: LostHandler | None,
        metrics: RedisMetrics | None,
    ) -> None:
        self._config = config
        self._layout = layout = StreamLayout(config)
        self._types, self._sessions = parse_types(types), parse_sessions(sessions)
        self._keys = layout.keys_for(self._types, streams)
        self.group, self.consumer = group, consumer
        self._raw, self._start = raw, start
        self._metrics = metrics if metrics is not None else RedisMetrics()
        self._losses = LossReporter(
            layout, self._keys, group=group, consumer=consumer, on_lost=on_lost,
            metrics=self._metrics,
        )  # fmt: skip
        self._stack = contextlib.AsyncExitStack()
        self._link: RedisLink | None = None
        self._member: GroupMember | None = None
        self._ready: deque[Pending] = deque()
        self._acks: list[Pending] = []  # handled, acknowledgement not sent yet
        self._acks_since = 0.0
        self._ack_delay = min(_ACK_DELAY, config.reclaim_idle_seconds / 10)
        self._next_reclaim = -float("inf")
        self._reclaim_every = config.reclaim_idle_seconds / 2
        self._busy = self._closed = self._entered = False
        self._counts = dict.fromkeys(
            ("delivered", "redelivered", "acked", "failed", "reclaimed", "dead_lettered",
             "skipped"),
            0,
        )  # fmt: skip

    def __repr__(self) -> str:
        streams = [self._layout.names[key] for key in self._keys]
        return (
            f"<RedisSubscription group={self.group!r} consumer={self.consumer!r} streams={streams}>"
        )

    def statistics(self) -> ConsumerStatistics:
        up = self._link is not None and self._link.up
        losses = self._losses.counts
        return ConsumerStatistics(
            **self._counts, trimmed=losses["trimmed"], missed=losses["missed"],
            recreated=losses["recreated"], up=up,
        )  # fmt: skip

    # -- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> RedisSubscription:
        if self._entered or self._closed:
            raise RuntimeError("a Redis subscription can be entered once")
        self._entered = True
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self) -> None:
        link = await self._stack.enter_async_context(
            open_link(self._config, errors=self._metrics.errors)
        )
        self._stack.enter_context(self._metrics.tracking(link))
        self._link = link
        await link.wait_until_up()
        if not link.has("xautoclaim_deleted_ids"):
            found = link.statistics().server_version or "?"
            raise RedisVersionError(found, _REQUIRED_FOR_GROUPS)
        self._member = GroupMember(
            link, self._layout, self._keys, group=self.group, consumer=self.consumer,
            start=self._start,
        )  # fmt: skip
        await self._retrying(self._member.join)

    async def aclose(self) -> None:
        """Leave the group where this consumer holds nothing, and disconnect. Idempotent.

        Entries it still holds stay pending for another consumer to reclaim.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._member is not None and self._link is not None:
            with trio.CancelScope(shield=True), contextlib.suppress(RedisError):
                await self._send_acks(self._member)
                await self._member.leave()
        await self._stack.aclose()

    # -- reading ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def delivery(self) -> AsyncIterator[RedisEnvelope]:
        """The next envelope, acknowledged only when the block exits cleanly.

        If the block raises, the failure is recorded and the envelope stays pending, to come
        back after the reclaim idle time (here or to another consumer); the exception goes
        on. If it is cancelled, the envelope just stays pending.
        """
        async with self._held() as (pending, envelope):
            try:
                yield envelope
            except Exception as exc:
                await self._fail(pending, exc)
                raise
            self._ack(pending)
            # Sent now: the caller may not read again for a while. Redis down: it stays
            # queued, to go before the next read.
            with contextlib.suppress(RedisUnavailableError):
                await self._send_acks(self._member_or_fail())

    async def run(self, handler: Handler) -> None:
        """Hand every envelope to ``handler`` (sync or async) until cancelled.

        A handler that raises does not stop it: the failure is recorded and logged, and the
        entry is retried after the reclaim idle time, up to the delivery cap. Acknowledgements
        go in batches (see the module's invariants), which is what makes it fast.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        # One loop over the deliveries, the handler called in it: a ``_held`` block per entry
        # cost about a sixth of a consumer's CPU, and each coroutine per delivery ~1%
        # (bench_redis, consumer alone).
        member = self._take_reader()
        try:
            while True:
                pending, envelope = await self._deliver(member)
                try:
                    result = handler(envelope)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    await self._handler_failed(pending, envelope, exc)
                else:
                    self._ack(pending)
        finally:
            self._busy = False

    async def _handler_failed(
        self, pending: Pending, envelope: RedisEnvelope, exc: Exception
    ) -> None:
        await self._fail(pending, exc)
        _log.warning(
            "redis consumer %s: handler failed on %s %s (delivery %d): %s",
            self.consumer, envelope.stream, envelope.entry_id, envelope.deliveries,
            type(exc).__name__,
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[tuple[Pending, RedisEnvelope]]:
        member = self._take_reader()
        try:
            yield await self._deliver(member)
        finally:
            self._busy = False

    def _take_reader(self) -> GroupMember:
        """The member to read with, once this task is the subscription's one reader."""
        if self._member is None or self._closed:
            raise trio.ClosedResourceError("enter the subscription (async with) before reading")
        if self._busy:
            raise trio.BusyResourceError("another task is reading this subscription")
        self._busy = True
        return self._member

    async def _deliver(self, member: GroupMember) -> tuple[Pending, RedisEnvelope]:
        """The next entry to hand out, and its envelope."""
        while True:
            try:
                if not self._ready:
                    await self._refill(member)  # the queued acks go with it
                    continue
                now = trio.current_time()  # read once: the ack delay and ``received_at``
                if self._acks_due(now):
                    await self._send_acks(member)
                envelope = await self._admit(member, self._ready[0], now)
                pending = self._ready.popleft()
            except RedisUnavailableError:
                await self._pause()
                continue
            except GroupMissingError:
                await self._rejoin(member)
                continue
            if envelope is not None:
                self._counts["delivered"] += 1
                self._counts["redelivered"] += pending.deliveries > 1
                return pending, envelope

    async def _refill(self, member: GroupMember) -> None:
        now = trio.current_time()
        if now >= self._next_reclaim:
            await self._send_acks(member)  # before entries are taken over
            await self._reclaim(member, now)
        else:
            block = min(_MAX_BLOCK, self._next_reclaim - now)
            # The queued acks go with the read, one round trip for both (a round trip costs
            # the consumer 0.15-0.25 ms of CPU in coredis and trio, more than a batch's acks).
            acks, self._acks = self._acks, []
            try:
                read = await member.read(block, acks)
            except BaseException:
                self._acks[:0] = acks  # unanswered: still queued, sent again (XACK is idempotent)
                raise
            self._losses.read(read.counts, self._config.batch_size)
            self._ready.extend(read.entries)

    async def _reclaim(self, member: GroupMember, now: float) -> None:
        result = await member.reclaim()
        self._next_reclaim = now if not result.done else now + self._reclaim_every
        for key, ids in result.trimmed.items():
            await member.forget_failures(key, ids)
            await self._losses.trimmed(key, ids)
        if result.done:
            # Live consumers read at least every _MAX_BLOCK; a dead one's idle time grows.
            alone = await member.alone(max(self._config.reclaim_idle_seconds, 2 * _MAX_BLOCK))
            await self._losses.audit(alone, self._link_or_fail())
        # An entry read but not handed out yet can idle past the reclaim time too: keep one.
        held = {(pending.key, pending.entry_id) for pending in self._ready}
        for pending in result.entries:
            self._group_counts(pending.key).reclaimed += 1
            if (pending.key, pending.entry_id) not in held:
                self._ready.append(pending)
        self._counts["reclaimed"] += len(result.entries)

    async def _admit(
        self, member: GroupMember, pending: Pending, now: float
    ) -> RedisEnvelope | None:
        """The envelope for ``pending``, or ``None`` once it is dead-lettered or skipped."""
        if pending.deliveries > self._config.max_deliveries:
            await self._dead_letter(member, pending, await member.last_failure(pending))
            return None
        try:
            envelope = self._envelope(pending, now)
        except ProtocolError as exc:
            await self._dead_letter(member, pending, Failure.of(exc, self.consumer))
            return None
        reset = self._losses.seen(envelope)  # before the filters: they leave no gap
        if reset is not None:
            await self._losses.report_gap(reset)
        if self._types.matches(envelope.type) and self._wants(envelope.session_id):
            return envelope
        self._ack(pending, handled=False)
        self._counts["skipped"] += 1
        return None

    def _envelope(self, pending: Pending, now: float) -> RedisEnvelope:
        session_id, seq, type, node, published_at, raw = decode_entry(pending.fields)
        event = Undecoded(type) if self._raw else _decoded(type, raw)
        # Envelope's own fields by position: keywords cost ~0.1 us more per delivery.
        return RedisEnvelope(
            session_id, seq, type, event, now, raw,
            stream=self._layout.names[pending.key], entry_id=pending.entry_id.decode(),
            node=node, published_at=published_at, deliveries=pending.deliveries,
        )  # fmt: skip

    def _wants(self, session_id: str) -> bool:
        return self._sessions is None or session_id in self._sessions

    # -- settling --------------------------------------------------------------------------

    def _ack(self, pending: Pending, *, handled: bool = True) -> None:
        # Queued, and sent in one round trip with the others (``_send_acks``): an XACK per
        # delivery would cost more than the handling of most events.
        self._counts["acked"] += handled
        if not self._acks:
            self._acks_since = trio.current_time()
        self._acks.append(pending)

    def _acks_due(self, now: float) -> bool:
        """Whether the queued acknowledgements make a batch or the oldest has waited
        ``_ACK_DELAY``."""
        if not self._acks:
            return False
        if len(self._acks) >= self._config.batch_size:
            return True
        return now - self._acks_since >= self._ack_delay

    async def _send_acks(self, member: GroupMember) -> None:
        """Send the queued acknowledgements, if any. Shielded and bounded by the command
        timeout: work that was done is acknowledged even while the consumer stops."""
        if not self._acks:
            return
        # GroupMissingError: Redis lost the group, and these entries with it: nothing to ack.
        with trio.CancelScope(shield=True), contextlib.suppress(GroupMissingError):
            await member.ack(self._acks)
        self._acks = []

    async def _fail(self, pending: Pending, exc: Exception) -> None:
        self._counts["failed"] += 1
        with trio.CancelScope(shield=True):
            try:
                await self._member_or_fail().record_failure(pending, Failure.of(exc, self.consumer))
            except RedisError as error:
                _log.warning(
                    "redis consumer %s: could not record a failure: %s", self.consumer, error
                )

    async def _dead_letter(
        self, member: GroupMember, pending: Pending, failure: Failure | None
    ) -> None:
        if failure is None:
            failure = Failure(
                "Unacknowledged",
                f"delivered {pending.deliveries - 1} times without an acknowledgement "
                "(its consumers stopped or took longer than the reclaim idle time)",
                self.consumer,
            )
        dead_id = await member.dead_letter(pending, failure)
        self._losses.dead_letters.record(self._layout.dead_letter_key, [dead_id])
        self._counts["dead_lettered"] += 1
        self._group_counts(pending.key).dead_lettered += 1
        _log.warning(
            "redis consumer %s: dead-lettered %s %s after %d deliveries: %s",
            self.consumer, self._layout.names[pending.key], pending.entry_id.decode(),
            pending.deliveries - 1, failure.error_type,
        )  # fmt: skip

    # -- recovery --------------------------------------------------------------------------

    async def _pause(self) -> None:
        await self._link_or_fail().pause()

    async def _rejoin(self, member: GroupMember) -> None:
        # What was read before stays in _ready, handed out all the same; the acks go nowhere.
        self._acks.clear()
        await self._losses.recreated(await self._retrying(member.join))
        self._next_reclaim = -float("inf")

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await operation()
            except RedisUnavailableError:
                await self._link_or_fail().pause()

    def _group_counts(self, key: bytes) -> GroupCounts:
        return self._metrics.group_counts(self._layout.names[key], self.group)

    def _member_or_fail(self) -> GroupMember:
        if self._member is None:
            raise trio.ClosedResourceError("the subscription is not open")
        return self._member

    def _link_or_fail(self) -> RedisLink:
        if self._link is None:
            raise trio.ClosedResourceError("the subscription is not open")
        return self._link


def _decoded(type: str, raw: bytes) -> Event:
    """The event of an entry: rtbus's own through the one lifecycle codec, the upstream's
    through the protocol's."""
    return decode_lifecycle(raw) if type.startswith("rtbus.") else decode_server_event(raw)
