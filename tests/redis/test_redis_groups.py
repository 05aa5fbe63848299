"""Consumer groups against a real redis-server: each at-least-once rule, one test each."""

from __future__ import annotations

import contextlib
from collections import Counter
from functools import partial

import attrs
import coredis
import orjson
import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest
from support.polling import eventually
from support.redis_load import AUDIO, TEXT, frame, publish
from support.redis_server import RedisServer

from rtbus.bus import Bus, Undecoded
from rtbus.redis import (
    LostEntries,
    RedisBridge,
    RedisConfig,
    RedisEnvelope,
    RedisMetrics,
    RedisSubscription,
    run_bridge,
    subscribe,
)
from rtbus.redis._group import Pending, _read_of

EVENTS_KEY, DEAD_KEY = b"{rtbus}:events:events", b"{rtbus}:dead-letter"


async def start_bridge(nursery: trio.Nursery, config: RedisConfig) -> tuple[Bus, RedisBridge]:
    bus = Bus()
    bridge: RedisBridge = await nursery.start(partial(run_bridge, bus, config, node="node-a"))
    return bus, bridge


async def pending(server: RedisServer, group: str, key: bytes = EVENTS_KEY) -> int:
    async with server.client() as redis:
        summary = await redis.xpending(key, group)
    return summary.pending  # type: ignore[union-attr]


async def test_each_group_gets_every_event_exactly_once_across_its_consumers(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    # No reclaims within the test: a duplicate here would be a bug, not a redelivery.
    config = attrs.evolve(redis_config, reclaim_idle_seconds=30.0, batch_size=8)
    bus, _ = await start_bridge(nursery, config)
    seen: dict[str, list[tuple[str, int]]] = {"billing": [], "transcripts": []}
    by_consumer: Counter[str] = Counter()

    def record(sub: RedisSubscription, envelope: RedisEnvelope) -> None:
        seen[sub.group].append((envelope.session_id, envelope.seq))
        by_consumer[sub.consumer] += 1

    expected = set()
    async with contextlib.AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(subscribe(config, group=group, consumer=f"{group}-{i}"))
            for group in seen
            for i in range(3)
        ]
        async with trio.open_nursery() as workers:
            for sub in subs:
                workers.start_soon(sub.run, partial(record, sub))
            for n in range(150):
                envelope = await publish(bus, f"session-{n % 4}", AUDIO if n % 3 else TEXT, n)
                expected.add((envelope.session_id, envelope.seq))
                if n % 10 == 0:
                    await trio.sleep(0.001)  # spread the load over several reads
            await eventually(lambda: all(len(got) >= len(expected) for got in seen.values()))
            workers.cancel_scope.cancel()
    for got in seen.values():
        assert len(got) == len(expected)
        assert set(got) == expected
    assert sum(by_consumer.values()) == 2 * len(expected)
    # Numbers missing at one consumer went to another: no gap is reported.
    assert [sub.statistics().missed for sub in subs] == [0] * len(subs)
    for group in seen:
        assert await pending(redis_server, group) == 0
        assert await pending(redis_server, group, b"{rtbus}:events:audio") == 0


async def fail_in_delivery(sub: RedisSubscription, seen: list[RedisEnvelope]) -> None:
    async with sub.delivery() as envelope:
        seen.append(envelope)
        raise KeyError("boom")


