"""``rtbus sim``: the simulated Realtime server alone, as ``python -m rtbus.sim`` runs it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from rtbus.sim import FaultKind
from rtbus.sim import __main__ as sim_main

from ._args import Subcommands

__all__ = ["add_command"]

_DESCRIPTION = """\
Run the simulated Realtime server alone. It prints its base URL (http://HOST:PORT/v1) once it
listens, serves until Ctrl-C or SIGTERM, then closes every connection with 1001 and exits 0.
Point a client at it with base_url = that URL and any key (or the one --api-key names)."""

_FAULTS = """\
A fault spec is KIND[:ARG][:KEY=VALUE]..., triggered after_events=N (after the N-th event
sent; default 1) or after_seconds=T, e.g. --fault close:1011:after_events=5. Kinds:
  close[:CODE]        close the WebSocket with CODE (default 1011)
  drop                abort the TCP connection: no close frame, the client sees 1006
  stall[:SECONDS]     stop sending and reading; drop after SECONDS (default: never)
  malformed           send one frame that is not JSON, then carry on
  notype              send one JSON object with no type, then carry on
  oversized[:BYTES]   send one frame of BYTES bytes (default 2 MiB), then carry on
  error[:CODE]        send an error event (default server_error), then carry on
  expire              send session_expired and close with 1001
A client can also ask per connection, in the URL: ?sim_fault=drop:after_events=5."""

# The simulator's own parser names its options; these say what each does, for `rtbus sim -h`.
_HELP: Mapping[str, str] = {
    "host": "the address to listen on (default %(default)s)",
    "port": "the port (default %(default)s; 0 picks a free one)",
    "speed": "audio pacing: 1 is real time, 2 twice as fast, or 'unpaced' (default %(default)s)",
    "api_key": "require this key at the handshake (default: $RTBUS_SIM_API_KEY, else any)",
    "audio_seconds": "seconds of audio per response (default %(default)s)",
    "seed": "seed for the random choices, to replay a run (default: random)",
    "fault": "inject this fault on every connection; repeatable (kinds below)",
    "fault_rate": "chance per connection of a random fault, 0..1 (default %(default)s)",
    "max_session_seconds": "expire sessions after this long (default: never)",
}


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus sim`` to the parser, with the simulator's own options."""
    parser = commands.add_parser(
        "sim",
        help="run the simulated Realtime server alone",
        description=_DESCRIPTION,
        epilog=_FAULTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_main.add_arguments(parser)
    for action in parser._actions:
        action.help = _HELP.get(action.dest, action.help)
    parser.set_defaults(run=sim_main.run)


def fault_kinds() -> tuple[str, ...]:
    """Every fault kind the simulator knows (a test holds the help text to them)."""
    return tuple(kind.value for kind in FaultKind)
