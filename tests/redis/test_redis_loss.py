"""Redis losing what it acknowledged: every entry lost is counted, on both sides.

A real redis-server without persistence is SIGKILLed and started again, empty, on the same
port while the bridge publishes and a consumer reads; groups are deleted and entries removed
under running consumers. Each test asserts the books balance exactly: what was published is
what was delivered (or is still in Redis) plus what was counted lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import attrs
import coredis
import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest
from support.polling import eventually
from support.redis_fixtures import FAST
from support.redis_load import KEYS, TEXT, Load, in_redis, publish
from support.redis_server import RedisServer

from rtbus.bus import Bus
from rtbus.redis import (
    LostEntries,
    RedisBridge,
    RedisConfig,
    RedisEnvelope,
    RedisMetrics,
    run_bridge,
    subscribe,
)

EVENTS_KEY = KEYS[1]


@pytest.fixture
def volatile_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that keeps nothing on disk: a restart comes back empty."""
    with RedisServer.running(tmp_path, persistent=False) as server:
        yield server


@pytest.fixture
def volatile_config(volatile_server: RedisServer) -> RedisConfig:
    return RedisConfig(url=volatile_server.url, **FAST)  # type: ignore[arg-type]


def restart_empty(server: RedisServer) -> None:
    server.kill()  # SIGKILL: the crash
    server.start()


class Consumer:
    """One consumer's books: unique (session, seq) handled, and every loss reported."""

    def __init__(self, *, hold_after: int | None = None) -> None:
        self.handled: set[tuple[str, int]] = set()
        self.lost: list[LostEntries] = []
        # Stop handling after this many, until released: a backlog builds up in Redis.
        self.hold_after = hold_after
        self.released = trio.Event()

    async def handle(self, envelope: RedisEnvelope) -> None:
        if self.hold_after is not None and len(self.handled) >= self.hold_after:
            await self.released.wait()
        self.handled.add((envelope.session_id, envelope.seq))

    def on_lost(self, lost: LostEntries) -> None:
        self.lost.append(lost)

    def reported(self, reason: str) -> list[LostEntries]:
        return [lost for lost in self.lost if lost.reason == reason]

    def missed(self) -> int:
        return sum(lost.count or 0 for lost in self.reported("gap"))


async def own_entries(server: RedisServer) -> int:
    return sum((await in_redis(server)).values())


async def balanced(bridge: RedisBridge, server: RedisServer) -> bool:
    stats = bridge.statistics()
    published, lost = sum(stats.published.values()), sum(stats.lost.values())
    return published == await own_entries(server) + lost


async def test_a_restart_without_persistence_under_load_is_counted_to_the_entry(
    volatile_config: RedisConfig, volatile_server: RedisServer, nursery: trio.Nursery
) -> None:
    config = attrs.evolve(volatile_config, batch_size=50)
    # Two processes' registries: the service's (the bridge) and a worker's (the consumer).
    registry, worker_registry, metrics = CollectorRegistry(), CollectorRegistry(), RedisMetrics()
    worker_registry.register(metrics)
    bus = Bus()
    bridge: RedisBridge = await nursery.start(
        partial(run_bridge, bus, config, node="n", registry=registry)
    )
    books = Consumer(hold_after=200)
    load = Load(bus)
    async with (
        subscribe(config, group="g", on_lost=books.on_lost, metrics=metrics) as sub,
        trio.open_nursery() as inner,
    ):
        inner.start_soon(sub.run, books.handle)
        inner.start_soon(load.run)
        await load.more(1000)
        await eventually(lambda: len(books.handled) >= 200)  # then it holds: a backlog

        restart_empty(volatile_server)
        books.released.set()
        await load.more(1000)  # every session publishes again: its gap has an end
        load.running = False
        await eventually(lambda: bridge.statistics().buffered == 0)
        await eventually(lambda: sub.statistics().recreated > 0)
        await eventually(lambda: len(books.handled) + books.missed() >= len(load.published))
        await eventually(lambda: sum(bridge.statistics().lost.values()) > 0)
        await eventually(partial(balanced, bridge, volatile_server))  # checked at an interval
        inner.cancel_scope.cancel()

    stats = bridge.statistics()
    published, lost = sum(stats.published.values()), sum(stats.lost.values())
    dropped = sum(stats.dropped.values())
    in_redis_now = await own_entries(volatile_server)
    print(
        f"bus {len(load.published)}, bridge published {published}, in Redis {in_redis_now}, "
        f"bridge lost {lost}, dropped {dropped}; consumer delivered {len(books.handled)}, "
        f"missed {books.missed()}"
    )
    # The bridge: what Redis acknowledged is still there or counted lost, to the entry.
    assert lost > 0
    assert published == in_redis_now + lost
    assert stats.lost == {"audio": stats.lost.get("audio", 0), "events": stats.lost["events"]}
    # The consumer: every event published on the bus was handled or counted as missed.
    assert dropped == 0
    assert books.missed() > 0
    assert len(books.handled) + books.missed() == len(load.published)
    assert books.handled <= load.published
    assert sub.statistics().missed == books.missed()
    assert {lost.stream for lost in books.reported("group_missing")} <= {"audio", "events"}
    assert books.reported("group_missing")
    text = generate_latest(registry).decode()
    for stream, count in stats.lost.items():
        assert f'rtbus_redis_lost_total{{reason="restart",stream="{stream}"}} {count}.0' in text
    text = generate_latest(worker_registry).decode()
    missed_line = 'rtbus_redis_consumer_lost_total{group="g",reason="gap",stream="*"}'
    assert f"{missed_line} {float(books.missed())}" in text
    assert 'rtbus_redis_groups_recreated_total{group="g",stream="events"} 1.0' in text


