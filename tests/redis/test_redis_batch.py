"""A batch written by one script call, against a real redis-server: every entry in order with
its id (and in the ledger), the script sent again when Redis no longer has it, a batch that
failed part-way written again whole."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import attrs
import coredis
import pytest
import trio
import trio.testing
from support.polling import eventually
from support.redis_fixtures import FAST
from support.redis_load import AUDIO, KEYS, TEXT, frame, in_redis, publish
from support.redis_server import RedisServer

from rtbus.bus import Bus, Envelope, Undecoded
from rtbus.redis import RedisBridge, RedisCommandError, RedisConfig, open_link, run_bridge
from rtbus.redis._batch import SCRIPT, BatchWriter, Entry
from rtbus.redis._layout import encode_entry, entry_values

AUDIO_KEY, EVENTS_KEY = KEYS
SHA = hashlib.sha1(SCRIPT).hexdigest()


async def commands_run(server: RedisServer) -> dict[str, tuple[int, int]]:
    """Calls and failed calls of EVALSHA, EVAL and XADD (from scripts too) since a reset."""
    async with server.client() as redis:
        stats = await redis.info("commandstats")
    calls = {}
    for name in ("evalsha", "eval", "xadd"):
        stat = stats.get(f"cmdstat_{name}")
        found = stat if isinstance(stat, dict) else {}
        calls[name] = (int(found.get("calls", 0)), int(found.get("failed_calls", 0)))
    return calls


async def reset_stats(server: RedisServer) -> None:
    async with server.client() as redis:
        await redis.config_resetstat()


def envelope(type: str, n: int) -> Envelope:
    return Envelope(f"s{n % 2}", n + 1, type, Undecoded(type), 0.0, frame(type, n))


def entries_of(envelopes: list[Envelope]) -> list[Entry]:
    return [
        (AUDIO_KEY if e.type == AUDIO else EVENTS_KEY, entry_values(e, b"n", 5.0))
        for e in envelopes
    ]


async def test_one_script_call_adds_every_entry_in_order_and_answers_their_ids(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    writer = BatchWriter(redis_config, KEYS)
    batch = [envelope(AUDIO if n % 3 else TEXT, n) for n in range(7)]
    entries = entries_of(batch)
    async with open_link(redis_config) as link:
        await link.wait_until_up()
        await reset_stats(redis_server)
        written = await link.call("xadd", partial(writer.write, entries))
    # A fresh server has no script: EVALSHA fails (NOSCRIPT), EVAL runs it.
    assert await commands_run(redis_server) == {"evalsha": (1, 1), "eval": (1, 0), "xadd": (7, 0)}
    assert [key for key, _ in written] == [key for key, _ in entries]
    async with redis_server.client() as redis:
        for key in KEYS:
            stored = await redis.xrange(key)
            assert [entry.identifier for entry in stored] == [i for k, i in written if k == key]
            sent = [e for e, (k, _) in zip(batch, entries, strict=True) if k == key]
            assert [dict(entry.field_values) for entry in stored] == [
                encode_entry(e, b"n", 5.0) for e in sent
            ]
        assert await redis.script_exists([SHA]) == (True,)


async def test_a_cached_script_is_called_by_its_sha_alone(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    writer = BatchWriter(redis_config, KEYS)
    async with open_link(redis_config) as link:
        await link.wait_until_up()
        await link.call("xadd", partial(writer.write, entries_of([envelope(TEXT, 0)])))
        await reset_stats(redis_server)
        await link.call("xadd", partial(writer.write, entries_of([envelope(TEXT, 1)] * 3)))
    assert await commands_run(redis_server) == {"evalsha": (1, 0), "eval": (0, 0), "xadd": (3, 0)}


async def test_the_bridge_writes_what_was_buffered_in_one_batch_into_its_ledger(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    bus = Bus()
    bridge = RedisBridge(bus, redis_config, node="n")
    published = [await publish(bus, f"s{n % 3}", AUDIO if n % 2 else TEXT, n) for n in range(40)]
    await reset_stats(redis_server)
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)  # the 40 are buffered already: one batch takes them
        await eventually(lambda: sum(bridge.statistics().published.values()) == 40)
        nursery.cancel_scope.cancel()
    await bridge.aclose()
    assert bridge.statistics().batches == 1
    assert bridge.statistics().published == {"audio": 20, "events": 20}
    assert (await commands_run(redis_server))["xadd"] == (40, 0)
    assert bridge._ledger.entries == 40
    async with redis_server.client() as redis:
        order = [
            (entry.field_values[b"session"], entry.field_values[b"seq"])
            for key in KEYS
            for entry in await redis.xrange(key)
        ]
    by_stream = sorted(published, key=lambda e: e.type != AUDIO)  # stable: publish order
    assert order == [(e.session_id.encode(), b"%d" % e.seq) for e in by_stream]


async def test_a_batch_that_failed_part_way_is_written_again_whole(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    async with redis_server.client() as redis:
        await redis.set(AUDIO_KEY, "not a stream")  # the batch's second entry fails
    bus = Bus()
    bridge = RedisBridge(bus, redis_config, node="n")
    for n, type in enumerate((TEXT, AUDIO, TEXT)):
        await publish(bus, "s", type, n)
    with pytest.raises(RedisCommandError, match="wrong kind of value"):
        await bridge.run()  # a command error ends run; the batch stays with the bridge
    assert bridge.statistics().buffered == 3
    assert bridge.statistics().published == {}
    async with redis_server.client() as redis:
        assert await redis.xlen(EVENTS_KEY) == 1  # the script had added the first entry
        await redis.delete([AUDIO_KEY])
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)  # as a supervisor restarts it
        await eventually(lambda: bridge.statistics().buffered == 0)
        nursery.cancel_scope.cancel()
    assert bridge.statistics().published == {"events": 2, "audio": 1}
    # The whole batch again: the first entry twice (at-least-once), nothing missing.
    assert await in_redis(redis_server) == {("s", 1): 2, ("s", 2): 1, ("s", 3): 1}


@pytest.fixture
def volatile_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path, persistent=False) as server:
        yield server


@pytest.mark.parametrize("how", ["restart", "script flush"])
async def test_the_script_is_sent_again_once_redis_no_longer_has_it(
    volatile_server: RedisServer, nursery: trio.Nursery, how: str
) -> None:
    config = RedisConfig(url=volatile_server.url, **FAST)  # type: ignore[arg-type]
    bus = Bus()
    bridge: RedisBridge = await nursery.start(partial(run_bridge, bus, config, node="n"))
    await publish(bus, "s", TEXT, 0)
    await eventually(lambda: bridge.statistics().published == {"events": 1})
    if how == "restart":
        volatile_server.kill()  # empty when it is back: no streams, no scripts
        volatile_server.start()
    else:
        async with volatile_server.client() as redis:
            await redis.script_flush()
    await reset_stats(volatile_server)
    await publish(bus, "s", TEXT, 1)
    await eventually(lambda: bridge.statistics().published == {"events": 2})
    # NOSCRIPT ran nothing: the EVAL that followed wrote the entry, once.
    assert await commands_run(volatile_server) == {
        "evalsha": (1, 1),
        "eval": (1, 0),
        "xadd": (1, 0),
    }
    kept = {} if how == "restart" else {("s", 1): 1}
    assert await in_redis(volatile_server) == {**kept, ("s", 2): 1}


async def publish_at(bus: Bus, n: int, received_at: float) -> None:
    raw = frame(TEXT, n)
    await bus.publish("s", TEXT, Undecoded(TEXT), received_at=received_at, raw=raw)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for Redis to answer (real I/O) while the trio clock stands still."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "Redis did not answer"
        await trio.testing.wait_all_tasks_blocked()


async def until_published(bridge: RedisBridge, count: int) -> None:
    await until(lambda: sum(bridge.statistics().published.values()) >= count)


async def until_taken(bridge: RedisBridge, count: int) -> None:
    """Until the bridge holds ``count`` taken from the bus (it may still be talking to Redis
    when it comes up, so every task blocked does not mean it has read the bus yet)."""
    await until(
        lambda: (
            bridge._subscription.statistics().queued == 0 and bridge.statistics().buffered == count
        )
    )


async def lingering_bridge(
    redis_config: RedisConfig, nursery: trio.Nursery
) -> tuple[Bus, RedisBridge]:
    """A bus and a bridge from it that lingers 0.5 s over a batch that is not full, up."""
    bus = Bus()
    config = attrs.evolve(redis_config, linger_seconds=0.5)
    bridge: RedisBridge = await nursery.start(partial(run_bridge, bus, config, node="n"))
    await until(lambda: bridge.statistics().up)
    return bus, bridge


async def test_a_batch_that_is_not_full_lingers_until_its_oldest_has_waited(
    redis_config: RedisConfig,
    redis_server: RedisServer,
    nursery: trio.Nursery,
    mock_clock: trio.testing.MockClock,
) -> None:
    bus, bridge = await lingering_bridge(redis_config, nursery)
    await publish_at(bus, 0, trio.current_time())
    await until_taken(bridge, 1)  # the bridge took it and waits for more
    for n in (1, 2):
        await publish_at(bus, n, trio.current_time())
    await trio.testing.wait_all_tasks_blocked()
    assert bridge.statistics().published == {}
    assert bridge.statistics().buffered == 3  # held while they linger: counted
    mock_clock.jump(0.5)
    await until_published(bridge, 3)
    assert bridge.statistics().batches == 1  # the three in one write
    # An event that has waited its linger already (a bridge behind) is written at once.
    await publish_at(bus, 3, trio.current_time() - 0.5)
    await until_published(bridge, 4)
    assert bridge.statistics().batches == 2
    assert await in_redis(redis_server) == {("s", seq): 1 for seq in range(1, 5)}


async def test_what_lingers_when_the_bridge_closes_is_counted_abandoned(
    redis_config: RedisConfig, redis_server: RedisServer, mock_clock: trio.testing.MockClock
) -> None:
    config = attrs.evolve(redis_config, linger_seconds=0.5)
    bus = Bus()
    bridge = RedisBridge(bus, config, node="n")
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        await until(lambda: bridge.statistics().up)
        await publish_at(bus, 0, trio.current_time())
        await until_taken(bridge, 1)  # taken from the bus, and held, lingering
        nursery.cancel_scope.cancel()
    await bridge.aclose()
    stats = bridge.statistics()
    assert (stats.dropped["abandoned"], stats.buffered, stats.published) == (1, 0, {})


async def test_an_event_stamped_on_another_clock_lingers_no_longer_than_the_linger(
    redis_config: RedisConfig,
    redis_server: RedisServer,
    nursery: trio.Nursery,
    mock_clock: trio.testing.MockClock,
) -> None:
    # ``received_at`` is the publisher's. Stamped far ahead of this process's clock (another
    # process's trio clock, wall-clock time), it must not hold the batch until then.
    bus, bridge = await lingering_bridge(redis_config, nursery)
    await publish_at(bus, 0, trio.current_time() + 1e6)
    await until_taken(bridge, 1)
    assert bridge.statistics().published == {}  # lingering...
    mock_clock.jump(0.5)
    await until_published(bridge, 1)  # ...for the linger, not for a million seconds


async def test_closing_while_redis_writes_a_batch_counts_it_written_not_abandoned(
    redis_config: RedisConfig, redis_server: RedisServer, mock_clock: trio.testing.MockClock
) -> None:
    config = attrs.evolve(redis_config, linger_seconds=0)
    bus = Bus()
    bridge = RedisBridge(bus, config, node="n")
    async with redis_server.client() as admin, trio.open_nursery() as nursery:

        async def run() -> None:
            with contextlib.suppress(trio.ClosedResourceError):  # it ends so, once closed
                await bridge.run()

        nursery.start_soon(run)
        await until(lambda: bridge.statistics().up)
        await admin.client_pause(60_000, coredis.PureToken.WRITE)  # the script will wait
        await publish_at(bus, 0, trio.current_time())
        await until_taken(bridge, 1)  # its write is in flight, held by Redis
        await bridge.aclose()
        await admin.client_unpause()
        await until_published(bridge, 1)
    stats = bridge.statistics()
    assert (stats.published, stats.dropped["abandoned"]) == ({"events": 1}, 0)
