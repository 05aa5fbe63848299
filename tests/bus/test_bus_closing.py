"""Closing and cancellation: nobody is left blocked, nothing is half-done."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.events import ev, n_of

from rtbus.bus import Bus, OverflowPolicy


async def publish_range(bus: Bus, count: int) -> None:
    for i in range(count):
        await bus.publish("s", "response.done", ev(i), received_at=0.0)


async def test_closing_a_subscription_releases_its_blocked_publisher() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1, overflow="block")
    other = bus.subscribe(maxsize=10, overflow="drop_newest")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_range, bus, 3)
        await trio.testing.wait_all_tasks_blocked()
        assert sub.statistics().publishers_waiting == 1
        await sub.aclose()
    # The released publish went on to the rest of its targets, and so did the next ones.
    assert other.statistics().queued == 3
    assert bus.statistics().published == 3


async def test_subscription_aclose_is_idempotent_and_reads_then_raise() -> None:
    bus = Bus()
    sub = bus.subscribe()
    await publish_range(bus, 2)
    async with sub:
        pass
    await sub.aclose()
    sub.close()
    with pytest.raises(trio.ClosedResourceError):
        await sub.receive()
    with pytest.raises(trio.ClosedResourceError):
        async for _ in sub:
            pass
    assert bus.statistics().subscriptions == 0
    assert not bus.has_subscriber("s", "response.done")


async def test_closing_wakes_a_waiting_reader_with_closed_resource_error() -> None:
    bus = Bus()
    sub = bus.subscribe()
    with pytest.RaisesGroup(trio.ClosedResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sub.receive)
            await trio.testing.wait_all_tasks_blocked()
            sub.close()


async def test_bus_aclose_drains_then_stops_every_iterator() -> None:
    bus = Bus()
    subs = [bus.subscribe(types=t) for t in ("*", "response.*", "error")]
    await publish_range(bus, 3)
    received: dict[int, list[int]] = {}

    async def read(index: int) -> None:
        received[index] = []
        async for envelope in subs[index]:
            received[index].append(n_of(envelope.event))

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(read, index)
        await trio.testing.wait_all_tasks_blocked()
        await bus.aclose()
    assert received == {0: [0, 1, 2], 1: [0, 1, 2], 2: []}


async def test_bus_aclose_releases_blocked_publishers() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1, overflow="block")
    outcome: list[str] = []

    async def publisher() -> None:
        await publish_range(bus, 2)
        outcome.append("released")
        with pytest.raises(trio.ClosedResourceError):
            await publish_range(bus, 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        await trio.testing.wait_all_tasks_blocked()
        assert outcome == []
        await bus.aclose()
    assert outcome == ["released"]
    assert [e.seq async for e in sub] == [1]  # the blocked envelope never got in


async def test_a_cancelled_blocked_publish_reaches_only_earlier_subscriptions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus()
    earlier = bus.subscribe(maxsize=10, overflow="drop_newest")
    full = bus.subscribe(maxsize=1, overflow="block")
    later = bus.subscribe(maxsize=10, overflow="drop_newest")
    await publish_range(bus, 1)
    with trio.move_on_after(5) as scope:
        await bus.publish("s", "response.done", ev(0), received_at=0.0)
    assert scope.cancelled_caught
    assert trio.current_time() == 5
    assert full.statistics().publishers_waiting == 0  # its waiter entry is gone
    assert (earlier.statistics().queued, full.statistics().queued) == (2, 1)
    assert later.statistics().queued == 1
    await full.receive()
    await publish_range(bus, 1)
    assert (await full.receive()).seq == 3  # seq 2 was spent: the gap is visible


async def test_a_cancelled_reader_leaves_the_subscription_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus()
    sub = bus.subscribe()
    with trio.move_on_after(1):
        await sub.receive()
    await publish_range(bus, 1)
    assert n_of((await sub.receive()).event) == 0


async def test_statistics_survive_subscriptions_closing() -> None:
    bus = Bus()
    reader = bus.subscribe(maxsize=10)
    dropper = bus.subscribe(maxsize=1, overflow="drop_oldest")
    await publish_range(bus, 4)
    await reader.receive()
    await reader.aclose()
    await dropper.aclose()
    stats = bus.statistics()
    assert (stats.published, stats.delivered, stats.subscriptions) == (4, 1, 0)
    assert dict(stats.dropped) == {
        OverflowPolicy.BLOCK: 0,
        OverflowPolicy.DROP_OLDEST: 3,
        OverflowPolicy.DROP_NEWEST: 0,
        OverflowPolicy.DISCONNECT: 0,
    }
    with pytest.raises(TypeError):
        stats.dropped[OverflowPolicy.BLOCK] = 1  # type: ignore[index]
