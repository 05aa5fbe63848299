"""``rtbus tail``: follow a running service's bus, live, over its WebSocket gateway.

It subscribes through the bus client (``rtbus.bus.connect``) with the same filters as
``Bus.subscribe`` (``--types`` globs, ``--session`` ids), under ``drop_oldest``: a slow terminal
loses old lines instead of slowing the service. ``--json`` subscribes raw, so the frames are
spliced into the lines as the upstream sent them. The client reconnects by itself; the lines
``rtbus.gateway.reconnected`` and ``rtbus.gateway.gap`` say when and what was missed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import trio

from rtbus.bus import Envelope, OverflowPolicy
from rtbus.gateway import connect
from rtbus.protocol import RtbusError

from ._args import Subcommands, first_message, usage_error
from ._tail_format import format_json, format_line

__all__ = ["add_command", "run"]

_DEFAULT_URL = "http://127.0.0.1:9464"
_BUFFER = 1024
_FAILED = 1


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus tail`` to the parser."""
    parser = commands.add_parser(
        "tail", help="follow a running service's bus, one line per event", description=__doc__
    )
    parser.add_argument(
        "--url",
        default=_DEFAULT_URL,
        help=f"the service, or its gateway's ws:// URL (default {_DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("RTBUS_HTTP_TOKEN") or None,
        help="the service's bearer token (default: $RTBUS_HTTP_TOKEN)",
    )
    parser.add_argument("--types", nargs="+", default=["*"], metavar="GLOB")
    parser.add_argument("--session", nargs="+", default=["*"], metavar="ID", dest="sessions")
    parser.add_argument("--json", action="store_true", help="JSON lines, for jq")
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
    write = _write_json if args.json else _write_line
    # A signal stops the reading only: the subscription and the connection then close
    # gracefully, where cancelling them would wait out the client's close timeout.
    reading = trio.CancelScope()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, signals, reading, nursery.cancel_scope)
            await _follow(args, reading, write)
            nursery.cancel_scope.cancel()


async def _follow(
    args: argparse.Namespace, reading: trio.CancelScope, write: Callable[[Envelope], None]
) -> None:
    async with (
        connect(args.url, token=args.token) as bus,
        bus.subscribe(
            types=args.types,
            sessions=args.sessions,
            maxsize=_BUFFER,
            overflow=OverflowPolicy.DROP_OLDEST,
            raw=args.json,
        ) as subscription,
    ):
        # On stderr, so that stdout is only events (for jq); once said, nothing is missed.
        what = f"types {' '.join(args.types)}, sessions {' '.join(args.sessions)}"
        print(f"rtbus tail: following {args.url} ({what})", file=sys.stderr, flush=True)
        with reading:
            async for envelope in subscription:
                write(envelope)


async def _stop_on_signals(
    signals: AsyncIterator[int], reading: trio.CancelScope, everything: trio.CancelScope
) -> None:
    """The first signal ends the reading; a second one, everything at once."""
    await signals.__anext__()
    reading.cancel()
    await signals.__anext__()
    everything.cancel()


def _write_line(envelope: Envelope) -> None:
    print(format_line(envelope), flush=True)


def _write_json(envelope: Envelope) -> None:
    sys.stdout.buffer.write(format_json(envelope) + b"\n")
    sys.stdout.buffer.flush()
