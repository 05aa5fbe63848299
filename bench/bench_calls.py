"""Calls: how fast a webhook becomes an accepted call, and what a call costs next to a session.

The simulator runs in a subprocess (its CPU is not ours) as a phone network placing
``RATE`` calls a second for ``ARRIVAL_SECONDS`` to the webhook of an rtbus service (the
switchboard, the HTTP surface) in this process. Each caller speaks ``CALLER_TURNS`` times,
``CALLER_PAUSE`` seconds apart, then hangs up; audio is paced at real time.

* **webhook to accepted**, p50 and p99: ``rtbus.call.accepted``'s ``accept_seconds``, from the
  webhook's arrival to the call accepted upstream and its call session attached (connected,
  config applied).
* **calls held**: the most call sessions this process held at once (every call placed is
  held until its caller hangs up, so this is bounded by the arrivals), whether any failed,
  and how many one core would hold at the measured CPU per call-second.
* **CPU per call-second**, against **CPU per session-second** of plain sessions on the same
  simulator holding a comparable turn (a ``response.create`` every ``CALLER_PAUSE`` seconds):
  this process's CPU time over the window divided by the sum over time of the calls (or
  sessions) held.

``python -m bench calls``.
"""

from __future__ import annotations

import functools
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from bench._table import Row, render
from rtbus import OpenAIConfig, ServiceConfig, open_service
from rtbus.protocol import CallAccepted, WebhookSecret
from rtbus.service import (
    WEBHOOK_PATH,
    CallsSettings,
    HttpConfig,
    Service,
    Switchboard,
    run_switchboard,
    serve_http,
)

KEY = "sk-bench-calls"
RATE = 100.0
ARRIVAL_SECONDS = 3.0
CALLER_TURNS = 2
CALLER_PAUSE = 3.0
AUDIO_SECONDS = 1.0
SAMPLE_EVERY = 0.1
TARGET_P99_MS = 250.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_phone(port: int, webhook_url: str, rate: float) -> None:
    """The simulator's entry point in its subprocess (the secret comes in the environment):
    it places ``rate`` calls a second for ``ARRIVAL_SECONDS``, then serves them out."""
    trio.run(_serve_phone, port, webhook_url, rate)


async def _serve_phone(port: int, webhook_url: str, rate: float) -> None:
    from rtbus.sim import SimOptions, SimServer, serve_sim

    options = SimOptions(
        api_key=KEY,
        speed=1.0,
        response_audio_seconds=AUDIO_SECONDS,
        webhook_url=webhook_url or None,
        webhook_secret=os.environ["OPENAI_WEBHOOK_SECRET"],
        caller_turns=CALLER_TURNS,
        caller_pause_seconds=CALLER_PAUSE,
    )
    async with trio.open_nursery() as nursery:
        server: SimServer = await nursery.start(serve_sim, "127.0.0.1", port, options)
        if rate:
            with trio.move_on_after(ARRIVAL_SECONDS):
                await server.phone().run(rate)


@contextmanager
def _simulator(port: int, webhook_url: str, secret: WebhookSecret, rate: float) -> Iterator[None]:
    code = (
        f"from bench.bench_calls import serve_phone; serve_phone({port}, {webhook_url!r}, {rate})"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "OPENAI_WEBHOOK_SECRET": secret.reveal(),
    }
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        yield
    finally:
        process.terminate()
        process.wait()


async def _until_listening(port: int) -> None:
    with trio.fail_after(20):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


class _Held:
    """Samples how many calls (or sessions) are held: the peak and the held-seconds."""

    def __init__(self) -> None:
        self.peak = 0
        self.seconds = 0.0

    async def sample(self, count: Callable[[], int], until: float) -> None:
        while trio.current_time() < until:
            held = count()
            self.peak = max(self.peak, held)
            self.seconds += held * SAMPLE_EVERY
            await trio.sleep(SAMPLE_EVERY)


