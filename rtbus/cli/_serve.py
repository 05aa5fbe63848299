"""``rtbus serve``: run the service until a signal drains it.

The first SIGTERM or SIGINT cancels ``run_service``, which is its graceful drain; the watcher
keeps listening meanwhile, and a second signal ends the process at once with status 1. The
same signal again within ``ECHO_SECONDS`` is the first one delivered twice -- to the process
group and forwarded by a parent such as ``make`` -- not an operator's second request.

A service that cannot start (its HTTP port taken, say) says why in one line on stderr and
exits 2; the traceback is logged only at ``--log-level debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio

from rtbus.protocol import ConfigError, redact
from rtbus.service import RunningService, SessionsNotStarted, Settings, load_settings, run_service

from ._args import Subcommands, first_message, host_port, usage_error
from ._logging import configure_logging
from ._startup import http_port_problem, startup_fault

__all__ = ["ECHO_SECONDS", "add_command", "run"]

_log = logging.getLogger("rtbus.cli")
_FORCED_EXIT = 1
_FAILED = 1
_NOT_STARTED = 2
#: A repeat of the first signal this soon is the same signal delivered twice.
ECHO_SECONDS = 0.25


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus serve`` to the parser."""
    parser = commands.add_parser(
        "serve",
        help="run the service (on the embedded simulator unless configured otherwise)",
        description="Run the service until SIGTERM or SIGINT drains it; a second signal "
        "stops it at once. Flags win over RTBUS_* variables, which win over the file.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="a TOML config (default: none, the embedded default)"
    )
    parser.add_argument(
        "--http",
        type=host_port,
        metavar="HOST:PORT",
        help="serve HTTP here (default 127.0.0.1:9464; port 0 picks a free port)",
    )
    parser.add_argument(
        "--sim-port",
        type=int,
        metavar="PORT",
        help="where the embedded simulator listens on 127.0.0.1 (default 0: a free port)",
    )
    parser.add_argument(
        "--log-format",
        choices=("logfmt", "json"),
        help="one logfmt line or one JSON object per record (default logfmt)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error", "critical"),
        help="the lowest level logged (default info; debug adds tracebacks)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the settings (the flags win over the environment and the file), then serve."""
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        return usage_error(f"the configuration is wrong:\n{exc}")
    configure_logging(settings.log, secrets=settings.secrets())
    # Asked before anything starts, so that a taken port is one line and nothing else.
    problem = http_port_problem(settings.http.host, settings.http.port)
    if problem is not None:
        return _not_started(problem)
    return _serve_until_drained(settings)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.http is not None:
        overrides["http.host"], overrides["http.port"] = args.http
    if args.sim_port is not None:
        overrides["upstream.port"] = args.sim_port
    if args.log_format is not None:
        overrides["log.format"] = args.log_format
    if args.log_level is not None:
        overrides["log.level"] = args.log_level
    return overrides


@attrs.define
class _Startup:
    """The ``task_status`` handed to ``run_service``: whether it got as far as serving."""

    serving: bool = False

    def started(self, value: RunningService | None = None) -> None:
        self.serving = True


def _serve_until_drained(settings: Settings) -> int:
    status = 0
    startup = _Startup()
    try:
        trio.run(_serve, settings, startup)
    except* SessionsNotStarted as group:
        _log.critical("stopped", extra={"fields": {"reason": first_message(group)}})
        status = _FAILED
    except* Exception as group:
        if startup.serving:
            _log.critical("the service failed", exc_info=True)
            status = _FAILED
        else:
            # As text, not exc_info: a record kept by a handler must not keep the frames alive.
            trace = "".join(traceback.format_exception(group))
            _log.debug("the service could not start", extra={"fields": {"exc": trace}})
            status = _not_started(redact(startup_fault(group), settings.secrets()))
    return status


def _not_started(reason: str) -> int:
    print(f"rtbus serve: could not start: {reason}", file=sys.stderr, flush=True)
    return _NOT_STARTED


async def _serve(settings: Settings, startup: _Startup) -> None:
    # Open first: from here on a signal drains instead of raising KeyboardInterrupt.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as watcher:
            service_scope = trio.CancelScope()
            watcher.start_soon(_watch_signals, signals, service_scope)
            with service_scope:
                await run_service(settings, task_status=startup)
            watcher.cancel_scope.cancel()


async def _watch_signals(signals: AsyncIterator[int], service_scope: trio.CancelScope) -> None:
    first: tuple[int, float] | None = None
    async for number in signals:
        name = signal.Signals(number).name
        if first is not None and _is_echo(first, number):
            _log.debug("signal delivered twice: one drain", extra={"fields": {"signal": name}})
            continue
        if service_scope.cancel_called:
            _log.warning("stopped without draining", extra={"fields": {"signal": name}})
            os._exit(_FORCED_EXIT)
        first = (number, trio.current_time())
        _log.info("signal received", extra={"fields": {"signal": name, "then": "drain"}})
        service_scope.cancel()


def _is_echo(first: tuple[int, float], number: int) -> bool:
    first_number, at = first
    return number == first_number and trio.current_time() - at < ECHO_SECONDS
