"""The calls' metrics, read from the switchboard's statistics when Prometheus scrapes.

    rtbus_calls_total{outcome}                        accepted, rejected, referred, failed, ended
    rtbus_calls_active                                calls held now
    rtbus_webhook_verifications_total{result}         verified, redelivery, malformed,
                                                      bad_signature, stale, busy
    rtbus_webhook_to_accept_seconds                   webhook arrival -> the accept answered
    rtbus_calls_api_errors_total{endpoint,status}     calls API failures (status "none": no answer)

Every label is bounded: a fixed outcome or result, an endpoint of ``CALLS_API``, a status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rtbus.metrics import Histogram, histogram_family

if TYPE_CHECKING:
    from ._switchboard import Switchboard, SwitchboardStatistics

__all__ = ["CallMetrics"]


def _outcomes(stats: SwitchboardStatistics) -> Metric:
    metric = CounterMetricFamily(
        "rtbus_calls",
        "Calls by outcome: accepted (each later ended), rejected, referred, failed.",
        labels=("outcome",),
    )
    for outcome, count in sorted(stats.outcomes.items()):
        metric.add_metric((outcome,), count)
    return metric


def _active(stats: SwitchboardStatistics) -> Metric:
    return GaugeMetricFamily("rtbus_calls_active", "Calls held now.", value=stats.active)


def _verifications(stats: SwitchboardStatistics) -> Metric:
    metric = CounterMetricFamily(
        "rtbus_webhook_verifications", "Webhook deliveries, by verdict.", labels=("result",)
    )
    for result, count in sorted(stats.verifications.items()):
        metric.add_metric((result,), count)
    return metric


def _api_errors(stats: SwitchboardStatistics) -> Metric:
    metric = CounterMetricFamily(
        "rtbus_calls_api_errors",
        "Calls API requests that failed, by endpoint and HTTP status (none: no answer).",
        labels=("endpoint", "status"),
    )
    for (endpoint, status), count in sorted(stats.api_errors.items()):
        metric.add_metric((endpoint, status), count)
    return metric


_FAMILIES: Final[tuple[Callable[[SwitchboardStatistics], Metric], ...]] = (
    _outcomes,
    _active,
    _verifications,
    _api_errors,
)
_ACCEPT_HELP: Final = "Seconds from a call's webhook (or a browser's offer) to the accept answered."


class CallMetrics:
    """A prometheus_client collector over one switchboard."""

    def __init__(self, board: Switchboard) -> None:
        self._board = board

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        stats = self._board.statistics()
        yield from (build(stats) for build in _FAMILIES)
        yield _accept_histogram(self._board.webhook_to_accept)


def _accept_histogram(histogram: Histogram) -> Metric:
    return histogram_family("rtbus_webhook_to_accept_seconds", _ACCEPT_HELP, histogram)
