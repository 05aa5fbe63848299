"""The scrape-time collector: every counter and gauge read from frozen statistics.

Nothing here runs between scrapes. On ``collect`` the source is read once into a ``Scrape``
(session snapshots, the ended sessions' counts, bus, subscription and supervisor statistics,
supervision event counts), and each metric family is built from it by one row of
``_FAMILIES``. ``describe`` builds the same rows from an empty scrape, so the registry knows
the names (and refuses a second collector that would export one of them).

Invariants: counters come from cumulative counts that only grow (live sessions plus the
ended sessions' total), gauges from what is true now; every label value is bounded (a state,
a policy, a supervisor path, a cause or type label counted as such by the session).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Final

import attrs
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from rtbus.actors import (
    ActorFailed,
    ActorGaveUp,
    ActorRestarted,
    SupervisorGaveUp,
    SupervisorStatistics,
)
from rtbus.bus import BusStatistics, OverflowPolicy, SubscriptionStatistics
from rtbus.session import SessionCounts, SessionState, SessionStatistics

from ._source import MetricsSource

__all__ = ["ServiceCollector"]

Labels = tuple[str, ...]
Samples = Mapping[Labels, float]

_NO_BUS: Final = BusStatistics(0, 0, MappingProxyType(dict.fromkeys(OverflowPolicy, 0)), 0, 0)
# Supervision event types -> the outcome label of rtbus_actor_restarts_total.
_RESTART_OUTCOMES: Final = {ActorRestarted.type: "restarted", SupervisorGaveUp.type: "gave_up"}


def _version() -> str:
    try:
        return importlib.metadata.version("rtbus")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_VERSION: Final = _version()


@attrs.frozen(kw_only=True)
class Scrape:
    """Everything one scrape reads from the source, read once."""

    sessions: tuple[SessionStatistics, ...] = ()
    counts: SessionCounts = attrs.field(factory=SessionCounts)
    bus: BusStatistics = _NO_BUS
    subscriptions: tuple[SubscriptionStatistics, ...] = ()
    supervisors: tuple[SupervisorStatistics, ...] = ()
    supervision: Mapping[tuple[str, str], int] = attrs.field(factory=dict)
    worker_losses: Mapping[str, int] = attrs.field(factory=dict)

    @classmethod
    def of(cls, source: MetricsSource) -> Scrape:
        sessions = tuple(source.session_statistics())
        live = (session.counts for session in sessions)
        return cls(
            sessions=sessions,
            counts=sum(live, start=source.ended_session_counts()),
            bus=source.bus.statistics(),
            subscriptions=source.bus.subscription_statistics(),
            supervisors=tuple(source.supervisor_statistics()),
            supervision=dict(source.supervision_counts()),
            worker_losses=dict(source.worker_losses()),
        )


class ServiceCollector:
    """A prometheus_client collector over a ``MetricsSource``; see the module."""

    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def describe(self) -> Iterator[Metric]:
        empty = Scrape()
        return (family(empty) for family in _FAMILIES)

    def collect(self) -> Iterator[Metric]:
        scrape = Scrape.of(self._source)
        return (family(scrape) for family in _FAMILIES)


# -- building families -------------------------------------------------------------------


def _keyed(values: Mapping[str, int] | Mapping[tuple[str, str], int]) -> Samples:
    return {key if isinstance(key, tuple) else (key,): value for key, value in values.items()}


def _counter(name: str, doc: str, labels: Labels, samples: Samples | float) -> Metric:
    return _filled(CounterMetricFamily(name, doc, labels=labels), samples)


def _gauge(name: str, doc: str, labels: Labels, samples: Samples | float) -> Metric:
    return _filled(GaugeMetricFamily(name, doc, labels=labels), samples)


def _filled(family: CounterMetricFamily | GaugeMetricFamily, samples: Samples | float) -> Metric:
    rows = samples.items() if isinstance(samples, Mapping) else [((), samples)]
    for labels, value in sorted(rows):
        family.add_metric(labels, value)
    return family


def _decode(scrape: Scrape) -> Metric:
    family = SummaryMetricFamily(
        "rtbus_decode_seconds", "Time spent decoding server frames.", labels=()
    )
    family.add_metric((), count_value=scrape.counts.decodes, sum_value=scrape.counts.decode_seconds)
    return family


# -- what each family reads ----------------------------------------------------------------


def _session_states(scrape: Scrape) -> Samples:
    counts: dict[Labels, float] = {(state.value,): 0 for state in SessionState}
    for session in scrape.sessions:
        counts[(session.state.value,)] += 1
    return counts


def _per_policy(
    scrape: Scrape, value: Callable[[Iterable[SubscriptionStatistics]], float]
) -> Samples:
    return {
        (policy.value,): value(s for s in scrape.subscriptions if s.policy is policy)
        for policy in OverflowPolicy
    }


def _fill_max(subscriptions: Iterable[SubscriptionStatistics]) -> float:
    return max((s.queued / s.maxsize for s in subscriptions), default=0.0)


def _dropped(scrape: Scrape) -> Samples:
    return {(policy.value,): count for policy, count in scrape.bus.dropped.items()}


# The policies that close a subscription, and why they do (the reason label).
_DISCONNECT_REASONS: Final = {
    OverflowPolicy.BLOCK: "too_slow",
    OverflowPolicy.DISCONNECT: "overflow",
}


def _disconnected(scrape: Scrape) -> Samples:
    return {
        (policy.value, reason): scrape.bus.disconnected.get(policy, 0)
        for policy, reason in _DISCONNECT_REASONS.items()
    }


def _restarts(scrape: Scrape) -> Samples:
    return {
        (supervisor, _RESTART_OUTCOMES[type]): count
        for (supervisor, type), count in scrape.supervision.items()
        if type in _RESTART_OUTCOMES
    }


def _per_supervisor(scrape: Scrape, event_type: str) -> Samples:
    return {
        (supervisor,): count
        for (supervisor, type), count in scrape.supervision.items()
        if type == event_type
    }


def _remaining(scrape: Scrape) -> Samples:
    return {(s.supervisor,): s.remaining_intensity for s in scrape.supervisors}


_C, _G = _counter, _gauge
_REASON, _POLICY, _SUPERVISOR = ("reason",), ("policy",), ("supervisor",)

_FAMILIES: Final[tuple[Callable[[Scrape], Metric], ...]] = (
    # Sessions and upstream.
    lambda s: _G("rtbus_sessions", "Sessions by state.", ("state",), _session_states(s)),
    lambda s: _C(
        "rtbus_upstream_connects_total", "Upstream connections opened.", (), s.counts.connects
    ),
    lambda s: _C(
        "rtbus_upstream_reconnects_total",
        "Sessions connected again, by cause.",
        _REASON,
        _keyed(s.counts.reconnects),
    ),
    lambda s: _C(
        "rtbus_upstream_disconnects_total",
        "Upstream connections lost, by cause.",
        _REASON,
        _keyed(s.counts.disconnects),
    ),
    lambda s: _C(
        "rtbus_session_failures_total",
        "Session actor failures, by cause.",
        _REASON,
        _keyed(s.counts.failures),
    ),
    # The conversation outliving the connection.
    lambda s: _C(
        "rtbus_session_resumes_total",
        "Conversations restored into a new upstream session, by cause.",
        _REASON,
        _keyed(s.counts.resumes),
    ),
    lambda s: _C(
        "rtbus_session_recycles_total",
        "Upstream sessions replaced before their limit, make-before-break.",
        (),
        s.counts.recycles,
    ),
    lambda s: _C(
        "rtbus_session_items_restored_total",
        "Conversation items given back to new upstream sessions.",
        (),
        s.counts.items_restored,
    ),
    lambda s: _C(
        "rtbus_session_items_dropped_total",
        "Conversation items the record's bound let go (summarised if a hook is set).",
        (),
        s.counts.items_dropped,
    ),
    lambda s: _C(
        "rtbus_upstream_close_codes_total",
        "Upstream connections ended, by WebSocket close code (none: no close frame).",
        ("code",),
        _keyed(s.counts.close_codes),
    ),
    lambda s: _C(
        "rtbus_server_events_total",
        "Events sessions published, by type.",
        ("type",),
        _keyed(s.counts.server_events),
    ),
    lambda s: _C(
        "rtbus_client_events_total",
        "Client events sessions sent, by type.",
        ("type",),
        _keyed(s.counts.client_events),
    ),
    lambda s: _C(
        "rtbus_server_errors_total",
        "Server error events, by error type and code.",
        ("type", "code"),
        _keyed(s.counts.server_errors),
    ),
    lambda s: _C(
        "rtbus_websocket_received_bytes_total",
        "Bytes received upstream.",
        (),
        s.counts.bytes_received,
    ),
    lambda s: _C(
        "rtbus_websocket_sent_bytes_total", "Bytes sent upstream.", (), s.counts.bytes_sent
    ),
    lambda s: _C(
        "rtbus_websocket_received_frames_total",
        "Frames received upstream.",
        (),
        s.counts.frames_received,
    ),
    _decode,
    # The bus.
    lambda s: _C("rtbus_bus_published_total", "Envelopes published.", (), s.bus.published),
    lambda s: _C("rtbus_bus_delivered_total", "Envelopes subscribers took.", (), s.bus.delivered),
    lambda s: _C(
        "rtbus_bus_dropped_total",
        "Envelopes discarded by an overflow policy (block: a subscription cut loose).",
        _POLICY,
        _dropped(s),
    ),
    lambda s: _C(
        "rtbus_bus_subscribers_disconnected_total",
        "Subscriptions closed by their policy: too_slow past block_timeout, overflow.",
        ("policy", "reason"),
        _disconnected(s),
    ),
    lambda s: _G(
        "rtbus_bus_publisher_blocked_seconds_max",
        "How long the longest-waiting publisher blocked on a full subscription has waited.",
        (),
        s.bus.blocked_seconds_max,
    ),
    lambda s: _G(
        "rtbus_bus_subscriptions",
        "Open subscriptions, by overflow policy.",
        _POLICY,
        _per_policy(s, lambda subs: sum(1 for _ in subs)),
    ),
    lambda s: _G(
        "rtbus_bus_queue_depth",
        "Envelopes queued in subscriptions, by overflow policy.",
        _POLICY,
        _per_policy(s, lambda subs: sum(sub.queued for sub in subs)),
    ),
    lambda s: _G(
        "rtbus_bus_queue_fill_ratio_max",
        "The fullest subscription's queued/maxsize, by overflow policy.",
        _POLICY,
        _per_policy(s, _fill_max),
    ),
    lambda s: _G(
        "rtbus_bus_publishers_waiting",
        "Publishers blocked on a full subscription.",
        (),
        sum(sub.publishers_waiting for sub in s.subscriptions),
    ),
    # Actors.
    lambda s: _C(
        "rtbus_actor_restarts_total",
        "Restarts decided by supervisors, by outcome.",
        (*_SUPERVISOR, "outcome"),
        _restarts(s),
    ),
    lambda s: _C(
        "rtbus_actor_failures_total",
        "Actors that failed, by supervisor.",
        _SUPERVISOR,
        _per_supervisor(s, ActorFailed.type),
    ),
    lambda s: _C(
        "rtbus_actor_gave_up_total",
        "Actors given up on past their own restart budget (removed for good), by supervisor.",
        _SUPERVISOR,
        _per_supervisor(s, ActorGaveUp.type),
    ),
    lambda s: _C(
        "rtbus_worker_envelopes_lost_total",
        "Envelopes workers never handled because they were given up on, by reason.",
        _REASON,
        _keyed(s.worker_losses),
    ),
    lambda s: _G(
        "rtbus_supervisor_remaining_intensity",
        "Restarts a supervisor still allows in its period.",
        _SUPERVISOR,
        _remaining(s),
    ),
    lambda s: _G("rtbus_build_info", "rtbus build information.", ("version",), {(_VERSION,): 1}),
)
