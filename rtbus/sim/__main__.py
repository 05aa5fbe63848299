"""``python -m rtbus.sim``: run a simulated Realtime server alone.

Prints the server's base URL (``http://HOST:PORT/v1``) on one line once it listens, serves
until Ctrl-C or SIGTERM, then closes every connection with 1001 and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import trio

from rtbus.protocol import ConfigError

from ._faults import Fault
from ._options import SimOptions
from ._server import SimServer, serve_sim

__all__ = ["add_arguments", "main", "run"]


def _speed(text: str) -> float | None:
    if text == "unpaced":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number or 'unpaced'") from None


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rtbus.sim", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options, for this module's parser and for ``rtbus sim``."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--speed", type=_speed, default=1.0, help="audio pacing: 1 is real time, or 'unpaced'"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("RTBUS_SIM_API_KEY"),
        help="require this key at the handshake (default: $RTBUS_SIM_API_KEY, else none)",
    )
    parser.add_argument("--audio-seconds", type=float, default=2.0, help="audio per response")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault", type=_fault, action="append", default=[], help="fault spec")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--max-session-seconds", type=float, default=None)
    parser.add_argument(
        "--webhook-url",
        default=None,
        help="place calls: post signed realtime.call.incoming webhooks here "
        "(signed with $OPENAI_WEBHOOK_SECRET, which is then required)",
    )
    parser.add_argument(
        "--call-rate", type=float, default=0.0, help="calls a second to place (0: none)"
    )


def _options(args: argparse.Namespace) -> SimOptions:
    return SimOptions(
        api_key=args.api_key,
        speed=args.speed,
        response_audio_seconds=args.audio_seconds,
        seed=args.seed,
        faults=args.fault,
        fault_rate=args.fault_rate,
        max_session_seconds=args.max_session_seconds,
        webhook_url=args.webhook_url,
        # Never from argv (it would show in ps): the receiver and the simulator share it.
        webhook_secret=_webhook_secret(args.webhook_url),
        call_rate=args.call_rate,
    )


def _webhook_secret(webhook_url: str | None) -> str | None:
    secret = os.environ.get("OPENAI_WEBHOOK_SECRET") or None
    if webhook_url is not None and secret is None:
        raise ConfigError("webhook_secret", "--webhook-url needs $OPENAI_WEBHOOK_SECRET set")
    return secret


async def _run(host: str, port: int, options: SimOptions) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: SimServer = await nursery.start(serve_sim, host, port, options)
            print(server.url, flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until a signal, return the exit status."""
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serve with the options ``add_arguments`` parsed until a signal; the exit status."""
    try:
        options = _options(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trio.run(_run, args.host, args.port, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