async def _calls(secret: WebhookSecret) -> tuple[list[float], _Held, float, Switchboard]:
    sim_port, http_port = _free_port(), _free_port()
    upstream = OpenAIConfig(api_key=KEY, base_url=f"http://127.0.0.1:{sim_port}/v1")
    settings = CallsSettings(max_pending=1024, max_calls=10_000)
    webhook = f"http://127.0.0.1:{http_port}{WEBHOOK_PATH}"
    accepted: list[float] = []
    held = _Held()
    async with open_service(ServiceConfig(upstream=upstream)) as service, trio.open_nursery() as n:
        await n.start(serve_http, service, HttpConfig(port=http_port))
        start = functools.partial(run_switchboard, service, settings, secret=secret)
        board: Switchboard = await n.start(start)
        async with service.bus.subscribe(sessions="calls", types="rtbus.call.accepted") as sub:
            with _simulator(sim_port, webhook, secret, RATE):
                cpu = time.process_time()
                window = trio.current_time() + ARRIVAL_SECONDS + CALLER_PAUSE * 2
                n.start_soon(held.sample, lambda: board.statistics().active, window)
                with trio.move_on_at(window):
                    async for envelope in sub:
                        assert isinstance(envelope.event, CallAccepted)
                        accepted.append(envelope.event.accept_seconds)
                cpu = time.process_time() - cpu
                n.cancel_scope.cancel()
    return accepted, held, cpu, board


async def _keep_talking(service: Service, id: str) -> None:
    session = await service.open_session(id=id)
    while True:
        await session.send({"type": "response.create"})
        await trio.sleep(CALLER_PAUSE)


async def _sessions(count: int, secret: WebhookSecret) -> tuple[_Held, float]:
    sim_port = _free_port()
    upstream = OpenAIConfig(api_key=KEY, base_url=f"http://127.0.0.1:{sim_port}/v1")
    held = _Held()
    with _simulator(sim_port, "", secret, 0.0):
        await _until_listening(sim_port)
        config = ServiceConfig(upstream=upstream)
        async with open_service(config) as service, trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(_keep_talking, service, f"s{i}")
                await trio.sleep(1.0 / RATE)  # opened at the calls' rate
            cpu = time.process_time()
            until = trio.current_time() + 2 * CALLER_PAUSE
            await held.sample(lambda: len(service.sessions), until)
            cpu = time.process_time() - cpu
            nursery.cancel_scope.cancel()
    return held, cpu


def _ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def _measure() -> list[Row]:
    secret = WebhookSecret.generate()
    accepted, calls, calls_cpu, board = await _calls(secret)
    stats = board.statistics()
    verified = stats.verifications["verified"]
    p99 = _ms(accepted, 99)
    verdict = "ok" if p99 <= TARGET_P99_MS else "MISS"
    failed = stats.outcomes["failed"]
    sessions, sessions_cpu = await _sessions(calls.peak, secret)
    per_call = calls_cpu / calls.seconds * 1e6
    per_session = sessions_cpu / sessions.seconds * 1e6
    bench = "calls"
    return [
        Row(bench, f"{RATE:g} calls/s: webhook to accepted p50", _ms(accepted, 50), "ms"),
        Row(bench, f"{RATE:g} calls/s: webhook to accepted p99", p99, "ms",
            f"{len(accepted)} of {verified} webhooks", f"<= {TARGET_P99_MS:g}", verdict),
        Row(bench, "calls held at once (peak)", calls.peak, "calls",
            f"{failed} failed", "0 failed", "ok" if not failed else "MISS"),
        Row(bench, "CPU per call-second", per_call, "us", f"{calls.seconds:,.0f} call-s"),
        Row(bench, "CPU per session-second", per_session, "us",
            f"calls {per_call / per_session:.2f}x a session"),
        Row(bench, "calls one core holds (CPU bound)", 1e6 / per_call, "calls"),
    ]  # fmt: skip


def run() -> list[Row]:
    return trio.run(_measure)


if __name__ == "__main__":
    print(render(run()))
    sys.exit(0)
