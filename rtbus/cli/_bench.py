"""``rtbus bench``: run the benchmarks and print, or write, the table BENCHMARKS.md quotes.

The benchmarks are the checkout's ``bench/`` package, not part of the installed library: run
from a checkout (``make bench`` does the same).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

from ._args import Subcommands, plain, usage_error

__all__ = ["add_command", "run"]


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus bench`` to the parser."""
    parser = commands.add_parser(
        "bench",
        help="run the benchmarks (from a checkout) and print their table",
        description=plain(__doc__),
    )
    parser.add_argument("--out", metavar="FILE", type=Path, help="also write the table here")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these (e.g. bench_bus)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the named benchmarks (default: all), print the table, write it to ``--out``."""
    bench = _import_bench()
    if bench is None:
        return usage_error(
            "the benchmarks are not importable: run `rtbus bench` from a checkout of rtbus "
            "(the bench/ package beside rtbus/)"
        )
    table_module = importlib.import_module("bench._table")
    names = args.names or list(bench.MODULES)
    try:
        modules = [importlib.import_module(_qualified(name)) for name in names]
    except ModuleNotFoundError as exc:
        return usage_error(f"no such benchmark: {exc.name} (known: {', '.join(bench.MODULES)})")
    rows = [row for module in modules for row in module.run()]
    table: str = table_module.render(rows)
    print(table, flush=True)
    if args.out is not None:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 0


def _import_bench() -> ModuleType | None:
    # An editable install puts the checkout on sys.path; a plain one does not: try the cwd.
    for attempt in range(2):
        try:
            return importlib.import_module("bench.__main__")
        except ModuleNotFoundError as exc:
            if exc.name not in {"bench", "bench.__main__"} or attempt:
                return None
            sys.path.insert(0, str(Path.cwd()))
    return None


def _qualified(name: str) -> str:
    return name if name.startswith("bench.") else f"bench.{name}"
