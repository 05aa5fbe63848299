"""How fast this machine is right now: a fixed pure-Python loop, CPU time per operation.

The machines these benchmarks run on are shared virtual ones: the same loop takes 95 to 130
ns per operation from one minute to the next, and CPU time per event moves with it. The
table prints this before and after the benchmarks, so figures from different runs can be
set side by side (a run at 130 ns/op is about 1.4x slower than one at 95, for everything).
"""

from __future__ import annotations

import time

from bench._table import Row

_KEYS = 1023
_OPS = 200_000


def _work() -> dict[int, int]:
    counts: dict[int, int] = {}
    for i in range(_OPS):
        counts[i & _KEYS] = counts.get(i & _KEYS, 0) + i
    return counts


def reference_row(when: str) -> Row:
    """The loop's CPU time per operation, best of five rounds (the least disturbed)."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        _work()
        best = min(best, time.process_time() - started)
    return Row("machine", f"reference loop, {when}", best / _OPS * 1e9, "ns/op")
