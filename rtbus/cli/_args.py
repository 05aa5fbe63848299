"""What the subcommands share: argument types and how a command reports a usage error."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TypeAlias

from rtbus._unwrapping import leaves

__all__ = [
    "DEFAULT_URL",
    "Subcommands",
    "add_service_arguments",
    "first_message",
    "host_port",
    "plain",
    "usage_error",
]

DEFAULT_URL = "http://127.0.0.1:9464"

#: What ``ArgumentParser.add_subparsers`` returns; each command module adds itself to it.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6; port 0 picks a free one) -> ``(host, port)``."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 0..65535, got {text!r}")
    return host, int(port)


def usage_error(message: str) -> int:
    """Print ``message`` as the command's error and return the usage exit status, 2."""
    print(f"rtbus: error: {message}", file=sys.stderr, flush=True)
    return 2


def first_message(group: BaseExceptionGroup[BaseException]) -> str:
    """The message of the first exception in ``group``: what a command that stops on an
    ``except*`` says, one line rather than a group's summary."""
    return str(next(leaves(group)))


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``: which running service a command reads, as the examples
    find it (``$RTBUS_URL``, ``$RTBUS_HTTP_TOKEN``)."""
    default_url = os.environ.get("RTBUS_URL") or DEFAULT_URL
    parser.add_argument(
        "--url",
        default=default_url,
        help=f"the service, or its gateway's ws:// URL (default: $RTBUS_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("RTBUS_HTTP_TOKEN") or None,
        help="the service's bearer token (default: $RTBUS_HTTP_TOKEN, else none)",
    )


def plain(doc: str | None) -> str:
    """A module docstring as a command's description: without its ``rtbus X:`` title and
    without reST markup, which means nothing in a terminal."""
    text = re.sub(r"``([^`]*)``", r"\1", doc or "")
    text = re.sub(r"^rtbus [a-z ]+: ", "", text).strip()
    return text[:1].upper() + text[1:]
