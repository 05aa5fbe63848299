"""The publishing bridge: the bus's events, written to Redis Streams in batches.

Invariants:

* The bridge's bus subscription is its bounded buffer: made when the bridge is made (nothing
  published after that is missed), ``buffer_size`` deep, under the configured overflow
  policy. While Redis is slow or down the subscription fills and then drops under that
  policy, counted; the sessions publishing never wait (unless the policy is ``block``).
* A batch taken from the subscription is held by the bridge until Redis has it -- as
  envelopes while it lingers for more (``_taken``), then as entries (``_pending``) -- across
  reconnects and across restarts of ``run`` (the object outlives them, as a
  ``Worker``'s subscription does). Nothing leaves the bridge uncounted: every envelope is
  written, dropped by the policy, counted as unencodable, or counted as abandoned when the
  bridge is closed with it still buffered.
* A batch is written by one script call (``_batch``). A batch that failed part-way is
  written again whole: a consumer can see an entry twice after a Redis failure
  (at-least-once), never miss one the bridge held.
* ``published`` counts what Redis acknowledged, not what it kept: every written batch goes
  into the ledger (``_ledger``), checked against Redis every ``monitor_interval``, and what
  Redis lost afterwards (a restart without persistence, a failover, a flush) is counted in
  ``lost`` by stream and reason. Published minus lost is what Redis holds (or trimmed).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import trio

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.bus import Bus, Envelope, SubscriberTooSlowError, Subscription
from rtbus.protocol import ProtocolError

from ._batch import BatchWriter, Entry
from ._client import RedisLink, open_link
from ._config import RedisConfig
from ._errors import RedisError, RedisUnavailableError
from ._layout import StreamLayout, entry_values
from ._ledger import Ledger, Loss
from ._metrics import RedisMetrics
from ._monitor import StreamMonitor

__all__ = ["BridgeStatistics", "RedisBridge"]

_log = logging.getLogger("rtbus.redis")

#: Why an envelope that never reached Redis was given up, besides the overflow policy.
ABANDONED = "abandoned"


@attrs.frozen
class BridgeStatistics:
    """A snapshot of the bridge, read at scrape time and by ``/readyz``.

    * ``up`` -- whether Redis answered the bridge's last command.
    * ``published`` -- entries written (acknowledged by Redis), by stream name.
    * ``lost`` -- of those, entries Redis no longer has (it restarted without them, or the
      stream was deleted), by stream name; by reason in ``rtbus_redis_lost_total``.
    * ``dropped`` -- envelopes given up, by why: the overflow policy (``drop_oldest``...),
      or ``abandoned`` (still buffered when the bridge was closed).
    * ``unencodable`` -- envelopes whose event could not be written as JSON.
    * ``buffered`` -- envelopes waiting: in the subscription and in the batch being written.
    * ``batches`` -- batch writes that succeeded (one script call each).
    * ``checks`` -- times the written entries were checked against Redis (for losses).
    """

    up: bool
    published: Mapping[str, int]
    lost: Mapping[str, int]
    dropped: Mapping[str, int]
    unencodable: int
    buffered: int
    batches: int
    checks: int


class RedisBridge(trio.abc.AsyncResource):
    """Publishes every bus event a configured stream takes to Redis, as service ``node``.

    Make it before sessions start publishing; run ``run`` as a supervised actor (a restart
    resumes with what the last incarnation held); ``aclose`` when the service stops. With a
    ``registry`` its metrics are registered on it until ``aclose``.
    """

    def __init__(
        self,
        bus: Bus,
        config: RedisConfig,
        *,
        node: str,
        registry: Any = None,
    ) -> None:
        if not isinstance(node, str) or not node:
            raise ValueError(f"node must be a non-empty str naming this service, got {node!r}")
        self._config = config
        self._node = node.encode()
        self._layout = StreamLayout(config)
        self._bus = bus
        self._subscription = self._subscribe()
        self._cut_dropped = 0  # by subscriptions the bus cut loose (block, past its timeout)
        self._taken: list[Envelope] = []  # taken, lingering for more (``_linger``)
        self._pending: list[Entry] = []  # being written
        self._ledger = Ledger(self._layout.names, owner=self._node)
        self._writer = BatchWriter(config, tuple(self._layout.names))
        self._published: Counter[str] = Counter()
        self._abandoned = self._unencodable = self._batches = 0
        self._link: RedisLink | None = None
        self._closed = False
        self.metrics = RedisMetrics(bridge=self)
        self._registry = registry
        if registry is not None:
            registry.register(self.metrics)

    def _subscribe(self) -> Subscription:
        return self._bus.subscribe(
            types=self._layout.types,
            maxsize=self._config.buffer_size,
            overflow=self._config.overflow,
            block_timeout=self._bus.limits.remote_block_timeout,
        )

    def __repr__(self) -> str:
        return f"<RedisBridge node={self._node.decode()!r} {self._config.location}>"

    def statistics(self) -> BridgeStatistics:
        stats = self._subscription.statistics()
        policy_dropped = stats.dropped + self._cut_dropped
        dropped = {self._config.overflow.value: policy_dropped, ABANDONED: self._abandoned}
        lost: Counter[str] = Counter()
        for (stream, _), count in self.metrics.lost.items():
            lost[stream] += count
        return BridgeStatistics(
            up=self._link is not None and self._link.up,
            published=MappingProxyType(dict(self._published)),
            lost=MappingProxyType(dict(lost)),
            dropped=MappingProxyType(dropped),
            unencodable=self._unencodable,
            buffered=stats.queued + len(self._taken) + len(self._pending),
            batches=self._batches,
            checks=self._ledger.checks,
        )

    def readiness_problem(self) -> str | None:
        """``None`` while Redis answers; else what is wrong (a ``/readyz`` check)."""
        if self._closed:
            return "the bridge is closed"
        link = self._link
        if link is None:
            return "the bridge is not running"
        if link.up:
            return None
        since = link.down_since
        for_how_long = "" if since is None else f" for {trio.current_time() - since:.0f}s"
        return f"redis at {self._config.location} is unreachable{for_how_long}"

    async def run(
        self, *, task_status: trio.TaskStatus[RedisBridge] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the bus's events to Redis until the bus closes (then return) or cancelled.

        Started (``task_status``) at once, before Redis answers: a service comes up with
        Redis down and publishes as soon as it is back. Raises ``RedisCommandError`` or
        ``RedisVersionError`` when Redis refuses it (a wrong password, a wrong key type), and
        ``trio.ClosedResourceError`` once the bridge is closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the bridge is closed")
        with unwrap_lone_exception():
            async with (
                open_link(self._config, errors=self.metrics.errors) as link,
                trio.open_nursery() as nursery,
            ):
                with self.metrics.tracking(link):
                    await self._run(link, nursery, task_status)

    async def _run(
        self, link: RedisLink, nursery: trio.Nursery, task_status: trio.TaskStatus[RedisBridge]
    ) -> None:
        self._link = link
        self.metrics.monitor = monitor = StreamMonitor(link, self._layout)
        try:
            task_status.started(self)
            await link.wait_until_up()
            nursery.start_soon(monitor.run)
            nursery.start_soon(self._audit, link)
            await self._forward(link)
            nursery.cancel_scope.cancel()
        finally:
            self._link = None

    async def aclose(self) -> None:
        """Stop taking events; count what is still buffered as abandoned. Idempotent."""
        if not self._closed:
            self._closed = True
            held = len(self._taken) + len(self._pending)
            self._abandoned += self._subscription.statistics().queued + held
            self._taken, self._pending = [], []
            self._subscription.close()
            if self._registry is not None:
                self._registry.unregister(self.metrics)
            if self._abandoned:
                _log.warning("redis bridge closed with %d events not written", self._abandoned)
        await trio.lowlevel.checkpoint()

    async def _forward(self, link: RedisLink) -> None:
        while True:
            if not self._pending:
                if not self._taken:
                    try:
                        self._taken = await self._subscription.receive_batch(
                            self._config.batch_size
                        )
                    except trio.EndOfChannel:
                        return
                    except SubscriberTooSlowError as exc:
                        self._take_up_again(exc)
                        continue
                await self._linger()
                self._pending, self._taken = self._entries(self._taken), []
            await self._write(link)

    async def _linger(self) -> None:
        """Add to ``_taken`` what the publishers bring until its oldest envelope has waited
        ``linger_seconds`` (as Kafka's ``linger.ms``), up to ``batch_size``.

        A write costs the service ~0.15 ms of CPU however small (bench_redis): at a few
        events per millisecond, writing at once means writes of one or two events. A bridge
        that is behind has envelopes older than that already, and does not wait.
        """
        room, now = self._config.batch_size - len(self._taken), trio.current_time()
        # ``received_at`` is the publisher's: one stamped on another clock (ahead of ours)
        # waits no longer than if it had been received now.
        until = min(self._taken[0].received_at, now) + self._config.linger_seconds
        if room <= 0 or until <= now:
            return
        await trio.sleep_until(until)
        # Cut loose while it waited: this takes nothing, what it has goes, and the next read
        # raises why (``_forward`` takes up again).
        self._taken += self._subscription.receive_buffered(room)

    def _take_up_again(self, exc: SubscriberTooSlowError) -> None:
        # Under block, Redis held the sessions up past the bus's timeout and the bus cut the
        # bridge loose (logged, counted, announced): take up again. What was published
        # between the cut and now reached no subscription of the bridge: a gap in the
        # streams' per-session seq, not a drop count.
        self._cut_dropped += exc.dropped
        self._subscription = self._subscribe()

    def _entries(self, batch: Sequence[Envelope]) -> list[Entry]:
        now = time.time()
        entries: list[Entry] = []
        for envelope in batch:
            key = self._layout.key_for(envelope.type)
            try:
                values = entry_values(envelope, self._node, now)
            except ProtocolError as exc:
                self._unencodable += 1
                _log.warning("redis bridge skipped an event: %s", exc)
                continue
            if key is not None:
                entries.append((key, values))
        return entries

    async def _write(self, link: RedisLink) -> None:
        while self._pending:
            batch = self._pending
            try:
                written = await link.call("xadd", functools.partial(self._writer.write, batch))
            except RedisUnavailableError:
                await link.pause()  # the subscription buffers meanwhile, then drops (counted)
                continue
            if self._closed and not self._pending:
                # Closed while Redis wrote it: ``aclose`` counted it abandoned, but it is in.
                self._abandoned -= len(batch)
            self._record(written)
            self._pending = []

    def _record(self, written: Sequence[tuple[bytes, bytes]]) -> None:
        """Count a written batch, and put its ids in the ledger by stream, in order."""
        ids: dict[bytes, list[bytes]] = {}
        for key, entry_id in written:
            ids.setdefault(key, []).append(entry_id)
        for key, stream_ids in ids.items():
            self._ledger.record(key, stream_ids)
            self._published[self._layout.names[key]] += len(stream_ids)
        self._batches += 1

    async def _audit(self, link: RedisLink) -> None:
        """Check the ledger against Redis every ``monitor_interval``, at once the first time
        (that learns the server's ``run_id`` before a restart can change it)."""
        refused = False
        while True:
            try:
                self._count_lost(await self._ledger.check(link))
            except RedisUnavailableError as exc:
                _log.debug("redis bridge: ledger check failed: %s", exc)
            except RedisError as exc:
                if not refused:  # INFO renamed away, say: losses go uncounted, so say so once
                    _log.warning("redis bridge: cannot check for lost entries: %s", exc)
                refused = True
            await trio.sleep(self._config.monitor_interval)

    def _count_lost(self, losses: Sequence[Loss]) -> None:
        for loss in losses:
            self.metrics.lost[loss.stream, loss.reason] += loss.count
            _log.error(
                "redis at %s lost %d entries of stream %s that it had acknowledged (%s)",
                self._config.location, loss.count, loss.stream, loss.reason,
            )  # fmt: skip
