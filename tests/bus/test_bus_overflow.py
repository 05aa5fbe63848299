"""Overflow policies, each with exact counts."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.events import ev, n_of

from rtbus.bus import Bus, OverflowPolicy, SubscriberOverflowError, Subscription


async def publish_range(bus: Bus, count: int, *, session: str = "s") -> None:
    for i in range(count):
        await bus.publish(session, "response.done", ev(i), received_at=0.0)


async def take_queued(sub: Subscription) -> list[int]:
    events: list[int] = []
    while sub.statistics().queued:
        events.append(n_of((await sub.receive()).event))
    return events


async def test_block_back_pressures_the_publisher_and_loses_nothing() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=3, overflow="block")
    published: list[int] = []

    async def publisher() -> None:
        for i in range(10):
            await bus.publish("s", "response.done", ev(i), received_at=0.0)
            published.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        await trio.testing.wait_all_tasks_blocked()
        # Three fit; the fourth publish is parked with its envelope.
        assert published == [0, 1, 2]
        stats = sub.statistics()
        assert (stats.queued, stats.publishers_waiting) == (3, 1)
        assert n_of((await sub.receive()).event) == 0
        await trio.testing.wait_all_tasks_blocked()
        assert published == [0, 1, 2, 3]
        received = [0] + [n_of((await sub.receive()).event) for _ in range(9)]
    assert received == list(range(10))
    stats = sub.statistics()
    assert (stats.delivered, stats.dropped, stats.lag, stats.queued) == (10, 0, 0, 0)


async def test_drop_oldest_keeps_the_newest_and_counts_exactly() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=4, overflow="drop_oldest")
    await publish_range(bus, 10)
    stats = sub.statistics()
    assert (stats.dropped, stats.queued, stats.lag) == (6, 4, 0)
    envelope = await sub.receive()
    assert (n_of(envelope.event), envelope.seq) == (6, 7)  # seq shows the gap: 1..6 missed
    assert sub.statistics().lag == 6  # dropped since the previous read, read after this one
    await publish_range(bus, 1)
    assert [n_of((await sub.receive()).event) for _ in range(4)] == [7, 8, 9, 0]
    assert sub.statistics().lag == 0
    assert (sub.statistics().delivered, sub.statistics().dropped) == (5, 6)


async def test_drop_newest_keeps_the_oldest_and_counts_exactly() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=4, overflow="drop_newest")
    await publish_range(bus, 10)
    stats = sub.statistics()
    assert (stats.dropped, stats.queued) == (6, 4)
    assert await take_queued(sub) == [0, 1, 2, 3]


async def test_lag_counts_drops_between_two_reads() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=2, overflow="drop_newest")
    await publish_range(bus, 5)  # 0, 1 kept; 2, 3, 4 dropped
    assert n_of((await sub.receive()).event) == 0
    assert sub.statistics().lag == 3
    assert n_of((await sub.receive()).event) == 1
    assert sub.statistics().lag == 0
    await publish_range(bus, 4)  # 0, 1 kept; 2, 3 dropped
    assert n_of((await sub.receive()).event) == 0
    assert (sub.statistics().lag, sub.statistics().dropped) == (2, 5)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest", "disconnect"])
async def test_only_block_ever_holds_up_the_publisher(policy: str) -> None:
    bus = Bus()
    bus.subscribe(maxsize=1, overflow=policy)
    with trio.testing.assert_no_checkpoints():
        for i in range(50):
            bus.publish_nowait("s", "error", ev(i), received_at=0.0)
    await publish_range(bus, 50)
    assert bus.statistics().published == 100


async def test_disconnect_raises_at_the_subscriber_not_the_publisher() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=3, overflow=OverflowPolicy.DISCONNECT)
    await publish_range(bus, 3)
    assert n_of((await sub.receive()).event) == 0
    await publish_range(bus, 2)  # fills the buffer again, then overflows it
    with pytest.raises(SubscriberOverflowError) as info:
        await sub.receive()
    assert (info.value.maxsize, info.value.dropped) == (3, 4)  # the overflowing one + 3 queued
    assert "disconnect" in str(info.value)
    with pytest.raises(SubscriberOverflowError):  # every later read too
        await sub.receive()
    with pytest.raises(SubscriberOverflowError):
        async with sub.delivery():
            pass
    await publish_range(bus, 5)  # no longer routed to: nothing more is counted
    stats = sub.statistics()
    assert (stats.delivered, stats.dropped, stats.queued) == (1, 4, 0)
    assert bus.statistics().subscriptions == 0
    assert bus.statistics().dropped[OverflowPolicy.DISCONNECT] == 4
    assert not bus.has_subscriber("s", "response.done")
    await sub.aclose()
    with pytest.raises(trio.ClosedResourceError):  # closed by its owner: that takes over
        await sub.receive()


async def test_disconnect_fails_the_worker_at_its_next_read() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1, overflow="disconnect")
    release = trio.Event()
    handled: list[int] = []

    async def worker() -> None:
        async for envelope in sub:
            handled.append(n_of(envelope.event))
            await release.wait()  # a handler slow on its first envelope

    with pytest.RaisesGroup(SubscriberOverflowError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            await publish_range(bus, 1)
            await trio.testing.wait_all_tasks_blocked()
            await publish_range(bus, 3)  # 1 fits; 2 overflows (publishing goes on)
            assert bus.statistics().published == 4
            release.set()
    assert handled == [0]
    assert sub.statistics().dropped == 2  # the queued one and the one that did not fit
