"""receive_batch: what is buffered, in one read, with the same counts as one-by-one reads."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.events import ev, n_of

from rtbus.bus import Bus


async def publish_range(bus: Bus, count: int) -> None:
    for i in range(count):
        await bus.publish("s", "response.done", ev(i), received_at=0.0)


async def test_takes_what_is_buffered_up_to_the_limit_in_order() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=10) as sub:
        await publish_range(bus, 5)
        assert [n_of(e.event) for e in await sub.receive_batch(3)] == [0, 1, 2]
        assert [n_of(e.event) for e in await sub.receive_batch(10)] == [3, 4]
        assert sub.statistics().delivered == 5
        assert sub.statistics().queued == 0


async def test_waits_for_the_first_envelope() -> None:
    async with Bus() as bus, bus.subscribe() as sub, trio.open_nursery() as nursery:
        got: list[object] = []

        async def read() -> None:
            got.extend(n_of(e.event) for e in await sub.receive_batch(8))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await publish_range(bus, 1)
    assert got == [0]


async def test_lag_counts_what_was_dropped_before_the_batch() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2, overflow="drop_oldest") as sub:
        await publish_range(bus, 5)
        assert [n_of(e.event) for e in await sub.receive_batch(8)] == [3, 4]
        assert sub.statistics().lag == 3


async def test_a_batch_frees_room_for_blocked_publishers() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2) as sub, trio.open_nursery() as nursery:
        nursery.start_soon(publish_range, bus, 4)
        await trio.testing.wait_all_tasks_blocked()
        assert sub.statistics().publishers_waiting == 1
        # Taking the first envelope admits the waiting publisher's into the room it made.
        assert [n_of(e.event) for e in await sub.receive_batch(8)] == [0, 1, 2]
        assert [n_of(e.event) for e in await sub.receive_batch(8)] == [3]


async def test_ends_with_the_bus_and_refuses_a_zero_limit() -> None:
    bus = Bus()
    sub = bus.subscribe()
    with pytest.raises(ValueError, match="at least 1"):
        await sub.receive_batch(0)
    await bus.aclose()
    with pytest.raises(trio.EndOfChannel):
        await sub.receive_batch(1)
