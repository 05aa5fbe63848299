"""The bus client over the gateway against the in-process bus: ``python -m bench.bench_gateway``.

One service (no sessions: events are published straight onto its bus, each with its upstream
frame, as a session publishes them) serves the real HTTP surface on loopback. The gateway's
client runs where it runs in production: in another process (``--client``, started here), so
each side has its own interpreter and, on this 2-core machine, its own core. For a text delta
(~190 bytes) and a 100 ms audio delta (~6.6 KB):

* Throughput: ``EVENTS`` events published as fast as one ``block`` subscriber (maxsize 256)
  takes them, in process and through the client, raw (``raw=True``: the frame spliced, never
  decoded) and decoded (``rtbus.protocol`` on the client). Events/s from the first publish to
  the last receive, and CPU per event of each process (``time.process_time``: the machine is
  shared, so CPU time, not wall clock, is what to compare), with the kernel's part of it
  (moving the bytes through loopback TCP), which the in-process bus never pays. Beside the
  wall-clock rate, the rate that CPU allows (one event per the busier side's CPU per event,
  each process on its own core) against the in-process bus's (one per its CPU per event):
  the same ratio on a quiet machine, and one a busy host's stolen time does not move.
* Latency: ``PACED`` events at ``PACED_RATE``/s, from publish to the subscriber, p50 and p99.
  Each event carries its ``time.perf_counter_ns()`` stamp in its ``event_id``: that clock is
  the system's monotonic clock, the same in both processes (trio's clock is not).

Ratios are against the in-process bus of the same run. ``--profile`` prints where the
service's time goes on the raw path (cProfile, top functions by own time).
"""

from __future__ import annotations

import base64
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from bench._child import Lines, Stamped, stamp_of
from bench._table import Row, render
from rtbus import OpenAIConfig
from rtbus.bus import Envelope
from rtbus.gateway import connect
from rtbus.protocol import decode_server_event
from rtbus.service import HttpAddress, HttpConfig, Service, open_service, serve_http

EVENTS = 50_000
PACED = 5_000
PACED_RATE = 5_000.0
MAXSIZE = 256
TOKEN = "bench-gateway-token"
TARGET_RATIO = 0.7
TARGET_P99_MS = 1.0

PAYLOADS: dict[str, dict[str, object]] = {
    "text delta": {"type": "response.output_text.delta", "delta": "Hello there, "},
    "audio delta": {
        "type": "response.output_audio.delta",
        "delta": base64.b64encode(bytes(4_800)).decode(),  # 100 ms of 24 kHz PCM16
    },
}


@attrs.define
class Tally:
    """What a subscriber saw: how many, when the last came, the latencies (ns)."""

    count: int = 0
    last: float = 0.0
    latencies: list[int] = attrs.field(factory=list)

    def take(self, envelope: Envelope, stamped: bool) -> None:
        self.count += 1
        if stamped:
            self.latencies.append(time.perf_counter_ns() - stamp_of(envelope.raw or b""))
        self.last = time.perf_counter()


# -- the client process ------------------------------------------------------------------


async def _client(url: str, session: str, raw: bool, count: int, stamped: bool) -> None:
    """Subscribe, say ``ready``, take ``count`` envelopes, print what it saw and its CPU."""
    tally = Tally()
    async with (
        connect(url, token=TOKEN) as remote,
        remote.subscribe(sessions=session, raw=raw, maxsize=MAXSIZE, overflow="block") as sub,
    ):
        print("ready", flush=True)
        cpu, sys_cpu = time.process_time(), system_time()
        while tally.count < count:
            tally.take(await sub.receive(), stamped)
        cpu, sys_cpu = time.process_time() - cpu, system_time() - sys_cpu
    report = {"cpu": cpu, "sys": sys_cpu, "last": tally.last, "latencies": tally.latencies}
    print(json.dumps(report), flush=True)