async def test_an_entry_is_acknowledged_only_after_its_handler_returned(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus, bridge = await start_bridge(nursery, redis_config)
    for n in range(2):
        await publish(bus, "s", TEXT, n)
    # Both in Redis before the first read, which then takes both (not one, under load).
    await eventually(lambda: bridge.statistics().published == {"events": 2})
    async with subscribe(redis_config, group="g", streams=["events"]) as sub:
        async with sub.delivery() as envelope:
            assert envelope.seq == 1
            assert await pending(redis_server, "g") == 2  # both read, neither acknowledged
        assert await pending(redis_server, "g") == 1  # the first one acknowledged on exit
        failing: list[RedisEnvelope] = []
        with pytest.raises(KeyError, match="boom"):
            await fail_in_delivery(sub, failing)
        assert failing[0].seq == 2
        assert await pending(redis_server, "g") == 1  # failed: still pending
        field = EVENTS_KEY + b"/" + failing[0].entry_id.encode()
        async with redis_server.client() as redis:
            record = await redis.hget(b"{rtbus}:failures:g", field)
        assert record is not None
        assert orjson.loads(record)["error_type"] == "KeyError"
        assert "boom" in orjson.loads(record)["error"]
        stats = sub.statistics()
        assert (stats.delivered, stats.acked, stats.failed) == (2, 1, 1)


async def test_a_consumer_that_dies_mid_handler_has_its_entry_reclaimed_by_another(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus, _ = await start_bridge(nursery, redis_config)
    await publish(bus, "s", TEXT, 0)
    registry, metrics = CollectorRegistry(), RedisMetrics()
    registry.register(metrics)
    async with (
        subscribe(redis_config, group="g", consumer="doomed") as doomed,
        subscribe(redis_config, group="g", consumer="survivor", metrics=metrics) as survivor,
    ):
        holding = trio.Event()

        async def die_while_handling() -> None:
            async with doomed.delivery():
                holding.set()
                await trio.sleep_forever()

        async with trio.open_nursery() as inner:
            inner.start_soon(die_while_handling)
            await holding.wait()
            inner.cancel_scope.cancel()
        assert await pending(redis_server, "g") == 1  # held by the dead one

        with trio.fail_after(5):
            async with survivor.delivery() as envelope:
                assert (envelope.seq, envelope.deliveries) == (1, 2)
        assert survivor.statistics().reclaimed == 1
        assert await pending(redis_server, "g") == 0
    text = generate_latest(registry).decode()
    assert 'rtbus_redis_reclaimed_total{group="g",stream="events"} 1.0' in text


async def dead_lettered(redis: coredis.Redis[bytes]) -> bool:
    return await redis.xlen(DEAD_KEY) > 0


async def test_a_poison_event_is_dead_lettered_after_the_cap_with_its_event_and_why(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    config = attrs.evolve(redis_config, max_deliveries=2, reclaim_idle_seconds=0.2)
    bus, _ = await start_bridge(nursery, config)
    metrics = RedisMetrics()
    handled: list[int] = []

    def handle(envelope: RedisEnvelope) -> None:
        if envelope.seq == 2:
            raise ValueError(f"cannot handle seq {envelope.seq}")
        handled.append(envelope.seq)

    for n in range(3):
        await publish(bus, "s", TEXT, n)
    async with (
        subscribe(config, group="g", consumer="c1", metrics=metrics) as one,
        subscribe(config, group="g", consumer="c2", metrics=metrics) as two,
        trio.open_nursery() as workers,
    ):
        workers.start_soon(one.run, handle)
        workers.start_soon(two.run, handle)
        async with redis_server.client() as redis:
            await eventually(lambda: dead_lettered(redis))
            (dead,) = await redis.xrange(DEAD_KEY)
            failures = await redis.hlen(b"{rtbus}:failures:g")
        workers.cancel_scope.cancel()
    fields = dead.field_values
    assert fields[b"event"] == frame(TEXT, 1)  # the original event, byte for byte
    assert (fields[b"session"], fields[b"seq"], fields[b"type"]) == (b"s", b"2", TEXT.encode())
    assert (fields[b"origin_stream"], fields[b"group"]) == (b"events", b"g")
    assert fields[b"error_type"] == b"ValueError"
    assert fields[b"error"] == b"cannot handle seq 2"
    assert fields[b"deliveries"] == b"2"
    assert fields[b"consumer"] in {b"c1", b"c2"}
    assert sorted(handled) == [1, 3]
    assert failures == 0  # the record went with the entry
    assert await pending(redis_server, "g") == 0
    assert metrics.group_counts("events", "g").dead_lettered == 1
    assert one.statistics().dead_lettered + two.statistics().dead_lettered == 1


async def test_entries_trimmed_before_they_were_acknowledged_are_counted_and_reported(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus, _ = await start_bridge(nursery, redis_config)
    for n in range(5):
        await publish(bus, "s", TEXT, n)
    metrics = RedisMetrics()
    send, receive = trio.open_memory_channel[LostEntries](10)
    async with (
        subscribe(redis_config, group="g", consumer="doomed") as doomed,
        subscribe(redis_config, group="g", consumer="c2", metrics=metrics, on_lost=send.send) as c2,
    ):
        with trio.move_on_after(0.05):  # reads the batch of 5, holds the first, is cancelled
            async with doomed.delivery():
                await trio.sleep_forever()
        assert await pending(redis_server, "g") == 5
        async with redis_server.client() as redis:
            assert await redis.xtrim(EVENTS_KEY, coredis.PureToken.MAXLEN, 0) == 5
        async with trio.open_nursery() as inner:
            inner.start_soon(c2.run, lambda envelope: None)
            with trio.fail_after(5):
                lost = await receive.receive()
            inner.cancel_scope.cancel()
    assert (lost.stream, lost.group, len(lost.entry_ids)) == ("events", "g", 5)
    assert c2.statistics().trimmed == 5
    assert metrics.group_counts("events", "g").trimmed_before_ack == 5
    assert await pending(redis_server, "g") == 0


async def test_filters_choose_streams_and_skip_the_rest_unseen(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus, _ = await start_bridge(nursery, redis_config)
    await publish(bus, "other", TEXT, 0)
    await publish(bus, "mine", AUDIO, 1)
    await publish(bus, "mine", TEXT, 2)
    async with subscribe(redis_config, group="g", types=TEXT, sessions="mine", raw=True) as sub:
        assert "streams=['events']" in repr(sub)  # the audio stream is never read
        with trio.fail_after(5):
            async with sub.delivery() as envelope:
                pass
        assert (envelope.session_id, envelope.type, envelope.event) == (
            "mine",
            TEXT,
            Undecoded(TEXT),
        )
        assert envelope.raw == frame(TEXT, 2)
        assert envelope.node == "node-a"
        assert sub.statistics().skipped == 1
    assert await pending(redis_server, "g") == 0


async def test_an_entry_that_cannot_be_decoded_is_dead_lettered_at_once(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus, _ = await start_bridge(nursery, redis_config)
    async with redis_server.client() as redis:
        await redis.xadd(EVENTS_KEY, {b"type": TEXT.encode(), b"event": b"{}"})
    await publish(bus, "s", TEXT, 0)
    async with subscribe(redis_config, group="g") as sub:
        with trio.fail_after(5):
            async with sub.delivery() as envelope:
                assert envelope.session_id == "s"
        assert sub.statistics().dead_lettered == 1
    async with redis_server.client() as redis:
        (dead,) = await redis.xrange(DEAD_KEY)
    assert dead.field_values[b"error_type"] == b"ProtocolError"
    assert b"'session'" in dead.field_values[b"error"]
    assert dead.field_values[b"deliveries"] == b"0"


async def test_an_entry_another_writer_made_in_its_own_field_order_is_delivered(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    fields = {
        b"event": frame(TEXT, 4), b"trace": b"abc", b"time": b"1700000000.5", b"node": b"other",
        b"type": TEXT.encode(), b"seq": b"4", b"session": b"s",
    }  # fmt: skip
    async with redis_server.client() as redis:
        await redis.xadd(EVENTS_KEY, fields)
    async with subscribe(redis_config, group="g") as sub:
        with trio.fail_after(5):
            async with sub.delivery() as envelope:
                pass
        assert sub.statistics().dead_lettered == 0
    assert (envelope.session_id, envelope.seq, envelope.node) == ("s", 4, "other")
    assert (envelope.published_at, envelope.raw) == (1700000000.5, frame(TEXT, 4))
    assert await pending(redis_server, "g") == 0


def test_a_read_of_several_streams_hands_their_entries_out_in_entry_id_order() -> None:
    audio, events = b"{rtbus}:events:audio", EVENTS_KEY
    reply = {
        audio: [[b"9-0", [b"n", b"1"]], [b"10-1", [b"n", b"3"]], [b"10-3", [b"n", b"5"]]],
        events: [[b"9-1", [b"n", b"2"]], [b"10-2", [b"n", b"4"]]],
    }
    read = _read_of(reply)
    assert [pending.fields for pending in read.entries] == [[b"n", b"%d" % n] for n in range(1, 6)]
    assert read.entries[0] == Pending(audio, b"9-0", [b"n", b"1"], 1)
    assert read.counts == {audio: 3, events: 2}  # what each stream gave: caught up or not


async def test_a_group_lost_with_redis_data_is_made_again(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus, _ = await start_bridge(nursery, redis_config)
    await publish(bus, "s", TEXT, 0)
    async with subscribe(redis_config, group="g") as sub:
        async with sub.delivery() as envelope:
            assert envelope.seq == 1
        async with redis_server.client() as redis:
            await redis.flushall()
        await publish(bus, "s", TEXT, 1)
        with trio.fail_after(5):
            async with sub.delivery() as envelope:
                assert envelope.seq == 2
    assert await pending(redis_server, "g") == 0


async def test_reading_needs_an_entered_subscription_one_reader_at_a_time(
    redis_config: RedisConfig, redis_server: RedisServer
) -> None:
    sub = subscribe(redis_config, group="g")
    with pytest.raises(trio.ClosedResourceError, match="enter"):
        async with sub.delivery():
            pass
    async with sub, trio.open_nursery() as nursery:
        nursery.start_soon(sub.run, lambda envelope: None)
        await eventually(lambda: sub._busy)
        with pytest.raises(trio.BusyResourceError):
            async with sub.delivery():
                pass
        nursery.cancel_scope.cancel()
    with pytest.raises(RuntimeError, match="once"):
        await sub.__aenter__()
