"""Through Redis against in process: ``python -m bench.bench_redis`` prints a table.

The events are 100 ms PCM16 audio deltas at 24 kHz, ~6.4 KB of JSON each, published raw as
the session actor publishes them. Redis is a real redis-server started here on a free port
(no persistence): the third process.

* **Across processes**, as deployed: the service side (``Bus.publish`` -> the bridge ->
  Redis) runs here; the consumer side (one consumer of a group: ``XREADGROUP``, decode, the
  handler, batched ``XACK``) runs in another process (``--consume``, started here), so on
  this 2-core machine each has its own interpreter. A burst of ``CROSS`` events, published
  as fast as the bus takes them: events/s from the first publish until the consumer handled
  the last, against the target (2x the event rate of 1,000 real-time sessions); the
  service side's own rate (until Redis had them all), and whether the consumer kept up
  with it; CPU per event of each process and of redis-server (``process_time`` and
  ``/proc``: the machine is shared and noisy, so CPU time is what to compare, not wall
  clock). Then latency from publish to handler, p50 and p99, paced at ``PACED_RATE`` and at
  the target rate: each event carries its ``time.perf_counter_ns()`` stamp in its
  ``event_id``, the system's monotonic clock, the same in both processes (trio's clock is
  not).
* **In one process**, for comparison: the bus alone (``Bus.publish`` -> a ``block``
  subscription) and the bridge and a consumer in the same trio run.
* **Where the time goes**, stage by stage: the bridge alone (publish until Redis has them
  all; entries per write), a consumer alone over entries already written (raw, and decoding
  each event), and one ``XACK`` round trip (what acknowledging each delivery would cost).

``--quick`` (``python -m bench bench_redis --quick``) runs smaller counts. Without
``redis-server`` on PATH the table says so.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import attrs
import trio

from bench._child import Lines, Stamped, stamp_of
from bench._table import Row, render
from rtbus._backoff import Backoff
from rtbus.bus import Bus, Envelope
from rtbus.protocol import decode_server_event
from rtbus.redis import RedisBridge, RedisConfig, RedisEnvelope, subscribe

AUDIO = "response.output_audio.delta"
SESSIONS = 20
TARGET_RATE = 26_600.0  # events/s: 2x the event rate of 1,000 real-time sessions (issue 13)
KEPT_UP = 0.95  # end to end at least this share of the service side's rate: the consumer kept up
PACED_RATE = 2_000.0


@attrs.frozen
class Counts:
    burst: int  # in process, and each stage
    cross: int  # across processes, the burst against the target
    paced: int  # at PACED_RATE
    at_target: int  # paced at TARGET_RATE


COUNTS = Counts(burst=20_000, cross=40_000, paced=2_000, at_target=26_600)
QUICK_COUNTS = Counts(burst=5_000, cross=10_000, paced=1_000, at_target=5_000)


def _counts() -> Counts:
    return QUICK_COUNTS if os.environ.get("RTBUS_BENCH_QUICK") else COUNTS


# -- events, stamped ----------------------------------------------------------------------

STAMPED = Stamped.of(
    {"type": AUDIO, "delta": base64.b64encode(bytes(4_800)).decode()}  # 100 ms of 24 kHz PCM16
)
TEMPLATE = STAMPED.frame(0)
EVENT = decode_server_event(TEMPLATE)  # the bus carries it; the raw frame is what is written


async def _publish(bus: Bus, count: int, rate: float | None) -> None:
    """``count`` audio deltas over ``SESSIONS`` sessions: as fast as the bus takes them, or
    paced at ``rate`` and stamped."""
    start = trio.current_time()
    for n in range(count):
        raw = TEMPLATE
        if rate is not None:
            due = start + n / rate
            if due > trio.current_time():
                await trio.sleep_until(due)
            raw = STAMPED.frame(time.perf_counter_ns())
        now = trio.current_time()
        await bus.publish(f"session-{n % SESSIONS}", AUDIO, EVENT, received_at=now, raw=raw)


# -- what a consumer saw ------------------------------------------------------------------


@attrs.define
class Tally:
    """What a consumer handled: how many, when the first and last were handled
    (``perf_counter``), and per stamped event its latency and the part after the bridge."""

    stamped: bool
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    latencies: list[int] = attrs.field(factory=list)  # ns, publish -> handler
    after_bridge: list[float] = attrs.field(factory=list)  # s, bridge's stamp -> handler

    def until(self, count: int) -> tuple[Callable[[RedisEnvelope], None], trio.Event]:
        """A handler that tallies, and the event it sets once ``count`` were handled."""
        done = trio.Event()

        def handle(envelope: RedisEnvelope) -> None:
            self.handle(envelope)
            if self.count >= count:
                done.set()

        return handle, done

    def handle(self, envelope: Envelope) -> None:
        self.last = time.perf_counter()
        if not self.count:
            self.first = self.last
        self.count += 1
        if self.stamped:
            self.latencies.append(time.perf_counter_ns() - stamp_of(envelope.raw or b""))
            if isinstance(envelope, RedisEnvelope):  # wall clock: the bridge's stamp is
                self.after_bridge.append(time.time() - envelope.published_at)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the consumer process -----------------------------------------------------------------


async def _consume(config: RedisConfig, group: str, count: int, stamped: bool) -> None:
    """Join ``group`` (from what comes next), say ``ready``, handle ``count`` envelopes
    (decoded, as a worker would), then print what it saw and the CPU it took meanwhile."""
    tally = Tally(stamped)
    handle, finished = tally.until(count)

    async with subscribe(config, group=group, start="$") as sub, trio.open_nursery() as nursery:
        print("ready", flush=True)
        cpu = time.process_time()
        nursery.start_soon(sub.run, handle)
        await finished.wait()
        cpu = time.process_time() - cpu
        nursery.cancel_scope.cancel()
    report = attrs.asdict(tally) | {"cpu": cpu}
    print(json.dumps(report), flush=True)


def consume_entry(argv: list[str]) -> None:
    """``--consume URL GROUP COUNT BATCH_SIZE stamped|fixed``: the consumer process."""
    url, group, count, batch_size, stamping = argv
    config = _config(url, int(batch_size))
    trio.run(_consume, config, group, int(count), stamping == "stamped")


# -- across processes ---------------------------------------------------------------------


@attrs.frozen
class Crossed:
    """One run across processes. Times are ``perf_counter``: ``started`` at the first
    publish, ``written`` when Redis had every entry, ``handled`` when the consumer handled
    the last. CPU seconds of each process meanwhile (redis-server's from ``/proc``)."""

    count: int
    started: float
    written: float
    consumer: Tally
    service_cpu: float
    consumer_cpu: float
    redis_cpu: float
    batches: int

    @property
    def rate(self) -> float:
        """End to end: from the first publish until the consumer handled the last."""
        return self.count / (self.consumer.last - self.started)

    @property
    def service_rate(self) -> float:
        """The service side: from the first publish until Redis had them all."""
        return self.count / (self.written - self.started)

    def us(self, cpu: float) -> float:
        return cpu / self.count * 1e6


async def across(
    config: RedisConfig, redis_pid: int, group: str, count: int, rate: float | None
) -> Crossed:
    """Publish ``count`` here (as fast as possible, or paced at ``rate`` and stamped) with a
    bridge, and have a consumer process handle them."""
    stamping = "fixed" if rate is None else "stamped"
    command = [sys.executable, "-m", "bench.bench_redis", "--consume", config.url, group]
    command += [str(count), str(config.batch_size), stamping]
    child = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, cwd=_ROOT)
    bus = Bus()
    bridge = RedisBridge(bus, config, node="bench")
    try:
        assert child.stdout is not None
        lines = Lines(child.stdout)
        if await lines.next() != "ready":
            raise RuntimeError("the bench consumer did not join its group")
        async with trio.open_nursery() as nursery:
            await nursery.start(bridge.run)
            started, cpu, redis = time.perf_counter(), time.process_time(), _cpu_of(redis_pid)
            await _publish(bus, count, rate)
            await bus.aclose()  # the bridge writes what it holds, then returns
        written, cpu = time.perf_counter(), time.process_time() - cpu
        report = json.loads(await lines.next())
        redis = _cpu_of(redis_pid) - redis
    finally:
        child.kill()
        await child.wait()
        await bridge.aclose()
    assert sum(bridge.statistics().published.values()) == count
    consumer_cpu = report.pop("cpu")
    tally = Tally(**report)
    batches = bridge.statistics().batches
    return Crossed(count, started, written, tally, cpu, consumer_cpu, redis, batches)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_ROOT = Path(__file__).resolve().parents[1]


