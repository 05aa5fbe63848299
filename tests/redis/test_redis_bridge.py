"""The publishing bridge against a real redis-server: layout, bytes, trimming, metrics, auth."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest
from support.polling import eventually
from support.redis_load import AUDIO, TEXT, frame, publish
from support.redis_server import RedisServer

from rtbus.actors import ActorFailed
from rtbus.bus import Bus
from rtbus.protocol import decode_server_event
from rtbus.redis import (
    RedisBridge,
    RedisCommandError,
    RedisConfig,
    TrimStrategy,
    open_link,
    run_bridge,
    subscribe,
)
from rtbus.session import SessionClosed

AUDIO_KEY, EVENTS_KEY = b"{rtbus}:events:audio", b"{rtbus}:events:events"


async def written(bridge: RedisBridge, count: int) -> None:
    await eventually(lambda: sum(bridge.statistics().published.values()) >= count)


async def test_events_land_in_their_family_streams_with_their_bytes(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, redis_config, node="node-a"))
    await publish(bus, "s1", AUDIO, 0)
    await publish(bus, "s1", TEXT, 1)
    await bus.publish("s1", "rtbus.session.closed", SessionClosed(reason="done"), received_at=0)
    await written(bridge, 3)
    async with redis_server.client() as redis:
        (audio,) = await redis.xrange(AUDIO_KEY)
        text, closed = await redis.xrange(EVENTS_KEY)
    assert audio.field_values[b"event"] == frame(AUDIO, 0)  # byte for byte
    assert audio.field_values[b"session"] == b"s1"
    assert (audio.field_values[b"seq"], text.field_values[b"seq"]) == (b"1", b"2")
    assert text.field_values[b"type"] == TEXT.encode()
    assert closed.field_values[b"node"] == b"node-a"
    assert float(closed.field_values[b"time"]) > 1.6e9  # wall-clock seconds
    assert decode_server_event(closed.field_values[b"event"]).type == "rtbus.session.closed"
    assert bridge.statistics().published == {"audio": 1, "events": 2}
    assert bridge.readiness_problem() is None


async def test_the_bus_closing_flushes_everything_then_the_bridge_returns(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    bus = Bus()
    bridge = RedisBridge(bus, redis_config, node="n")
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        for i in range(500):
            await publish(bus, f"s{i % 5}", AUDIO if i % 3 else TEXT, i)
        await bus.aclose()
    # run returned by itself: the nursery closed without a cancel.
    assert sum(bridge.statistics().published.values()) == 500
    async with redis_server.client() as redis:
        assert await redis.xlen(AUDIO_KEY) + await redis.xlen(EVENTS_KEY) == 500
    assert bridge.statistics().buffered == 0


@pytest.mark.parametrize("trim", [TrimStrategy.MAXLEN, TrimStrategy.MINID])
async def test_streams_stay_bounded(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery, trim: TrimStrategy
) -> None:
    async with redis_server.client() as redis:
        # Approximate trimming frees whole nodes: small nodes make it visible at this scale.
        await redis.config_set({"stream-node-max-entries": 10})
    config = attrs.evolve(redis_config, trim=trim, maxlen=50, retention_seconds=0.2, batch_size=20)
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, config, node="n"))
    for i in range(200):
        await publish(bus, "s", TEXT, i)
    await written(bridge, 200)
    if trim is TrimStrategy.MINID:
        await trio.sleep(0.3)  # let the first 200 age past the retention (real time: Redis ids)
        await publish(bus, "s", TEXT, 200)
        await written(bridge, 201)
    async with redis_server.client() as redis:
        length = await redis.xlen(EVENTS_KEY)
    assert 1 <= length <= 70


async def test_metrics_are_read_at_scrape_time(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    registry = CollectorRegistry()
    bus = Bus()
    bridge = await nursery.start(
        partial(run_bridge, bus, redis_config, node="n", registry=registry)
    )
    async with redis_server.client() as redis:
        await redis.xgroup_create(EVENTS_KEY, "workers", identifier="0", mkstream=True)
    for i in range(3):
        await publish(bus, "s", TEXT, i)
    await publish(bus, "s", AUDIO, 3)
    await written(bridge, 4)
    async with redis_server.client() as redis:
        await redis.xreadgroup("workers", "w1", {EVENTS_KEY: ">"}, count=2)

    def scraped() -> str:
        return generate_latest(registry).decode()

    backlog = 'rtbus_redis_pending{group="workers",stream="events"} 2.0'
    await eventually(lambda: backlog in scraped())
    text = scraped()
    for line in [
        "rtbus_redis_up 1.0",
        'rtbus_redis_published_total{stream="audio"} 1.0',
        'rtbus_redis_published_total{stream="events"} 3.0',
        'rtbus_redis_publish_dropped_total{policy="drop_oldest"} 0.0',
        "rtbus_redis_publish_buffered 0.0",
        'rtbus_redis_stream_length{stream="events"} 3.0',
        'rtbus_redis_stream_length{stream="dead-letter"} 0.0',
    ]:
        assert line in text
    assert 'rtbus_redis_oldest_pending_seconds{group="workers",stream="events"}' in text


async def test_a_wrong_password_fails_loudly_and_never_shows_it(tmp_path: Path) -> None:
    secret = "the-right-one-4321"
    with RedisServer.running(tmp_path, password=secret) as server:
        for wrong in ["a-wrong-one-9876", None]:
            config = RedisConfig(url=server.url, password=wrong, connect_timeout=1)
            bridge = RedisBridge(Bus(), config, node="n")
            with pytest.raises(RedisCommandError) as caught:
                await bridge.run()
            message = f"{caught.value} {caught.value!r} {caught.value.args}"
            assert "Authentication" in str(caught.value)
            assert secret not in message
            assert wrong is None or wrong not in message
            assert wrong is None or wrong not in repr(config)
            with pytest.raises(RedisCommandError) as refused:
                async with subscribe(config, group="g"):
                    pass
            assert secret not in str(refused.value)
            assert wrong is None or wrong not in str(refused.value)
        bus = Bus()
        config = RedisConfig(url=server.url, password=secret)
        async with trio.open_nursery() as nursery:
            bridge = await nursery.start(partial(run_bridge, bus, config, node="n"))
            await publish(bus, "s", TEXT, 0)
            await written(bridge, 1)
            assert secret not in repr(bridge) + repr(config) + str(bridge.statistics())
            nursery.cancel_scope.cancel()


async def test_closing_counts_what_never_reached_redis(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    redis_server.stop()
    bus = Bus()
    config = attrs.evolve(redis_config, buffer_size=5)
    bridge = RedisBridge(bus, config, node="n")
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        for i in range(8):
            await publish(bus, "s", TEXT, i)  # never waits: drop_oldest
        assert bridge.statistics().dropped["drop_oldest"] == 3
        assert "unreachable" in (bridge.readiness_problem() or "")
        nursery.cancel_scope.cancel()
    await bridge.aclose()
    stats = bridge.statistics()
    assert stats.dropped == {"drop_oldest": 3, "abandoned": 5}
    assert sum(stats.published.values()) == 0
    with pytest.raises(trio.ClosedResourceError):
        await bridge.run()


async def test_an_event_that_cannot_be_written_is_counted_and_skipped(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    not_an_event: Any = object()  # no raw, and not an event: nothing can write it
    await bus.publish("s", TEXT, not_an_event, received_at=0.0)
    await publish(bus, "s", TEXT, 1)
    await written(bridge, 1)
    assert bridge.statistics().unencodable == 1
    async with redis_server.client() as redis:
        assert await redis.xlen(EVENTS_KEY) == 1


async def test_a_supervision_failure_is_written_with_its_exception_named_not_shown(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    failed = ActorFailed("root/sessions", "s1", 1.0, exception=ValueError("sk-secret-in-here"))
    await bus.publish("root/sessions", failed.type, failed, received_at=0.0)
    await written(bridge, 1)
    async with redis_server.client() as redis:
        (entry,) = await redis.xrange(EVENTS_KEY)
    event = entry.field_values[b"event"]
    assert b"sk-secret" not in event
    assert orjson.loads(event)["exception"] == "ValueError"
    assert bridge.statistics().unencodable == 0


async def test_the_server_version_is_read_once_at_the_first_answer(
    redis_config: RedisConfig,
) -> None:
    async with open_link(redis_config) as link:
        assert link.statistics().server_version is None
        assert not link.has("xautoclaim_deleted_ids")  # unknown yet: assume nothing
        await link.wait_until_up()
        version = link.statistics().server_version
        assert version is not None
        assert tuple(int(p) for p in version.split(".")[:2]) >= (7, 0)  # Debian's 7.0 or newer
        assert link.has("xautoclaim_deleted_ids")
