"""Per-session order under ``block`` with several publishers: one publish waits at a time."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.events import ev

from rtbus.bus import Bus


async def publish_range(bus: Bus, count: int, *, type: str = "response.done") -> None:
    for i in range(count):
        await bus.publish("s", type, ev(i), received_at=0.0)


async def test_concurrent_publishers_of_one_session_keep_order_in_every_subscription() -> None:
    bus = Bus()
    subs = [bus.subscribe(maxsize=1, overflow="block") for _ in range(3)]
    seen: list[list[int]] = [[] for _ in subs]

    async def read(index: int) -> None:
        async for envelope in subs[index]:
            seen[index].append(envelope.seq)

    async with trio.open_nursery() as readers:
        for index in range(len(subs)):
            readers.start_soon(read, index)
        async with trio.open_nursery() as publishers:
            for _ in range(4):
                publishers.start_soon(publish_range, bus, 25)
        await bus.aclose()
    for seqs in seen:
        assert seqs == list(range(1, 101))


async def test_publish_nowait_does_not_overtake_a_waiting_publish() -> None:
    bus = Bus()
    full = bus.subscribe(types="response.*", maxsize=1)
    other = bus.subscribe(maxsize=10)
    await publish_range(bus, 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_range, bus, 1)  # waits at `full`, before reaching `other`
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.WouldBlock):  # `full` does not take "error"; the turn refuses
            bus.publish_nowait("s", "error", ev(), received_at=0.0)
        bus.publish_nowait("another-session", "error", ev(), received_at=0.0)
        await full.receive()
    assert [(e.session_id, e.seq) for e in [await other.receive() for _ in range(3)]] == [
        ("s", 1),
        ("another-session", 1),
        ("s", 2),
    ]


async def test_publishes_waiting_their_turn_fail_cleanly_when_the_bus_closes() -> None:
    bus = Bus()
    bus.subscribe(maxsize=1)
    await publish_range(bus, 1)
    outcomes: list[str] = []

    async def publish_one() -> None:
        try:
            await publish_range(bus, 1)
            outcomes.append("released")
        except trio.ClosedResourceError:
            outcomes.append("closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_one)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(publish_one)  # queues behind the first, on the session's turn
        await trio.testing.wait_all_tasks_blocked()
        await bus.aclose()
    assert outcomes == ["released", "closed"]
    assert bus.statistics().published == 2  # the second never got a seq


async def test_a_publish_cancelled_while_waiting_its_turn_spends_no_seq(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1)
    await publish_range(bus, 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_range, bus, 1)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(3):
            await publish_range(bus, 1)
        assert [(await sub.receive()).seq for _ in range(2)] == [1, 2]
    await publish_range(bus, 1)
    assert (await sub.receive()).seq == 3
