"""The cyclic garbage collector, set for a process that carries many live sessions.

CPython collects its youngest generation after every 700 net allocations of objects it
tracks (its default). A service with 2,000 real-time sessions makes that many within one
scheduler turn, while the turn's events are still referenced: they survive two young
collections and reach the oldest generation, and each time that grows by a quarter CPython
runs a full collection. A full collection traverses every live object (about 650,000 at
2,000 sessions; 0.2-0.3 s on the benchmark machine) and stops every session for that long.
At 2,000 sessions in ``bench_fleet`` that was dozens of full collections and p99 0.5-1.1 s.
With the young generation collected every 20,000 allocations the turn's events are gone
before it runs: no full collection in the window, and p99 14-96 ms on a quiet host, where the
service needs the whole core (BENCHMARKS.md).

The threshold is the process's, so ``rtbus serve`` sets it (``[service] gc_threshold``) and a
program that embeds ``open_service`` decides for itself, with ``young_gc_threshold``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["young_gc_threshold"]


@contextmanager
def young_gc_threshold(allocations: int) -> Iterator[None]:
    """Collect the youngest generation every ``allocations`` net allocations of tracked
    objects within the ``with`` (0: leave the threshold as it is); restore it after.

    It restores the threshold it found, so uses must nest (two ``run_service`` in one
    process that end in another order leave the first one's), and a change made within the
    ``with`` does not outlive it."""
    before = gc.get_threshold()
    if allocations:
        gc.set_threshold(allocations, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
