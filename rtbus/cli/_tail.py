"""``rtbus tail``: follow a running service's bus, live, over its WebSocket gateway.

It subscribes through the bus client (``rtbus.gateway.connect``) with the same filters as
``Bus.subscribe`` (``--types`` globs, ``--session`` ids), under ``drop_oldest``: a slow terminal
loses old lines instead of slowing the service. ``--json`` subscribes raw, so the frames are
spliced into the lines as the upstream sent them. Times are wall-clock: when the service
received each event. On a terminal the lines have colours (none when piped, or with
``NO_COLOR`` set). The client reconnects by itself: stderr says when the service was lost and
when it is back, and the lines ``rtbus.gateway.reconnected`` and ``rtbus.gateway.gap`` say
what was missed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import trio
from rich.console import Console

from rtbus.bus import Envelope, OverflowPolicy
from rtbus.gateway import RemoteBus, connect
from rtbus.protocol import RtbusError

from ._args import Subcommands, add_service_arguments, first_message, plain, usage_error
from ._tail_format import format_json, styled_line

__all__ = ["add_command", "run"]

_BUFFER = 1024
_FAILED = 1
# How often the connection is looked at, to say when it was lost and when it is back.
_WATCH_SECONDS = 0.1

Write = Callable[[Envelope, float], None]


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus tail`` to the parser."""
    parser = commands.add_parser(
        "tail",
        help="follow a running service's bus, one line per event",
        description=plain(__doc__),
    )
    add_service_arguments(parser)
    parser.add_argument(
        "--types",
        nargs="+",
        default=["*"],
        metavar="GLOB",
        help="only these event types, globs allowed: response.* error (default: all)",
    )
    parser.add_argument(
        "--session",
        nargs="+",
        default=["*"],
        metavar="ID",
        dest="sessions",
        help="only these sessions (default: all)",
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines, for jq (default: readable lines)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the bus until Ctrl-C or SIGTERM (0); 2 for bad arguments, 1 when the service
    cannot be followed (unreachable, the token refused)."""
    status = 0
    try:
        trio.run(_tail, args)
    except* ValueError as group:  # a URL or a filter the client will not take
        status = usage_error(first_message(group))
    except* RtbusError as group:
        print(f"rtbus tail: {first_message(group)}", file=sys.stderr, flush=True)
        status = _FAILED
    except* BrokenPipeError:
        # The reader left (`rtbus tail | head`): not an error. Nothing more can be written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status


async def _tail(args: argparse.Namespace) -> None:
    write = _write_json if args.json else _line_writer(Console(highlight=False, soft_wrap=True))
    # A signal stops the reading only: the subscription and the connection then close
    # gracefully, where cancelling them would wait out the client's close timeout.
    reading = trio.CancelScope()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, signals, reading, nursery.cancel_scope)
            await _follow(args, reading, write)
            nursery.cancel_scope.cancel()


async def _follow(args: argparse.Namespace, reading: trio.CancelScope, write: Write) -> None:
    async with (
        connect(args.url, token=args.token) as bus,
        bus.subscribe(
            types=args.types,
            sessions=args.sessions,
            maxsize=_BUFFER,
            overflow=OverflowPolicy.DROP_OLDEST,
            raw=args.json,
            observer=True,  # watching must not count as handling the sessions' errors
        ) as subscription,
        trio.open_nursery() as watcher,
    ):
        # On stderr, so that stdout is only events (for jq); once said, nothing is missed.
        what = f"types {' '.join(args.types)}, sessions {' '.join(args.sessions)}"
        _say(f"following {args.url} ({what})")
        watcher.start_soon(_watch_connection, bus)
        with reading:
            async for envelope in subscription:
                write(envelope, _wall_clock(envelope.received_at))
        watcher.cancel_scope.cancel()


def _wall_clock(received_at: float) -> float:
    """The wall-clock time of ``received_at`` (this process's trio clock)."""
    return time.time() - (trio.current_time() - received_at)


async def _watch_connection(bus: RemoteBus) -> None:
    """Say when the service was lost and when it is back (the client reconnects by itself)."""
    up = True
    while True:
        await trio.sleep(_WATCH_SECONDS)
        if bus.connected != up:
            up = bus.connected
            now = datetime.now().strftime("%H:%M:%S")
            _say(f"back at {now}" if up else f"lost the service at {now}; reconnecting")


def _say(text: str) -> None:
    print(f"rtbus tail: {text}", file=sys.stderr, flush=True)


async def _stop_on_signals(
    signals: AsyncIterator[int], reading: trio.CancelScope, everything: trio.CancelScope
) -> None:
    """The first signal ends the reading; a second one, everything at once."""
    await signals.__anext__()
    reading.cancel()
    await signals.__anext__()
    everything.cancel()


def _line_writer(console: Console) -> Write:
    # NO_COLOR asks for plain text: rich would still embolden and dim.
    plain = bool(os.environ.get("NO_COLOR"))

    def write(envelope: Envelope, at: float) -> None:
        line = styled_line(envelope, at)
        console.print(line.plain if plain else line, markup=False, emoji=False)

    return write


def _write_json(envelope: Envelope, at: float) -> None:
    sys.stdout.buffer.write(format_json(envelope, at) + b"\n")
    sys.stdout.buffer.flush()
