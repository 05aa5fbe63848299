"""``ServiceMetrics``: one service's Prometheus registry and what fills it.

Each service owns a ``CollectorRegistry`` of its own (never the process-global one), so two
services in one process, or one per test, never mix their numbers. Three things fill it:

* a scrape-time collector (``_collector``) reading the service's frozen statistics;
* the observer (``_observer``), the bus's tap: it measures every envelope inline, as it is
  published and as a subscriber takes it, and is exported at scrape time too;
* the garbage collector's pauses (``_gc``), timed while the service runs (``gc.watching()``).

Other components (the HTTP surface, the gateway, the Redis bridge) add their own collectors
with :meth:`ServiceMetrics.register`, or for a while with :meth:`ServiceMetrics.collecting`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from ._collector import ServiceCollector
from ._gc import GcPauses
from ._observer import Observer
from ._source import MetricsSource

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """A service's metrics: ``registry`` to expose, ``observer`` to give the bus as its tap."""

    def __init__(self, source: MetricsSource) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ServiceCollector(source))
        self.observer = Observer()
        self.registry.register(self.observer)
        self.gc = GcPauses()
        self.registry.register(self.gc)

    def register(self, collector: Collector) -> None:
        """Export ``collector``'s metrics too. Raises ``ValueError`` naming the metrics when
        one of its names is taken already."""
        self.registry.register(collector)

    def unregister(self, collector: Collector) -> None:
        """Stop exporting ``collector``'s metrics. Raises ``KeyError`` if it is not
        registered."""
        self.registry.unregister(collector)

    @contextmanager
    def collecting(self, collector: Collector) -> Iterator[Collector]:
        """Export ``collector``'s metrics for the body of the ``with`` (as ``register``)."""
        self.register(collector)
        try:
            yield collector
        finally:
            self.unregister(collector)
