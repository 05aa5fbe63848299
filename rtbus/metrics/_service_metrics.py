"""``ServiceMetrics``: one service's Prometheus registry and what fills it.

Each service owns a ``CollectorRegistry`` of its own (never the process-global one), so two
services in one process, or one per test, never mix their numbers. Two things fill it:

* a scrape-time collector (``_collector``) reading the service's frozen statistics;
* the observer (``_observer``), fed by a supervised worker the service subscribes to the bus.

Other components (the HTTP surface, the gateway, the Redis bridge) add their own collectors
with :meth:`ServiceMetrics.register`, or for a while with :meth:`ServiceMetrics.collecting`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from rtbus.bus import Envelope

from ._collector import ServiceCollector
from ._observer import OBSERVED_TYPES, Observer
from ._source import MetricsSource

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """A service's metrics: ``registry`` to expose, ``observe`` for its metrics worker.

    ``observed_types`` are the event types the metrics worker must subscribe to (not
    ``error``: see ``_observer``).
    """

    observed_types: tuple[str, ...] = OBSERVED_TYPES

    def __init__(self, source: MetricsSource) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ServiceCollector(source))
        self._observer = Observer(self.registry)

    def observe(self, envelope: Envelope) -> None:
        """The metrics worker's handler: one envelope, measured now."""
        self._observer.observe(envelope, trio.current_time())

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
