"""receive_batch and receive_buffered: what is buffered, in one read, with the same counts as
one-by-one reads; receive_buffered never waits."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.events import ev, n_of

from rtbus.bus import Bus, OverflowPolicy, SubscriberOverflowError


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


async def test_receive_buffered_takes_what_is_there_without_waiting() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=10) as sub:
        assert sub.receive_buffered(8) == []
        await publish_range(bus, 5)
        assert [n_of(e.event) for e in sub.receive_buffered(3)] == [0, 1, 2]
        assert [n_of(e.event) for e in sub.receive_buffered(8)] == [3, 4]
        assert sub.receive_buffered(8) == []
        assert sub.statistics().delivered == 5
        with pytest.raises(ValueError, match="at least 1"):
            sub.receive_buffered(0)


async def test_receive_buffered_frees_room_and_counts_lag() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2) as sub, trio.open_nursery() as nursery:
        nursery.start_soon(publish_range, bus, 4)
        await trio.testing.wait_all_tasks_blocked()
        assert [n_of(e.event) for e in sub.receive_buffered(8)] == [0, 1, 2]
        await trio.testing.wait_all_tasks_blocked()
        assert [n_of(e.event) for e in sub.receive_buffered(8)] == [3]
    async with Bus() as bus, bus.subscribe(maxsize=2, overflow="drop_oldest") as sub:
        await publish_range(bus, 5)
        assert [n_of(e.event) for e in sub.receive_buffered(8)] == [3, 4]
        assert sub.statistics().lag == sub.lag == 3


async def test_receive_buffered_leaves_why_to_the_next_receive() -> None:
    async with Bus() as bus:
        sub = bus.subscribe(maxsize=1, overflow="disconnect")
        await publish_range(bus, 2)
        assert sub.receive_buffered(8) == []  # overflowed: the buffer is gone
        with pytest.raises(SubscriberOverflowError):
            await sub.receive()
    bus = Bus()
    ended = bus.subscribe()
    await publish_range(bus, 2)
    await bus.aclose()
    assert [n_of(e.event) for e in ended.receive_buffered(8)] == [0, 1]  # drained first
    assert ended.receive_buffered(8) == []
    with pytest.raises(trio.EndOfChannel):
        await ended.receive()


async def test_receive_buffered_refuses_while_a_delivery_is_held() -> None:
    async with Bus() as bus, bus.subscribe() as sub:
        await publish_range(bus, 2)
        async with sub.delivery():
            with pytest.raises(trio.BusyResourceError):
                sub.receive_buffered(1)
        assert [n_of(e.event) for e in sub.receive_buffered(8)] == [1]


async def test_buffered_counts_what_waits_without_a_snapshot() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=10) as sub:
        assert sub.buffered == 0
        await publish_range(bus, 3)
        assert sub.buffered == sub.statistics().queued == 3
        async with sub.delivery():
            assert sub.buffered == 2  # the one held is not waiting
        sub.receive_buffered(8)
        assert sub.buffered == 0


@pytest.mark.parametrize("overflow", ["block", "drop_oldest", "drop_newest", "disconnect"])
async def test_on_full_lets_a_gathering_reader_take_before_the_policy_applies(
    overflow: OverflowPolicy,
) -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2, overflow=overflow) as sub:
        gathered: list[object] = []
        sub.on_full(lambda: gathered.extend(n_of(e.event) for e in sub.receive_buffered(8)))
        await publish_range(bus, 5)  # full at the third, and at the fifth: taken each time
        sub.on_full(None)
        statistics = sub.statistics()
        assert gathered == [0, 1, 2, 3]
        assert [n_of(e.event) for e in sub.receive_buffered(8)] == [4]
        assert (statistics.dropped, statistics.delivered, statistics.queued) == (0, 4, 1)


async def test_on_full_that_makes_no_room_leaves_the_policy_to_apply() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2, overflow="drop_newest") as sub:
        calls: list[int] = []
        sub.on_full(lambda: calls.append(sub.buffered))
        await publish_range(bus, 4)
        assert calls == [2, 2]
        assert sub.statistics().dropped == 2
        sub.on_full(None)
        await publish_range(bus, 1)
        assert calls == [2, 2]  # unset: not called again


async def test_on_full_is_not_called_while_a_delivery_holds_the_reader() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2, overflow="drop_newest") as sub:
        calls: list[int] = []
        sub.on_full(lambda: calls.append(1))
        await publish_range(bus, 2)
        async with sub.delivery():
            await publish_range(bus, 2)  # full: a read is in progress, the policy applies
        assert calls == []
        assert sub.statistics().dropped == 2


async def test_an_on_full_that_raises_costs_only_its_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2, overflow="drop_newest") as sub:

        def take() -> None:
            raise RuntimeError("the reader broke")

        sub.on_full(take)
        await publish_range(bus, 3)  # the third: logged, then dropped as the policy says
        statistics = sub.statistics()
        assert (statistics.offered, statistics.queued, statistics.dropped) == (3, 2, 1)
        assert "on_full reader failed" in caplog.text


async def test_publish_nowait_lets_on_full_make_room_before_it_refuses() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=2) as sub:  # block
        gathered: list[object] = []
        sub.on_full(lambda: gathered.extend(n_of(e.event) for e in sub.receive_buffered(8)))
        for i in range(5):
            bus.publish_nowait("s", "response.done", ev(i), received_at=0.0)
        assert gathered == [0, 1, 2, 3]
        assert sub.statistics().queued == 1
