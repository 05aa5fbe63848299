"""Failures of whole processes: Redis stopped and restarted under load, a worker process killed."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import attrs
import trio
from prometheus_client import CollectorRegistry, generate_latest
from support.polling import eventually
from support.redis_load import KEYS, TEXT, Load, in_redis, publish
from support.redis_server import RedisServer

from rtbus.bus import Bus
from rtbus.redis import RedisBridge, RedisConfig, RedisEnvelope, run_bridge, subscribe


async def test_redis_stopped_and_restarted_under_load_loses_nothing_uncounted(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    config = attrs.evolve(redis_config, buffer_size=300, batch_size=50)
    registry = CollectorRegistry()
    bus = Bus()
    bridge: RedisBridge = await nursery.start(
        partial(run_bridge, bus, config, node="n", registry=registry)
    )
    handled: set[tuple[str, int]] = set()

    def handle(envelope: RedisEnvelope) -> None:
        handled.add((envelope.session_id, envelope.seq))

    def scraped() -> str:
        return generate_latest(registry).decode()

    load = Load(bus)
    async with subscribe(config, group="g") as sub, trio.open_nursery() as inner:
        inner.start_soon(sub.run, handle)
        inner.start_soon(load.run)
        await load.more(500)

        redis_server.stop()
        await eventually(lambda: bridge.readiness_problem() is not None)
        assert "unreachable" in (bridge.readiness_problem() or "")
        assert "rtbus_redis_up 0.0" in scraped()
        await load.more(1500)  # the service keeps publishing: nothing waits on Redis
        assert bridge.statistics().dropped["drop_oldest"] > 0
        assert bridge.statistics().buffered <= 300 + 50

        redis_server.start()
        await eventually(lambda: bridge.readiness_problem() is None)
        await load.more(500)
        load.running = False
        await eventually(lambda: bridge.statistics().buffered == 0)
        stored = set(await in_redis(redis_server))
        await eventually(lambda: handled >= stored)
        inner.cancel_scope.cancel()

    stats = bridge.statistics()
    dropped = stats.dropped["drop_oldest"]
    # Every event is in Redis or counted as dropped; a batch cut short by the outage may have
    # been written twice, which the set absorbs (at-least-once, never at-most-once).
    assert stored <= load.published
    assert len(stored) + dropped == len(load.published)
    assert sum(stats.published.values()) >= len(stored)
    assert stats.lost == {}  # an fsync'd append-only file: a clean restart loses nothing
    assert bridge.metrics.errors["xadd"] >= 1
    dropped_line = f'rtbus_redis_publish_dropped_total{{policy="drop_oldest"}} {float(dropped)}'
    assert dropped_line in scraped()
    assert "rtbus_redis_up 1.0" in scraped()
    async with redis_server.client() as redis:
        for key in KEYS:
            summary = await redis.xpending(key, "g")
            assert summary.pending == 0  # type: ignore[union-attr]


WORKER = """
import sys, trio
from rtbus.redis import RedisConfig, subscribe

async def main():
    config = RedisConfig(url=sys.argv[1])
    async with subscribe(config, group="g", consumer="process") as sub:
        async with sub.delivery() as envelope:
            print("holding", envelope.seq, flush=True)
            await trio.sleep_forever()

trio.run(main)
"""


async def test_a_worker_process_killed_mid_handler_has_its_entry_handled_by_another(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    await publish(bus, "s", TEXT, 0)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", WORKER, redis_config.url], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(30):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(64)
                assert chunk, "the worker exited before it held the entry"
                line += chunk
        assert line == b"holding 1\n"
    finally:
        process.kill()
        await process.wait()
    async with subscribe(redis_config, group="g", consumer="survivor") as sub:
        with trio.fail_after(10):
            async with sub.delivery() as envelope:
                assert (envelope.seq, envelope.deliveries) == (1, 2)
    async with redis_server.client() as redis:
        summary = await redis.xpending(KEYS[1], "g")
        assert summary.pending == 0  # type: ignore[union-attr]
