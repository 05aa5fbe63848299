"""Through Redis against in process: ``python -m bench.bench_redis`` prints a table.

One run, one machine, the same events (100 ms PCM16 audio deltas at 24 kHz, ~6.4 KB of JSON
each, raw bytes as the session actor publishes them):

* In process: ``Bus.publish`` -> a ``block`` subscription -> the reader.
* Through Redis: ``Bus.publish`` -> the bridge (pipelined ``XADD``) -> a real redis-server
  (started here on a free port, no persistence) -> one consumer of a group
  (``XREADGROUP``, decode, handler, ``XACK``).

Each path is measured two ways: throughput (a burst of ``BURST`` events, published as fast
as the bus takes them, until the last is handled) and latency (``PACED`` events at
``PACED_RATE``/s, from ``publish`` to the handler, p50 and p99). Then where the time goes on
the Redis path, stage by stage: the bridge alone (publish until Redis has them all), a
consumer alone over entries already written (raw, and decoding each event), and the cost
of the per-entry acknowledgement. Without ``redis-server`` on PATH the Redis rows say so.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import attrs
import orjson
import trio

from bench._table import Row, render
from rtbus._backoff import Backoff
from rtbus.bus import Bus, Envelope
from rtbus.protocol import decode_server_event
from rtbus.redis import RedisBridge, RedisConfig, RedisEnvelope, subscribe

BURST = 20_000
PACED = 2_000
PACED_RATE = 2_000.0  # events/s: 20 sessions of real-time audio at 10 deltas/s each is 200
SESSIONS = 20
AUDIO = "response.output_audio.delta"


def _frame(n: int) -> bytes:
    return orjson.dumps(
        {
            "type": AUDIO,
            "event_id": f"event_{n}",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(bytes(4_800)).decode(),  # 100 ms of 24 kHz PCM16
        }
    )


FRAMES = [_frame(n) for n in range(64)]
EVENTS = [decode_server_event(frame) for frame in FRAMES]


@attrs.define
class Timing:
    """Publish times by (session, seq), latencies, and when the last event was handled."""

    expected: int
    published: dict[tuple[str, int], tuple[float, float]] = attrs.field(factory=dict)
    latencies: list[float] = attrs.field(factory=list)
    # Through Redis, split at the bridge's stamp (wall clock): waiting for the bridge to take
    # the event, and from there through XADD, Redis and the consumer to the handler.
    to_bridge: list[float] = attrs.field(factory=list)
    from_bridge: list[float] = attrs.field(factory=list)
    done: trio.Event = attrs.field(factory=trio.Event)

    def handled(self, envelope: Envelope) -> None:
        at, wall = self.published[envelope.session_id, envelope.seq]
        self.latencies.append(trio.current_time() - at)
        if isinstance(envelope, RedisEnvelope):
            self.to_bridge.append(envelope.published_at - wall)
            self.from_bridge.append(time.time() - envelope.published_at)
        if len(self.latencies) >= self.expected:
            self.done.set()

    def percentile(self, fraction: float) -> float:
        return _percentile(self.latencies, fraction)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def _publish(bus: Bus, timing: Timing, count: int, rate: float | None) -> None:
    start = trio.current_time()
    for n in range(count):
        if rate is not None:
            await trio.sleep_until(start + n / rate)
        session, seq = f"session-{n % SESSIONS}", n // SESSIONS + 1
        # Stamped before publishing: a reader may take it before publish returns.
        now = trio.current_time()
        timing.published[session, seq] = (now, time.time())
        await bus.publish(session, AUDIO, EVENTS[n % 64], received_at=now, raw=FRAMES[n % 64])


async def in_process(count: int, rate: float | None) -> tuple[float, Timing]:
    """Events/s and timings through the bus alone."""
    timing = Timing(count)
    async with Bus() as bus, bus.subscribe(maxsize=BURST) as sub, trio.open_nursery() as nursery:

        async def read() -> None:
            async for envelope in sub:
                timing.handled(envelope)

        nursery.start_soon(read)
        start = time.perf_counter()
        await _publish(bus, timing, count, rate)
        await timing.done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed, timing


async def through_redis(
    config: RedisConfig, count: int, rate: float | None
) -> tuple[float, Timing]:
    """Events/s and timings from bus publish through Redis to one consumer of a group."""
    timing = Timing(count)
    bus = Bus()
    bridge = RedisBridge(bus, config, node="bench")
    async with (
        subscribe(config, group=f"bench-{rate}", start="$") as sub,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(bridge.run)
        nursery.start_soon(sub.run, timing.handled)
        start = time.perf_counter()
        await _publish(bus, timing, count, rate)
        await timing.done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    await bridge.aclose()
    return count / elapsed, timing


async def bridge_alone(config: RedisConfig, count: int) -> float:
    """Events/s from publish until Redis holds them all (no consumer)."""
    bus = Bus()
    bridge = RedisBridge(bus, config, node="bench")
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        start = time.perf_counter()
        await _publish(bus, Timing(count), count, None)
        await bus.aclose()  # the bridge writes what it holds, then returns
    elapsed = time.perf_counter() - start
    await bridge.aclose()
    assert sum(bridge.statistics().published.values()) == count
    return count / elapsed


async def consumer_alone(config: RedisConfig, group: str, count: int, raw: bool) -> float:
    """Events/s of one consumer over ``count`` entries already in Redis."""
    handled = 0
    finished = trio.Event()

    def handle(envelope: RedisEnvelope) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            finished.set()

    async with subscribe(config, group=group, raw=raw) as sub, trio.open_nursery() as nursery:
        start = time.perf_counter()
        nursery.start_soon(sub.run, handle)
        await finished.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed


async def ack_round_trip(config: RedisConfig, count: int) -> float:
    """Microseconds of one ``XACK`` round trip, as each delivery pays it."""
    async with subscribe(config, group="bench-ack") as sub:
        link = sub._link
        assert link is not None
        start = time.perf_counter()
        for _ in range(count):
            await link.call(
                "xack", lambda client: client.xack("{rtbus}:events:audio", "bench-ack", ["0-1"])
            )
        return (time.perf_counter() - start) / count * 1e6


async def _measure(config: RedisConfig) -> list[Row]:
    local_rate, _ = await in_process(BURST, None)
    remote_rate, _ = await through_redis(config, BURST, None)
    _, local = await in_process(PACED, PACED_RATE)
    _, remote = await through_redis(config, PACED, PACED_RATE)
    ratio = f"{local_rate / remote_rate:.1f}x slower"
    rows = [
        Row("redis", "in process: events/s (burst)", local_rate, "events/s"),
        Row("redis", "through redis: events/s (burst)", remote_rate, "events/s", ratio),
    ]
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        near, far = local.percentile(fraction), remote.percentile(fraction)
        rows.append(Row("redis", f"in process: {name} at {PACED_RATE:,.0f}/s", near, "ms"))
        rows.append(
            Row("redis", f"through redis: {name} at {PACED_RATE:,.0f}/s", far, "ms",
                f"+{far - near:.2f} ms")
        )  # fmt: skip
    for name, values in (
        ("wait for the bridge", remote.to_bridge),
        ("bridge -> XADD -> consumer -> handler", remote.from_bridge),
    ):
        rows.append(Row("redis", f"where: p50 {name}", _percentile(values, 0.5), "ms"))
    return rows + await _stages(config)


async def _stages(config: RedisConfig) -> list[Row]:
    # Groups made before the bridge writes, from the start of the stream: they see it all.
    for group in ("bench-raw", "bench-decode"):
        async with subscribe(config, group=group, start="$"):
            pass
    bridge_rate = await bridge_alone(config, BURST)
    raw_rate = await consumer_alone(config, "bench-raw", BURST, raw=True)
    decode_rate = await consumer_alone(config, "bench-decode", BURST, raw=False)
    ack_us = await ack_round_trip(config, 2_000)
    return [
        Row("redis", "where: bridge alone (publish -> XADD)", bridge_rate, "events/s"),
        Row("redis", "where: consumer alone, raw (XREADGROUP+XACK)", raw_rate, "events/s"),
        Row("redis", "where: consumer alone, decoding events", decode_rate, "events/s"),
        Row("redis", "where: one XACK round trip (per delivery)", ack_us, "us"),
    ]


@contextlib.contextmanager
def _redis_server() -> Iterator[str | None]:
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
            yield f"redis://127.0.0.1:{port}/0"
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
    """The table's rows: in process against through Redis, then the stages."""
    with _redis_server() as url:
        if url is None:
            return [Row("redis", "redis-server not on PATH: skipped", 0.0, "")]
        config = RedisConfig(
            url=url,
            buffer_size=BURST,
            overflow="block",  # a benchmark measures throughput, not drops
            maxlen=10 * BURST,
            backoff=Backoff(base=0.01, max_delay=0.1),
        )
        return trio.run(_measure, config)


def main() -> None:
    print(render(run()))


if __name__ == "__main__":
    main()
