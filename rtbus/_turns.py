"""When a reader that finds its data already waiting lets the other tasks run.

A trio checkpoint is a cancel point and a schedule point. The schedule point is the costly
half: with nothing else ready it is one whole turn of trio's loop, an ``epoll_wait`` among it,
3.3 us on the benchmark machine, and a subscriber working through a batch that arrived
together paid it once per envelope. A gateway client reading audio deltas spent a fifth of
its CPU there (BENCHMARKS.md). So a read that did not wait is always a cancel point, but
while a backlog waits to be read it is a schedule point only once its task has run for
``SLICE`` since it last let others run: waiting for data counts, as does a read's own
schedule point. This is the optimisation trio's maintainers describe for trio itself
(python-trio/trio#1757, "Skip schedule points if we've done one recently enough", with a
slice of 0.5 to 5 ms). Fairness is kept in time, not in reads: a reader doing slow work per
envelope yields at every read, a quick one every ``SLICE``.

Written here because trio has no such primitive, and kept per reader (one subscription), not
per task: an approximation that issue allows, and free of any lookup of the current task.
"""

from __future__ import annotations

from time import perf_counter
from typing import Final

import trio

__all__ = ["SLICE", "Turns"]

SLICE: Final = 0.0005
"""The longest a reader that finds data waiting runs before it lets other tasks run (s)."""


class Turns:
    """One reader's schedule points: call ``after_read`` at the end of every read."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        # When the reader last let other tasks run (perf_counter: real time, which is what
        # fairness is about, and what a test's virtual clock does not stop).
        self._since = perf_counter()

    async def after_read(self, *, parked: bool, waiting: int) -> None:
        """A schedule point, unless the read ``parked`` (it let others run while it waited),
        or a backlog of ``waiting`` envelopes (two or more) remains and the reader let others
        run less than ``SLICE`` ago. Not a cancel point: the read began with one.

        One left waiting is not a backlog: it is a publisher that adds one per turn, and a
        reader keeping pace with it yields as before. Skipping that turn would have it park
        at its next read and its publisher wake it every time, which costs more than the
        turn (about 1 us per envelope in process, bench_gateway's in-process way)."""
        if parked:
            self._since = perf_counter()
        elif waiting < 2 or perf_counter() - self._since >= SLICE:
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._since = perf_counter()