def system_time() -> float:
    """CPU seconds this process spent in the kernel (its sockets' work among them)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def client_entry(argv: list[str]) -> None:
    url, session, mode, count, stamped = argv
    trio.run(_client, url, session, mode == "raw", int(count), stamped == "stamped")


# -- the service side ---------------------------------------------------------------------


@attrs.frozen
class Seen:
    """One way of one case, measured: from the first publish (``started``) to the last
    receive (``last``), both ``perf_counter``; the CPU seconds of each process meanwhile, and
    of that the kernel's (``*_sys``; in process, the subscriber's is counted in the
    service's); latencies in ns when stamped."""

    count: int
    started: float
    last: float
    service_cpu: float
    service_sys: float
    client_cpu: float
    client_sys: float
    latencies: list[int]

    @property
    def rate(self) -> float:
        return self.count / (self.last - self.started)

    def cpu_us(self, cpu: float) -> float:
        """``cpu`` seconds per event, in microseconds."""
        return cpu / self.count * 1e6

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


Publish = Callable[[], Awaitable[None]]
Way = Callable[[int, Publish, bool], Awaitable[Seen]]


async def _publishing(count: int, publish: Publish, paced: bool) -> None:
    start = trio.current_time()
    for n in range(count):
        if paced:
            await trio.sleep_until(start + n / PACED_RATE)
        await publish()


def _publisher(service: Service, session: str, stamped: Stamped, paced: bool) -> Publish:
    template = stamped.frame(0)
    event = decode_server_event(template)  # the bus carries it; the raw frame is what's sent

    async def publish() -> None:
        raw = stamped.frame(time.perf_counter_ns()) if paced else template
        now = trio.current_time()
        await service.bus.publish(session, event.type, event, received_at=now, raw=raw)

    return publish


def _in_process(service: Service, session: str) -> Way:
    async def way(count: int, publish: Publish, paced: bool) -> Seen:
        tally = Tally()
        async with (
            service.bus.subscribe(sessions=session, maxsize=MAXSIZE, overflow="block") as sub,
            trio.open_nursery() as nursery,
        ):

            async def consume() -> None:
                while tally.count < count:
                    tally.take(await sub.receive(), paced)

            nursery.start_soon(consume)
            started, cpu, sys_cpu = time.perf_counter(), time.process_time(), system_time()
            await _publishing(count, publish, paced)
        cpu, sys_cpu = time.process_time() - cpu, system_time() - sys_cpu
        return Seen(count, started, tally.last, cpu, sys_cpu, 0.0, 0.0, tally.latencies)

    return way


def _remote(url: str, session: str, raw: bool) -> Way:
    async def way(count: int, publish: Publish, paced: bool) -> Seen:
        mode, stamping = "raw" if raw else "decoded", "stamped" if paced else "fixed"
        command = [sys.executable, "-m", "bench.bench_gateway", "--client", url, session]
        command += [mode, str(count), stamping]
        client = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        try:
            assert client.stdout is not None
            lines = Lines(client.stdout)
            if await lines.next() != "ready":
                raise RuntimeError("the bench client did not subscribe")
            started, cpu, sys_cpu = time.perf_counter(), time.process_time(), system_time()
            await _publishing(count, publish, paced)
            report = json.loads(await lines.next())
            cpu, sys_cpu = time.process_time() - cpu, system_time() - sys_cpu
        finally:
            client.kill()
            await client.wait()
        theirs = report["cpu"], report["sys"]
        return Seen(count, started, report["last"], cpu, sys_cpu, *theirs, report["latencies"])

    return way


def _ways(service: Service, url: str, session: str) -> dict[str, Way]:
    return {
        "in-process": _in_process(service, session),
        "client raw": _remote(url, session, raw=True),
        "client decoded": _remote(url, session, raw=False),
    }


def _cpu_row(case: str, seen: Seen, remote: bool) -> Row:
    """CPU per event, both sides together; for a remote way, each side and its kernel's part."""
    sides = ""
    if remote:
        service, client = seen.cpu_us(seen.service_cpu), seen.cpu_us(seen.client_cpu)
        kernel = seen.cpu_us(seen.service_sys), seen.cpu_us(seen.client_sys)
        sides = f"service {service:.1f} (kernel {kernel[0]:.1f}) + "
        sides += f"client {client:.1f} (kernel {kernel[1]:.1f})"
    return Row("gateway", case, seen.cpu_us(seen.service_cpu + seen.client_cpu), "us", sides)