# -- in one process -----------------------------------------------------------------------


async def in_process(count: int, rate: float | None) -> Tally:
    """Through the bus alone: ``Bus.publish`` -> a ``block`` subscription -> the reader."""
    tally = Tally(stamped=rate is not None)
    async with Bus() as bus, bus.subscribe(maxsize=count) as sub, trio.open_nursery() as nursery:

        async def read() -> None:
            async for envelope in sub:
                tally.handle(envelope)
                if tally.count >= count:
                    return

        nursery.start_soon(read)
        started = time.perf_counter()
        await _publish(bus, count, rate)
    tally.first = started  # a rate counts from the first publish
    return tally


async def same_process(config: RedisConfig, count: int) -> tuple[float, float]:
    """Events/s and CPU us per event from publish through Redis to a consumer of a group,
    bridge and consumer in this one trio run."""
    tally = Tally(stamped=False)
    handle, done = tally.until(count)

    bus = Bus()
    bridge = RedisBridge(bus, config, node="bench")
    async with (
        subscribe(config, group="bench-same", start="$") as sub,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(bridge.run)
        nursery.start_soon(sub.run, handle)
        started, cpu = time.perf_counter(), time.process_time()
        await _publish(bus, count, None)
        await done.wait()
        cpu = time.process_time() - cpu
        nursery.cancel_scope.cancel()
    await bridge.aclose()
    return count / (tally.last - started), cpu / count * 1e6


# -- stages -------------------------------------------------------------------------------


@attrs.frozen
class Stage:
    """One stage alone: events/s, CPU us per event of this process and of redis-server."""

    rate: float
    cpu_us: float
    redis_us: float
    per_write: float = 0.0


async def bridge_alone(config: RedisConfig, redis_pid: int, count: int) -> Stage:
    """From publish until Redis holds them all (no consumer)."""
    bus = Bus()
    bridge = RedisBridge(bus, config, node="bench")
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        start, cpu, redis = time.perf_counter(), time.process_time(), _cpu_of(redis_pid)
        await _publish(bus, count, None)
        await bus.aclose()  # the bridge writes what it holds, then returns
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    redis = _cpu_of(redis_pid) - redis
    await bridge.aclose()
    stats = bridge.statistics()
    assert sum(stats.published.values()) == count
    return Stage(count / elapsed, cpu / count * 1e6, redis / count * 1e6, count / stats.batches)


async def consumer_alone(
    config: RedisConfig, redis_pid: int, group: str, count: int, raw: bool
) -> Stage:
    """One consumer over ``count`` entries already in Redis."""
    tally = Tally(stamped=False)
    handle, finished = tally.until(count)

    async with subscribe(config, group=group, raw=raw) as sub, trio.open_nursery() as nursery:
        start, cpu, redis = time.perf_counter(), time.process_time(), _cpu_of(redis_pid)
        nursery.start_soon(sub.run, handle)
        await finished.wait()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        redis = _cpu_of(redis_pid) - redis
        nursery.cancel_scope.cancel()
    return Stage(count / elapsed, cpu / count * 1e6, redis / count * 1e6)


async def ack_round_trip(config: RedisConfig, count: int) -> float:
    """Microseconds of one ``XACK`` round trip, as acknowledging each delivery would pay."""
    async with subscribe(config, group="bench-ack") as sub:
        link = sub._link
        assert link is not None
        start = time.perf_counter()
        for _ in range(count):
            await link.call(
                "xack", lambda client: client.xack("{rtbus}:events:audio", "bench-ack", ["0-1"])
            )
        return (time.perf_counter() - start) / count * 1e6


# -- the table ----------------------------------------------------------------------------


def _row(case: str, value: float, unit: str, ratio: str = "", target: str = "") -> Row:
    return Row("redis", case, value, unit, ratio, target)


async def _measure(config: RedisConfig, redis_pid: int) -> list[Row]:
    counts = _counts()
    local = await in_process(counts.burst, None)
    local_rate = local.count / (local.last - local.first)
    same_rate, same_cpu = await same_process(config, counts.burst)
    burst = await across(config, redis_pid, "bench-burst", counts.cross, None)
    rows = [
        _row("in process: events/s (burst)", local_rate, "events/s"),
        _row("same process through redis: events/s (burst)", same_rate, "events/s",
             f"{same_cpu:.1f} us CPU/event"),
        *_target_rows(burst),
    ]  # fmt: skip
    rows += await _latency_rows(config, redis_pid, counts)
    return rows + await _stage_rows(config, redis_pid, counts.burst)


def _target_rows(burst: Crossed) -> list[Row]:
    target = f">= {TARGET_RATE:,.0f} events/s"
    kept = burst.rate / burst.service_rate
    service, consumer = burst.us(burst.service_cpu), burst.us(burst.consumer_cpu)
    return [
        Row("redis", "across processes: events/s end to end (burst)", burst.rate, "events/s",
            f"x{burst.rate / TARGET_RATE:.2f}", target,
            "ok" if burst.rate >= TARGET_RATE else "under target"),
        _row("across processes: service side events/s (publish -> redis)", burst.service_rate,
             "events/s", f"{burst.count / burst.batches:.0f} entries/write"),
        Row("redis", "across processes: consumer kept up (end to end / service side)", kept,
            "ratio", "", f">= {KEPT_UP}", "kept up" if kept >= KEPT_UP else "fell behind"),
        _row("across processes: CPU per event, service side (publish + bridge)", service, "us",
             f"{1e6 / service:,.0f} events/s per core"),
        _row("across processes: CPU per event, consumer side", consumer, "us",
             f"{1e6 / consumer:,.0f} events/s per core"),
        _row("across processes: CPU per event, redis-server", burst.us(burst.redis_cpu), "us"),
    ]  # fmt: skip


async def _latency_rows(config: RedisConfig, redis_pid: int, counts: Counts) -> list[Row]:
    local = await in_process(counts.paced, PACED_RATE)
    paced = await across(config, redis_pid, "bench-paced", counts.paced, PACED_RATE)
    steady = await across(config, redis_pid, "bench-steady", counts.at_target, TARGET_RATE)
    rows = []
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        near = _percentile([ns / 1e6 for ns in local.latencies], fraction)
        rows.append(_row(f"in process: {name} at {PACED_RATE:,.0f}/s", near, "ms"))
        for rate, run in ((PACED_RATE, paced), (TARGET_RATE, steady)):
            far = _percentile([ns / 1e6 for ns in run.consumer.latencies], fraction)
            rows.append(
                _row(
                    f"across processes: {name} at {rate:,.0f}/s", far, "ms", f"+{far - near:.2f} ms"
                )
            )
    after = _percentile(paced.consumer.after_bridge, 0.5) * 1000
    total = _percentile([ns / 1e6 for ns in paced.consumer.latencies], 0.5)
    held = steady.rate / TARGET_RATE
    rows += [
        Row("redis", f"at {TARGET_RATE:,.0f}/s paced: events/s end to end", steady.rate,
            "events/s", f"x{held:.2f}", f">= x{KEPT_UP}",
            "sustained" if held >= KEPT_UP else "fell behind"),
        _row(f"where: p50 at {PACED_RATE:,.0f}/s, publish -> the bridge takes it", total - after,
             "ms"),
        _row(f"where: p50 at {PACED_RATE:,.0f}/s, the bridge -> redis -> consumer -> handler",
             after, "ms"),
        _row(f"at {TARGET_RATE:,.0f}/s paced: CPU per event, service side",
             steady.us(steady.service_cpu), "us",
             f"{steady.count / steady.batches:.0f} entries/write"),
        _row(f"at {TARGET_RATE:,.0f}/s paced: CPU per event, consumer side",
             steady.us(steady.consumer_cpu), "us"),
        _row(f"at {TARGET_RATE:,.0f}/s paced: CPU per event, redis-server",
             steady.us(steady.redis_cpu), "us"),
    ]  # fmt: skip
    return rows


async def _stage_rows(config: RedisConfig, redis_pid: int, count: int) -> list[Row]:
    # Groups made before the bridge writes, from what comes next: they see it all.
    for group in ("bench-raw", "bench-decode"):
        async with subscribe(config, group=group, start="$"):
            pass
    bridge = await bridge_alone(config, redis_pid, count)
    raw = await consumer_alone(config, redis_pid, "bench-raw", count, raw=True)
    decoded = await consumer_alone(config, redis_pid, "bench-decode", count, raw=False)
    ack_us = await ack_round_trip(config, 2_000)

    def cpu(stage: Stage) -> str:
        return f"{stage.cpu_us:.1f} us CPU/event + redis {stage.redis_us:.1f}"

    return [
        _row("where: bridge alone (publish -> EVALSHA)", bridge.rate, "events/s", cpu(bridge)),
        _row("where: bridge alone, entries per write", bridge.per_write, "entries"),
        _row("where: consumer alone, raw (XREADGROUP+XACK)", raw.rate, "events/s", cpu(raw)),
        _row("where: consumer alone, decoding events", decoded.rate, "events/s", cpu(decoded)),
        _row("where: one XACK round trip (per delivery)", ack_us, "us"),
    ]


# -- redis-server -------------------------------------------------------------------------


def _config(url: str, batch_size: int = RedisConfig().batch_size) -> RedisConfig:
    return RedisConfig(
        url=url,
        buffer_size=COUNTS.cross,
        overflow="block",  # a benchmark measures throughput, not drops
        maxlen=2 * COUNTS.cross,
        batch_size=batch_size,
        backoff=Backoff(base=0.01, max_delay=0.1),
    )


@contextlib.contextmanager
def _redis_server() -> Iterator[tuple[str, int] | None]:
    """A redis-server on a free port, no persistence: its URL and pid (``None`` without one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                   "--save", "", "--appendonly", "no"]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            _wait_until_listening(port)
            yield f"redis://127.0.0.1:{port}/0", process.pid
        finally:
            process.kill()
            process.wait()


def _wait_until_listening(port: int, deadline: float = 10.0) -> None:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.01)
    raise TimeoutError(f"redis-server did not listen on {port}")


def run() -> list[Row]:
    """The table's rows: across processes against the target, in process, the stages."""
    with _redis_server() as server:
        if server is None:
            return [Row("redis", "redis-server not on PATH: skipped", 0.0, "")]
        url, pid = server
        measure: Callable[[RedisConfig, int], Awaitable[list[Row]]] = _measure
        return trio.run(measure, _config(url), pid)


def main() -> None:
    """Print the table (``--quick``: smaller counts; ``--consume``: the consumer process
    the benchmark starts)."""
    if sys.argv[1:2] == ["--consume"]:
        consume_entry(sys.argv[2:])
        return
    if "--quick" in sys.argv[1:]:
        os.environ["RTBUS_BENCH_QUICK"] = "1"
    print(render(run()))


if __name__ == "__main__":
    main()
