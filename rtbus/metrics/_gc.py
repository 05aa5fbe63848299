"""The garbage collector's pauses, as a Prometheus histogram by generation.

A collection stops the whole process, every session's reading and every subscriber with it,
so a full one (generation 2) is latency every call hears at once. ``GcPauses`` times each
collection with ``gc.callbacks`` while a service runs and exports
``rtbus_gc_pause_seconds{generation}``. The collector is the process's: two services in one
process each report every pause of it.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import Metric

from ._histogram import LabelledHistogram, family

__all__ = ["GcPauses"]

# Up to 5 s: a full collection of a large process has taken 1.3 s on the benchmark machine.
_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip
_NAME: Final = "rtbus_gc_pause_seconds"
_DOC: Final = "How long each collection of Python's garbage collector stopped the process."
_GENERATIONS: Final = ("0", "1", "2")


class GcPauses:
    """Times every collection while ``watching``; exported at scrape time (a
    prometheus_client collector)."""

    def __init__(self) -> None:
        self.pauses = LabelledHistogram(_BUCKETS)
        for generation in _GENERATIONS:  # each exported from the start, at zero
            self.pauses.labels(generation)
        self._started = 0.0

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Time the collections that run within the ``with``."""
        gc.callbacks.append(self._callback)
        try:
            yield
        finally:
            # Gone already if someone cleared the callbacks: that must not hide an exception.
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        # Called by the collector around each collection, in whichever thread collects (a
        # worker thread's collection too): an observation racing a scrape there can at worst
        # count a pause in the sum a scrape before its bucket.
        if phase == "start":
            self._started = time.perf_counter()
        else:
            took = time.perf_counter() - self._started
            self.pauses.labels(_GENERATIONS[info["generation"]]).observe(took)

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        yield family(_NAME, _DOC, self.pauses, "generation")
