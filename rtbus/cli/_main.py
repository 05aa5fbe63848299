"""One argparse parser for every subcommand; each command module adds its own."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from . import _bench, _config, _serve, _sim, _tail, _top
from ._args import Subcommands

__all__ = ["build_parser", "main"]

# The order of ``rtbus --help``.
_COMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    _serve.add_command,
    _config.add_command,
    _tail.add_command,
    _top.add_command,
    _sim.add_command,
    _bench.add_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``rtbus`` parser; each subcommand sets ``run`` (``args -> exit status``)."""
    parser = argparse.ArgumentParser(
        prog="rtbus",
        description="Run many OpenAI Realtime sessions as supervised actors, every event on a bus.",
    )
    parser.add_argument("--version", action="version", version=f"rtbus {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in _COMMANDS:
        add_command(commands)
    return parser


def _version() -> str:
    try:
        return version("rtbus")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtbus`` command; returns the exit status (argparse exits 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status
