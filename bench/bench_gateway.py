"""The bus client over the gateway against the in-process bus: ``python -m bench.bench_gateway``.

One service (no sessions: events are published straight onto its bus, each with its upstream
frame as a session publishes them) served by the real HTTP surface on loopback, and one
``rtbus.connect`` client in the same trio run, so both sides share one core, as they would
share a small machine. For a text delta (~190 bytes) and a 100 ms audio delta (~6.6 KB):

* Throughput: 20,000 events published as fast as one ``block`` subscriber (maxsize 256) takes
  them: events/s, in process, through the client raw (the frame spliced, never decoded) and
  through the client decoded (``rtbus.protocol`` on the client).
* Latency: one event at a time (publish, wait until the subscriber has it): p50 and p99.

Ratios are against the in-process bus of the same run. ``where the time goes`` profiles the
raw throughput case and prints the top functions by own time (``--profile``).
"""

from __future__ import annotations

import base64
import cProfile
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import trio

from bench._table import Row, render
from rtbus import OpenAIConfig
from rtbus.gateway import RemoteBus, connect
from rtbus.protocol import decode_server_event
from rtbus.service import HttpAddress, HttpConfig, Service, open_service, serve_http

EVENTS = 20_000
PINGS = 2_000
MAXSIZE = 256
TOKEN = "bench-gateway-token"
# The in-process bus has no wire to cross; a tenth of its rate over a WebSocket is the mark.
TARGET_RATIO = 0.1

_HEAD = {"event_id": "event_7f3a", "response_id": "resp_1", "item_id": "item_1"}
FRAMES = {
    "text delta": orjson.dumps(
        {"type": "response.output_text.delta", **_HEAD, "output_index": 0, "content_index": 0}
        | {"delta": "Hello there, "}
    ),
    "audio delta": orjson.dumps(
        {"type": "response.output_audio.delta", **_HEAD, "output_index": 0, "content_index": 0}
        | {"delta": base64.b64encode(bytes(4_800)).decode()}
    ),
}

Subscribe = Callable[..., Any]


async def _publisher(service: Service, session: str, raw: bytes) -> Callable[[], Awaitable[None]]:
    event = decode_server_event(raw)

    async def publish() -> None:
        now = trio.current_time()
        await service.bus.publish(session, event.type, event, received_at=now, raw=raw)

    return publish


async def _throughput(subscribe: Subscribe, publish: Callable[[], Awaitable[None]]) -> float:
    async with subscribe(maxsize=MAXSIZE, overflow="block") as sub:
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:

            async def consume() -> None:
                for _ in range(EVENTS):
                    await sub.receive()

            nursery.start_soon(consume)
            for _ in range(EVENTS):
                await publish()
        return EVENTS / (time.perf_counter() - started)


async def _latencies(subscribe: Subscribe, publish: Callable[[], Awaitable[None]]) -> list[float]:
    took = []
    async with subscribe(maxsize=MAXSIZE, overflow="block") as sub:
        for _ in range(PINGS):
            started = time.perf_counter()
            await publish()
            await sub.receive()
            took.append(time.perf_counter() - started)
    return sorted(took)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def _ways(service: Service, remote: RemoteBus, session: str) -> dict[str, Subscribe]:
    return {
        "in-process": lambda **kw: service.bus.subscribe(sessions=session, **kw),
        "client raw": lambda **kw: remote.subscribe(sessions=session, raw=True, **kw),
        "client decoded": lambda **kw: remote.subscribe(sessions=session, **kw),
    }


async def _frame_rows(service: Service, remote: RemoteBus, name: str, raw: bytes) -> list[Row]:
    rows: list[Row] = []
    base_rate = base_p99 = 0.0
    for way, subscribe in _ways(service, remote, f"bench-{name}").items():
        publish = await _publisher(service, f"bench-{name}", raw)
        rate = await _throughput(subscribe, publish)
        took = await _latencies(subscribe, publish)
        p50, p99 = _percentile(took, 0.5) * 1e3, _percentile(took, 0.99) * 1e3
        if way == "in-process":
            base_rate, base_p99 = rate, p99
            rows += [
                Row("gateway", f"{name}: {way}", rate, "events/s"),
                Row("gateway", f"{name}: {way} p50", p50, "ms"),
                Row("gateway", f"{name}: {way} p99", p99, "ms"),
            ]
            continue
        ratio = rate / base_rate
        verdict = "ok" if ratio >= TARGET_RATIO else "under target"
        rows += [
            Row(
                "gateway",
                f"{name}: {way}",
                rate,
                "events/s",
                f"x{ratio:.2f}",
                f">= x{TARGET_RATIO}",
                verdict,
            ),
            Row("gateway", f"{name}: {way} p50", p50, "ms"),
            Row("gateway", f"{name}: {way} p99", p99, "ms", f"x{p99 / base_p99:.0f}"),
        ]
    return rows


async def _served(measure: Callable[[Service, RemoteBus], Awaitable[Any]]) -> Any:
    upstream = OpenAIConfig(api_key="sk-bench", base_url="http://127.0.0.1:9")
    async with open_service(upstream) as service, trio.open_nursery() as nursery:
        config = HttpConfig(port=0, token=TOKEN)
        address: HttpAddress = await nursery.start(serve_http, service, config)
        async with connect(address.url, token=TOKEN) as remote:
            result = await measure(service, remote)
        nursery.cancel_scope.cancel()
    return result


async def _all_rows(service: Service, remote: RemoteBus) -> list[Row]:
    rows: list[Row] = []
    for name, raw in FRAMES.items():
        rows += await _frame_rows(service, remote, name, raw)
    return rows


def run() -> list[Row]:
    """Throughput and latency, in process and through the client; one row per measure."""
    rows: list[Row] = trio.run(_served, _all_rows)
    return rows


async def _raw_throughput(service: Service, remote: RemoteBus) -> float:
    subscribe = _ways(service, remote, "profiled")["client raw"]
    return await _throughput(subscribe, await _publisher(service, "profiled", FRAMES["text delta"]))


def profile() -> None:
    """Where the time goes on the raw path: the top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    trio.run(_served, _raw_throughput)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    """Print the gateway benchmark's table (``--profile``: a profile of the raw path)."""
    if "--profile" in sys.argv[1:]:
        profile()
        return
    print(render(run()))


if __name__ == "__main__":
    main()