def _capacity_row(case: str, burst: Seen, base: Seen) -> Row:
    """The rate the burst's CPU per event allows with each process on its own core (the
    busier side sets it) against the in-process bus's: what the wall-clock rate gives on a
    quiet machine, and the same on a noisy one."""
    busier = max(burst.service_cpu, burst.client_cpu) / burst.count
    capacity, theirs = 1 / busier, base.count / base.service_cpu
    ratio = capacity / theirs
    verdict = "ok" if ratio >= TARGET_RATIO else "under target"
    return Row("gateway", f"{case}: rate its CPU allows", capacity, "events/s", f"x{ratio:.2f}",
               f">= x{TARGET_RATIO}", verdict)  # fmt: skip


def _rows(name: str, way: str, burst: Seen, paced: Seen, base: Seen | None) -> list[Row]:
    case, at = f"{name}: {way}", f"at {PACED_RATE:,.0f}/s"
    rate = Row("gateway", case, burst.rate, "events/s")
    p99 = Row("gateway", f"{case} p99 {at}", paced.percentile(0.99), "ms")
    if base is not None:
        ratio = burst.rate / base.rate
        verdict = "ok" if ratio >= TARGET_RATIO else "under target"
        rate = attrs.evolve(rate, ratio=f"x{ratio:.2f}", target=f">= x{TARGET_RATIO}",
                            verdict=verdict)  # fmt: skip
        verdict = "ok" if p99.value < TARGET_P99_MS else "over target"
        p99 = attrs.evolve(p99, target=f"< {TARGET_P99_MS:g}", verdict=verdict)
    return [
        rate,
        *([] if base is None else [_capacity_row(case, burst, base)]),
        _cpu_row(f"{case}: CPU per event (burst)", burst, base is not None),
        _cpu_row(f"{case}: CPU per event {at}", paced, base is not None),
        Row("gateway", f"{case} p50 {at}", paced.percentile(0.5), "ms"),
        p99,
    ]


async def _case(service: Service, url: str, name: str, stamped: Stamped) -> list[Row]:
    rows: list[Row] = []
    base: Seen | None = None
    session = f"bench-{name}"
    for way_name, way in _ways(service, url, session).items():
        burst = await way(EVENTS, _publisher(service, session, stamped, False), False)
        paced = await way(PACED, _publisher(service, session, stamped, True), True)
        rows += _rows(name, way_name, burst, paced, base)
        base = base or burst
    return rows


async def _served(measure: Callable[[Service, str], Awaitable[Any]]) -> Any:
    upstream = OpenAIConfig(api_key="sk-bench", base_url="http://127.0.0.1:9")
    async with open_service(upstream) as service, trio.open_nursery() as nursery:
        config = HttpConfig(port=0, token=TOKEN)
        address: HttpAddress = await nursery.start(serve_http, service, config)
        result = await measure(service, address.url)
        nursery.cancel_scope.cancel()
    return result


async def _all_rows(service: Service, url: str) -> list[Row]:
    rows: list[Row] = []
    for name, payload in PAYLOADS.items():
        rows += await _case(service, url, name, Stamped.of(payload))
    return rows


def run() -> list[Row]:
    """Throughput, CPU and latency, in process and through the client; one row per measure."""
    rows: list[Row] = trio.run(_served, _all_rows)
    return rows


async def _raw_burst(service: Service, url: str) -> Seen:
    stamped = Stamped.of(PAYLOADS["text delta"])
    way = _remote(url, "profiled", raw=True)
    return await way(EVENTS, _publisher(service, "profiled", stamped, False), False)


def profile() -> None:
    """Where the service's time goes on the raw path: the top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    trio.run(_served, _raw_burst)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    """Print the gateway benchmark's table (``--profile``: a profile of the service's side
    of the raw path; ``--client``: the client process the benchmark starts)."""
    if sys.argv[1:2] == ["--client"]:
        client_entry(sys.argv[2:])
    elif "--profile" in sys.argv[1:]:
        profile()
    else:
        print(render(run()))


if __name__ == "__main__":
    main()
