"""``rtbus_http_requests_total{route, method, status}``: requests the HTTP surface answered.

Counted as plain ints per request and turned into a metric family only when Prometheus
scrapes. Every label is bounded: ``route`` is a route template (or ``other`` for a path no
route fits), ``method`` one of the standard methods (or ``other``), ``status`` a status code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily

__all__ = ["UNROUTED", "RequestCounts"]

UNROUTED: Final = "other"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME: Final = "rtbus_http_requests"
_HELP: Final = "HTTP requests answered, by route template, method and status."
_LABELS: Final = ("route", "method", "status")


class RequestCounts:
    """A prometheus_client collector of the requests answered, registered on a service's
    registry for as long as its HTTP surface runs."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def count(self, route: str, method: str, status: int) -> None:
        bounded = method if method in _METHODS else UNROUTED
        self._counts[route, bounded, str(status)] += 1

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(_NAME, _HELP, labels=_LABELS)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(_NAME, _HELP, labels=_LABELS)
        for labels, value in sorted(self._counts.items()):
            family.add_metric(labels, value)
        yield family
