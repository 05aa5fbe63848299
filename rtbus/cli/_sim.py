"""``rtbus sim``: the simulated Realtime server alone, as ``python -m rtbus.sim`` runs it."""

from __future__ import annotations

from rtbus.sim import __main__ as sim_main

from ._args import Subcommands

__all__ = ["add_command"]


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus sim`` to the parser, with the simulator's own options."""
    parser = commands.add_parser(
        "sim",
        help="run the simulated Realtime server alone",
        description=sim_main.__doc__,
    )
    sim_main.add_arguments(parser)
    parser.set_defaults(run=sim_main.run)
