"""``rtbus top``: a running service, live, in the terminal: its sessions with their state,
events per second, reconnects, send queue and last error; the bus's subscriptions, queue
depths and drops by overflow policy.

It reads the control API (``GET /v1/sessions``, ``/v1/sessions/{id}``, ``/metrics``,
``/readyz``) every
``--interval`` seconds and redraws in place, until Ctrl-C (exit 0). ``--once`` takes two
samples ``--interval`` apart (so rates are known), prints them once and exits: for scripts.
While the service cannot be read the view says so and keeps trying.

It never subscribes to the bus: a subscriber that takes a session's ``error`` events changes
what an error does to that session (published instead of failing it), and watching must
change nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import orjson
import trio
from rich.console import Console
from rich.live import Live

from ._args import Subcommands, add_service_arguments, plain
from ._top_view import Sample, TopView, bus_rows

__all__ = ["add_command", "run"]

_FAILED = 1
_HTTP_TIMEOUT = 5.0
# /readyz answers 503 with the same body when a check fails: that is news, not a fault.
_NOT_READY = 503
# Sessions are read a few at a time: hundreds of them must not open hundreds of sockets.
_CONCURRENT_READS = 8


class Unreachable(Exception):
    """The service could not be read; the message says why, in one line."""


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus top`` to the parser."""
    parser = commands.add_parser(
        "top",
        help="a running service's sessions and bus, live in the terminal",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_service_arguments(parser)
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds between samples (default %(default)s)",
    )
    parser.add_argument(
        "--once", action="store_true", help="print one view (two samples apart) and exit"
    )
    parser.set_defaults(run=run)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 3600], got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """Show the service until Ctrl-C or SIGTERM (0); with ``--once``, 1 if it cannot be read."""
    view = TopView(args.url)
    if args.once:
        return trio.run(_once, args, view)
    trio.run(_live, args, view)
    return 0


async def _once(args: argparse.Namespace, view: TopView) -> int:
    try:
        view.update(await _sample(args))
        await trio.sleep(args.interval)
        view.update(await _sample(args))
    except Unreachable as exc:
        print(f"rtbus top: {exc}", file=sys.stderr, flush=True)
        return _FAILED
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)  # a script reads whole rows
    console.print(view.render())
    return 0


async def _live(args: argparse.Namespace, view: TopView) -> None:
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        Live(view.render(), auto_refresh=False, console=Console(highlight=False)) as live,
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            while True:
                try:
                    view.update(await _sample(args))
                except Unreachable as exc:
                    view.unreachable(f"{exc}; trying again every {args.interval:g}s")
                live.update(view.render(), refresh=True)
                await trio.sleep(args.interval)


async def _stop_on_signal(signals: Any, scope: trio.CancelScope) -> None:
    await signals.__anext__()
    scope.cancel()


async def _sample(args: argparse.Namespace) -> Sample:
    listed = await _get_json(args, "/v1/sessions")
    ids = [str(summary["id"]) for summary in listed["sessions"]]
    sessions: dict[str, Mapping[str, Any]] = {}
    limiter = trio.CapacityLimiter(_CONCURRENT_READS)
    async with trio.open_nursery() as nursery:
        for id in ids:
            nursery.start_soon(_read_session, args, id, sessions, limiter)
    metrics = (await _get(args, "/metrics")).decode()
    rows, gateway, waiting = bus_rows(metrics)
    ordered = tuple(sessions[id] for id in ids if id in sessions)
    readiness = await _get_json(args, "/readyz", also=_NOT_READY)
    return Sample(time.time(), ordered, rows, gateway, waiting, readiness.get("checks", {}))


async def _read_session(
    args: argparse.Namespace,
    id: str,
    into: dict[str, Mapping[str, Any]],
    limiter: trio.CapacityLimiter,
) -> None:
    # A session that ended between the list and this read is simply not shown.
    async with limiter:
        with contextlib.suppress(Unreachable):
            into[id] = (await _get_json(args, f"/v1/sessions/{id}"))["statistics"]


async def _get_json(args: argparse.Namespace, path: str, also: int | None = None) -> Any:
    return orjson.loads(await _get(args, path, also))


async def _get(args: argparse.Namespace, path: str, also: int | None = None) -> bytes:
    """The body of ``GET path``: of a 200, or of the status ``also`` names."""
    return await trio.to_thread.run_sync(_get_blocking, args.url, args.token, path, also)


def _get_blocking(url: str, token: str | None, path: str, also: int | None) -> bytes:
    base = url.replace("ws://", "http://").replace("wss://", "https://").removesuffix("/v1/bus")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(base.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as answer:
            body: bytes = answer.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == also:
            answered: bytes = exc.read()
            return answered
        raise Unreachable(f"{base}{path} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach {base}: {reason}") from None
