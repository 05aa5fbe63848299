"""``rtbus serve``: run the service until a signal drains it.

The first SIGTERM or SIGINT cancels ``run_service``, which is its graceful drain; the watcher
keeps listening meanwhile, and a second signal ends the process at once with status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import trio

from rtbus.protocol import ConfigError
from rtbus.service import SessionsNotStarted, Settings, load_settings, run_service

from ._args import Subcommands, first_message, host_port, usage_error
from ._logging import configure_logging

__all__ = ["add_command", "run"]

_log = logging.getLogger("rtbus.cli")
_FORCED_EXIT = 1


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus serve`` to the parser."""
    parser = commands.add_parser(
        "serve",
        help="run the service (on the embedded simulator unless configured otherwise)",
        description="Run the service until SIGTERM or SIGINT drains it; a second signal "
        "stops it at once.",
    )
    parser.add_argument("--config", metavar="FILE", help="a TOML config (default: none)")
    parser.add_argument(
        "--http",
        type=host_port,
        metavar="HOST:PORT",
        help="serve HTTP here (default 127.0.0.1:9464; port 0 picks a free port)",
    )
    parser.add_argument("--log-format", choices=("logfmt", "json"))
    parser.add_argument(
        "--log-level", type=str.lower, choices=("debug", "info", "warning", "error", "critical")
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the settings (the flags win over the environment and the file), then serve."""
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        return usage_error(f"the configuration is wrong:\n{exc}")
    configure_logging(settings.log, secrets=settings.secrets())
    return _serve_until_drained(settings)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.http is not None:
        overrides["http.host"], overrides["http.port"] = args.http
    if args.log_format is not None:
        overrides["log.format"] = args.log_format
    if args.log_level is not None:
        overrides["log.level"] = args.log_level
    return overrides


def _serve_until_drained(settings: Settings) -> int:
    status = 0
    try:
        trio.run(_serve, settings)
    except* SessionsNotStarted as group:
        _log.critical("stopped", extra={"fields": {"reason": first_message(group)}})
        status = 1
    except* Exception:
        _log.critical("the service failed", exc_info=True)
        status = 1
    return status


async def _serve(settings: Settings) -> None:
    # Open first: from here on a signal drains instead of raising KeyboardInterrupt.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as watcher:
            service_scope = trio.CancelScope()
            watcher.start_soon(_watch_signals, signals, service_scope)
            with service_scope:
                await run_service(settings)
            watcher.cancel_scope.cancel()


async def _watch_signals(signals: AsyncIterator[int], service_scope: trio.CancelScope) -> None:
    async for number in signals:
        name = signal.Signals(number).name
        if service_scope.cancel_called:
            _log.warning("stopped without draining", extra={"fields": {"signal": name}})
            os._exit(_FORCED_EXIT)
        _log.info("signal received", extra={"fields": {"signal": name, "then": "drain"}})
        service_scope.cancel()
