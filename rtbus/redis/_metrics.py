"""The Redis bridge's Prometheus metrics: a scrape-time collector over cheap counters.

Nothing here talks to Redis. Publishing counts come from the bridge's statistics, stream
lengths and group backlogs from the stream monitor's last snapshot, and the consumers' losses
(reclaims, dead letters, entries trimmed before they were acknowledged) from ``GroupCounts``
they add to as they happen. Counts live in the collector, not in the subscriptions, so a
counter never goes down when a subscription ends. Labels are bounded: stream and group names
come from configuration, operations and policies from fixed sets.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._client import RedisLink
from ._monitor import StreamMonitor

if TYPE_CHECKING:
    from ._bridge import RedisBridge

__all__ = ["GroupCounts", "RedisMetrics"]

Families = dict[str, GaugeMetricFamily | CounterMetricFamily]


@attrs.define
class GroupCounts:
    """What one consumer group lost or moved on one stream, in this process."""

    reclaimed: int = 0
    dead_lettered: int = 0
    trimmed_before_ack: int = 0
    recreated: int = 0
    #: Entries the group never got, by why (``gap``: a session's ``seq`` jumped).
    missed: Counter[str] = attrs.field(factory=Counter)


class RedisMetrics(Collector):
    """The ``rtbus_redis_*`` metrics of one process: register it on a ``CollectorRegistry``.

    A bridge makes its own (``RedisBridge.metrics``); a worker process makes one and passes it
    to ``subscribe(..., metrics=...)``.
    """

    def __init__(self, *, bridge: RedisBridge | None = None) -> None:
        self.errors: Counter[str] = Counter()
        #: Entries this process wrote that Redis lost, by (stream, reason): see ``_ledger``.
        self.lost: Counter[tuple[str, str]] = Counter()
        self.monitor: StreamMonitor | None = None
        self._bridge = bridge
        self._groups: dict[tuple[str, str], GroupCounts] = {}
        self._links: dict[RedisLink, None] = {}

    def group_counts(self, stream: str, group: str) -> GroupCounts:
        """The shared counts of ``group`` on ``stream`` (made on first use)."""
        return self._groups.setdefault((stream, group), GroupCounts())

    @contextlib.contextmanager
    def tracking(self, link: RedisLink) -> Iterator[None]:
        """Count ``link`` in ``rtbus_redis_up`` while the block runs."""
        self._links[link] = None
        try:
            yield
        finally:
            del self._links[link]

    def describe(self) -> Iterator[Metric]:
        # Registration asks for names only: the families, empty, without touching anything.
        return iter(_families().values())

    def collect(self) -> Iterator[Metric]:
        families = _families()
        up = bool(self._links) and all(link.up for link in self._links)
        families["up"].add_metric([], 1.0 if up else 0.0)
        for operation, count in sorted(self.errors.items()):
            families["errors"].add_metric([operation], count)
        for (stream, reason), count in sorted(self.lost.items()):
            families["lost"].add_metric([stream, reason], count)
        self._collect_bridge(families)
        self._collect_snapshot(families)
        self._collect_groups(families)
        return iter(families.values())

    def _collect_bridge(self, families: Families) -> None:
        if self._bridge is None:
            return
        stats = self._bridge.statistics()
        for stream, count in sorted(stats.published.items()):
            families["published"].add_metric([stream], count)
        for policy, count in sorted(stats.dropped.items()):
            families["dropped"].add_metric([policy], count)
        families["buffered"].add_metric([], stats.buffered)

    def _collect_snapshot(self, families: Families) -> None:
        snapshot = None if self.monitor is None else self.monitor.snapshot
        if snapshot is None:
            return
        for stream, info in snapshot.streams.items():
            families["length"].add_metric([stream], info.length)
            for group, backlog in info.groups.items():
                families["pending"].add_metric([stream, group], backlog.pending)
                families["oldest"].add_metric([stream, group], backlog.oldest_pending_seconds)

    def _collect_groups(self, families: Families) -> None:
        for (stream, group), counts in sorted(self._groups.items()):
            labels = [stream, group]
            families["reclaimed"].add_metric(labels, counts.reclaimed)
            families["dead_lettered"].add_metric(labels, counts.dead_lettered)
            families["trimmed"].add_metric(labels, counts.trimmed_before_ack)
            families["recreated"].add_metric(labels, counts.recreated)
            for reason, count in sorted(counts.missed.items()):
                families["missed"].add_metric([*labels, reason], count)


def _families() -> Families:
    group = ["stream", "group"]
    return {
        "up": GaugeMetricFamily("rtbus_redis_up", "Whether Redis answers (1) or not (0)."),
        "errors": CounterMetricFamily(
            "rtbus_redis_errors_total", "Redis commands that failed.", labels=["operation"]
        ),
        "published": CounterMetricFamily(
            "rtbus_redis_published_total",
            "Entries written to Redis (acknowledged; see rtbus_redis_lost_total).",
            labels=["stream"],
        ),
        "lost": CounterMetricFamily(
            "rtbus_redis_lost_total",
            "Entries this process wrote that Redis acknowledged and later lost.",
            labels=["stream", "reason"],
        ),
        "dropped": CounterMetricFamily(
            "rtbus_redis_publish_dropped_total",
            "Events the bridge gave up before Redis had them.",
            labels=["policy"],
        ),
        "buffered": GaugeMetricFamily(
            "rtbus_redis_publish_buffered", "Events waiting in the bridge for Redis."
        ),
        "length": GaugeMetricFamily(
            "rtbus_redis_stream_length", "Entries in a stream.", labels=["stream"]
        ),
        "pending": GaugeMetricFamily(
            "rtbus_redis_pending",
            "Entries delivered to a group and not acknowledged.",
            labels=group,
        ),
        "oldest": GaugeMetricFamily(
            "rtbus_redis_oldest_pending_seconds",
            "Age of a group's oldest unacknowledged entry.",
            labels=group,
        ),
        "reclaimed": CounterMetricFamily(
            "rtbus_redis_reclaimed_total",
            "Entries taken over from a consumer that held them too long.",
            labels=group,
        ),
        "dead_lettered": CounterMetricFamily(
            "rtbus_redis_dead_lettered_total",
            "Entries moved to the dead-letter stream after the delivery cap.",
            labels=group,
        ),
        "trimmed": CounterMetricFamily(
            "rtbus_redis_trimmed_before_ack_total",
            "Entries trimmed from a stream before the group acknowledged them: lost.",
            labels=group,
        ),
        "recreated": CounterMetricFamily(
            "rtbus_redis_groups_recreated_total",
            "Times a consumer found its group gone (Redis lost it) and made it again.",
            labels=group,
        ),
        "missed": CounterMetricFamily(
            "rtbus_redis_consumer_lost_total",
            "Entries a group never got: gaps in a session's sequence numbers.",
            labels=[*group, "reason"],
        ),
    }
