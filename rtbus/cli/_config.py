"""``rtbus config check FILE``: is this config (with the environment applied) runnable?"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from rtbus.protocol import ConfigError
from rtbus.service import Settings, SettingsError, load_settings

from ._args import Subcommands

__all__ = ["add_command", "check", "summary"]

_BAD_CONFIG = 2


def add_command(commands: Subcommands) -> None:
    """Add ``rtbus config check`` to the parser."""
    parser = commands.add_parser("config", help="check a config file")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check_parser = actions.add_parser(
        "check",
        help="check FILE: a one-line summary, or every problem (exit 2)",
        description="Check FILE with the environment applied, as `rtbus serve` would load it.",
    )
    check_parser.add_argument("file", metavar="FILE")
    check_parser.set_defaults(run=check)


def check(args: argparse.Namespace) -> int:
    """Print the summary and return 0, or print every problem to stderr and return 2."""
    try:
        settings = load_settings(args.file)
    except SettingsError as exc:
        count = len(exc.problems)
        lines = [f"{args.file}: {count} problem{'s' if count > 1 else ''}"]
        lines += [f"  {problem}" for problem in exc.problems]
        print("\n".join(lines), file=sys.stderr)
        return _BAD_CONFIG
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return _BAD_CONFIG
    print(f"{args.file}: ok: {summary(settings)}")
    return 0


def summary(settings: Settings) -> str:
    """One line on what the settings run (never a secret)."""
    http = settings.http
    sessions = ", ".join(s.id for s in settings.sessions) or "none"
    auth = "a token" if http.token else "no token"
    return (
        f"upstream {_upstream(settings)}; http {http.host}:{http.port} with {auth}; "
        f"sessions {sessions}; demo sessions {settings.demo_sessions}; "
        f"log {settings.log.format} at {settings.log.level}; {_beyond(settings)}"
    )


def _beyond(settings: Settings) -> str:
    redis = settings.bus.redis
    if redis is None:
        return "no redis"
    placement = settings.placement
    placed = f"node {placement.node} places sessions" if placement else "no placement"
    return f"redis {_without_credentials(redis.url)}; {placed}"


def _upstream(settings: Settings) -> str:
    where = getattr(settings.upstream, "base_url", None) or getattr(
        settings.upstream, "endpoint", None
    )
    if not where:
        return settings.upstream_kind
    return f"{settings.upstream_kind} ({_without_credentials(where)})"


def _without_credentials(url: str) -> str:
    # A URL may carry credentials (user:password@host): the summary never shows them.
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
