"""The ``rtbus`` command.

``rtbus serve`` runs the service on its embedded default: the simulated Realtime server as
upstream, in process, and a small demo workload (a few sessions holding voice turns with
synthetic user speech), printing one line per bus event; audio deltas are summarised by size.
SIGTERM or SIGINT drains it gracefully (sessions finish their response and close with 1000)
and it exits 0; a second signal stops it at once.

``rtbus sim`` runs the simulated Realtime server alone (``python -m rtbus.sim``).
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence

import trio

from . import sim
from .bus import Envelope
from .protocol import OpenAIConfig
from .service import Service, open_service
from .session import Session

__all__ = ["main"]

_DEMO_KEY = "sk-rtbus-demo"  # the embedded simulator's key; never a real one
_VOICE_TURN = {
    "instructions": "You are a friendly demo voice agent.",
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}},
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtbus", description="The rtbus command.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service on the embedded simulator")
    serve.add_argument("--sessions", type=int, default=3, help="demo sessions (default 3)")
    serve.add_argument(
        "--turn-seconds", type=float, default=5.0, help="seconds between a session's turns"
    )
    commands.add_parser("sim", help="run the simulated Realtime server alone", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtbus`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sim"]:
        from .sim.__main__ import main as sim_main

        return sim_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.sessions < 0 or args.turn_seconds <= 0:
        print("error: --sessions must be >= 0 and --turn-seconds > 0", file=sys.stderr)
        return 2
    trio.run(_serve, args.sessions, args.turn_seconds)
    return 0


async def _serve(sessions: int, turn_seconds: float) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as upstream_nursery:
            upstream: sim.SimServer = await upstream_nursery.start(
                sim.serve_sim, "127.0.0.1", 0, sim.SimOptions(api_key=_DEMO_KEY)
            )
            config = OpenAIConfig(api_key=_DEMO_KEY, base_url=upstream.url)
            async with trio.open_nursery() as service_nursery:
                service_nursery.start_soon(_run_service, config, sessions, turn_seconds)
                await signals.__anext__()
                print("rtbus: draining (a second signal stops at once)", file=sys.stderr)
                upstream_nursery.start_soon(_force_on_second_signal, signals)
                # The service's exit drains the tree while the upstream keeps serving.
                service_nursery.cancel_scope.cancel()
            upstream_nursery.cancel_scope.cancel()
    print("rtbus: drained", file=sys.stderr, flush=True)


async def _run_service(config: OpenAIConfig, sessions: int, turn_seconds: float) -> None:
    async with open_service(config) as service:
        await service.add_worker(_print_envelope, types="*")
        async with trio.open_nursery() as demo:
            for n in range(sessions):
                demo.start_soon(_demo_session, service, f"demo-{n + 1}", turn_seconds)


async def _demo_session(service: Service, id: str, turn_seconds: float) -> None:
    session = await service.open_session(id=id, session=_VOICE_TURN)
    while True:
        await _speak(session, seconds=1.0)
        await trio.sleep(turn_seconds)


async def _speak(session: Session, *, seconds: float) -> None:
    """A user turn: speech, then silence, in 100 ms appends; server VAD answers it."""
    speech = sim.speech_like_pcm16(seconds)
    silence = bytes(len(sim.speech_like_pcm16(0.5)))
    for audio in (speech, silence):
        for start in range(0, len(audio), 4800):
            chunk = base64.b64encode(audio[start : start + 4800]).decode()
            await session.send({"type": "input_audio_buffer.append", "audio": chunk})
            await trio.sleep(0.1)


def _print_envelope(envelope: Envelope) -> None:
    delta = getattr(envelope.event, "delta", None)
    detail = ""
    if isinstance(delta, str):
        audio = envelope.type.endswith("audio.delta")
        detail = f" {len(delta) * 3 // 4} bytes" if audio else f" {delta!r}"
    print(f"{envelope.session_id} #{envelope.seq} {envelope.type}{detail}", flush=True)


async def _force_on_second_signal(signals: AsyncIterator[int]) -> None:
    await signals.__anext__()
    print("rtbus: stopped without draining", file=sys.stderr, flush=True)
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
