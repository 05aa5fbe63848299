"""Run every benchmark and print one table: ``python -m bench`` (or ``make bench``).

Each bench module has ``run() -> list[Row]``; rows from all of them are printed together so
ratios against the peers come from one run on one (shared, noisy) machine.
"""

from __future__ import annotations

import importlib
import os
import sys

from bench._table import Row, render

MODULES = (
    "bench.bench_decode",
    "bench.bench_transport",
    "bench.bench_fleet",
    "bench.bench_bus",
    "bench.bench_gateway",
    "bench.bench_service",
    "bench.bench_redis",
    "bench.bench_resume",
    "bench.bench_chaos",
    "bench.bench_calls",
)


def main(argv: list[str]) -> None:
    """``python -m bench [NAME ...] [--quick]``: a NAME is ``fleet``, ``bench_fleet`` or
    ``bench.bench_fleet``; ``--quick`` asks the benches that know it for a subset."""
    if "--quick" in argv:
        os.environ["RTBUS_BENCH_QUICK"] = "1"
    names = [name for name in argv if not name.startswith("--")] or list(MODULES)
    rows: list[Row] = []
    for name in names:
        rows.extend(importlib.import_module(_module(name)).run())
    print(render(rows))


def _module(name: str) -> str:
    """``bench.bench_calls`` for ``calls``, ``bench_calls`` or ``bench.bench_calls``."""
    if "." in name:
        return name
    return f"bench.{name}" if name.startswith("bench_") else f"bench.bench_{name}"


if __name__ == "__main__":
    main(sys.argv[1:])