async def test_dead_letters_redis_lost_are_counted(
    volatile_config: RedisConfig, volatile_server: RedisServer, nursery: trio.Nursery
) -> None:
    config = attrs.evolve(volatile_config, max_deliveries=1, reclaim_idle_seconds=0.2)
    bus = Bus()
    await nursery.start(partial(run_bridge, bus, config, node="n"))
    metrics, books = RedisMetrics(), Consumer()

    def refuse(envelope: RedisEnvelope) -> None:
        raise ValueError("poison")

    for n in range(2):
        await publish(bus, "s", TEXT, n)
    async with (
        subscribe(config, group="g", on_lost=books.on_lost, metrics=metrics) as sub,
        trio.open_nursery() as inner,
    ):
        inner.start_soon(sub.run, refuse)
        await eventually(lambda: sub.statistics().dead_lettered == 2)
        restart_empty(volatile_server)
        await publish(bus, "s", TEXT, 2)  # the consumer finds the group gone, and its letters
        await eventually(lambda: bool(books.reported("restart")))
        inner.cancel_scope.cancel()
    (lost,) = books.reported("restart")
    assert (lost.stream, lost.group, lost.count) == ("dead-letter", "g", 2)
    assert metrics.lost == {("dead-letter", "restart"): 2}


async def test_a_group_deleted_under_a_consumer_is_made_again_and_reported(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    metrics, books = RedisMetrics(), Consumer()
    await publish(bus, "s", TEXT, 0)
    async with (
        subscribe(redis_config, group="g", on_lost=books.on_lost, metrics=metrics) as sub,
        trio.open_nursery() as inner,
    ):
        inner.start_soon(sub.run, books.handle)
        await eventually(lambda: ("s", 1) in books.handled)
        async with redis_server.client() as redis:
            await redis.xgroup_destroy(EVENTS_KEY, "g")
        await publish(bus, "s", TEXT, 1)
        await eventually(lambda: ("s", 2) in books.handled)
        inner.cancel_scope.cancel()
    (lost,) = books.reported("group_missing")
    assert (lost.stream, lost.group, lost.count) == ("events", "g", None)
    assert sub.statistics().recreated == 1
    assert metrics.group_counts("events", "g").recreated == 1
    assert books.handled == {("s", 1), ("s", 2)}
    assert books.missed() == 0  # read again from the start: duplicates, not a gap


async def remove(server: RedisServer, session: str, seqs: set[int]) -> None:
    async with server.client() as redis:
        for entry in await redis.xrange(EVENTS_KEY):
            fields = entry.field_values
            if fields[b"session"] == session.encode() and int(fields[b"seq"]) in seqs:
                await redis.xdel(EVENTS_KEY, [entry.identifier])


async def test_a_gap_in_a_sessions_seq_is_reported_with_its_count(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    for n in range(20):
        await publish(bus, f"s{n % 2}", TEXT, n)  # s0 and s1: seq 1..10 each
    await eventually(lambda: sum(bridge.statistics().published.values()) == 20)
    await remove(redis_server, "s0", {4, 5, 6})
    await remove(redis_server, "s1", {9})
    metrics, books = RedisMetrics(), Consumer()
    async with (
        # A type filter leaves no gap: every entry is seen before it is filtered. (The glob
        # makes it read every stream, as gaps need; "response.done" alone reads one.)
        subscribe(
            redis_config, group="g", types=["response.done", "rtbus.*"], on_lost=books.on_lost,
            metrics=metrics,
        ) as sub,
        trio.open_nursery() as inner,
    ):  # fmt: skip
        inner.start_soon(sub.run, books.handle)
        await eventually(lambda: len(books.reported("gap")) == 2)
        inner.cancel_scope.cancel()
    gaps = {lost.session_id: lost for lost in books.reported("gap")}
    assert (gaps["s0"].count, gaps["s0"].first_seq, gaps["s0"].last_seq) == (3, 4, 6)
    assert (gaps["s1"].count, gaps["s1"].first_seq, gaps["s1"].last_seq) == (1, 9, 9)
    assert {lost.stream for lost in gaps.values()} == {"*"}
    assert sub.statistics().missed == 4
    assert metrics.group_counts("*", "g").missed == {"gap": 4}
    assert sub.statistics().skipped == 16


async def test_the_bridge_counts_a_stream_deleted_under_it(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    for n in range(5):
        await publish(bus, "s", TEXT, n)
    await eventually(lambda: bridge.statistics().published == {"events": 5})
    async with redis_server.client() as redis:
        await redis.delete([EVENTS_KEY])
    await eventually(lambda: bridge.statistics().lost == {"events": 5})
    assert bridge.metrics.lost == {("events", "deleted"): 5}


async def test_entries_trimmed_behind_newer_ones_are_not_counted_lost(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge = await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    for n in range(5):
        await publish(bus, "s", TEXT, n)
    await eventually(lambda: bridge.statistics().published == {"events": 5})
    async with redis_server.client() as redis:
        *_, newest = await redis.xrange(EVENTS_KEY)
        identifier = newest.identifier
        assert isinstance(identifier, bytes)
        ms, _, seq = identifier.partition(b"-")
        past = b"%s-%d" % (ms, int(seq) + 1)
        # Another service's write, trimming by MINID past everything this bridge wrote.
        fields = {b"session": b"x", b"seq": b"1", b"node": b"other"}
        await redis.xadd(
            EVENTS_KEY, fields, trim_strategy=coredis.PureToken.MINID, threshold=past.decode()
        )
        assert [entry.field_values[b"node"] for entry in await redis.xrange(EVENTS_KEY)] == [
            b"other"
        ]
    checks = bridge.statistics().checks
    await eventually(lambda: bridge.statistics().checks >= checks + 2)
    assert bridge.statistics().lost == {}


async def test_a_crash_with_an_fsynced_append_only_file_loses_nothing(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    # appendfsync always: Redis fsyncs each write before it answers, so SIGKILL takes none.
    config = attrs.evolve(redis_config, batch_size=20)
    bus = Bus()
    bridge: RedisBridge = await nursery.start(partial(run_bridge, bus, config, node="n"))
    load = Load(bus)
    async with trio.open_nursery() as inner:
        inner.start_soon(load.run)
        await load.more(300)
        checks = bridge.statistics().checks
        restart_empty(redis_server)  # "empty" only if it kept nothing: it kept everything
        await load.more(300)
        load.running = False
        await eventually(lambda: bridge.statistics().buffered == 0)
        await eventually(lambda: bridge.statistics().checks >= checks + 2)
    stats = bridge.statistics()
    assert stats.lost == {}
    stored = await in_redis(redis_server)
    assert set(stored) == load.published  # every event survived the crash
    # A batch cut short by the crash may be in Redis twice: written, then written again.
    assert sum(stats.published.values()) <= sum(stored.values())
