"""What the subcommands share: argument types and how a command reports a usage error."""

from __future__ import annotations

import argparse
import sys
from typing import TypeAlias

from rtbus._unwrapping import leaves

__all__ = ["Subcommands", "first_message", "host_port", "usage_error"]

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
