"""``block`` with a ``block_timeout``: a subscriber that stops reading is cut loose, visibly,
and the publishers it held go on. Every test runs on the autojump clock: timeouts pass at
once, and ``trio.current_time()`` says how long a publisher really waited."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from support.events import ev

from rtbus.bus import (
    Bus,
    BusArgumentError,
    BusLimits,
    Envelope,
    OverflowPolicy,
    SubscriberDisconnected,
    SubscriberOverflowError,
    SubscriberTooSlowError,
    Subscription,
)
from rtbus.bus._lifecycle import BUS_SESSION

settle = trio.testing.wait_all_tasks_blocked
TIMEOUT = 5.0


async def publish(bus: Bus, session: str, count: int, *, type: str = "test.x") -> None:
    for i in range(count):
        await bus.publish(session, type, ev(i), received_at=0.0)


def drain(subscription: Subscription) -> list[Envelope]:
    got = []
    while subscription.statistics().queued:
        got.append(subscription._take())
    return got


async def test_a_stalled_subscriber_is_cut_loose_and_the_publisher_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    bus = Bus()
    healthy = bus.subscribe(types="test.*", maxsize=100)
    stalled = bus.subscribe(types="test.*", maxsize=2, block_timeout=TIMEOUT)
    notices = bus.subscribe(sessions=BUS_SESSION, maxsize=10)
    start = trio.current_time()
    with caplog.at_level(logging.WARNING, logger="rtbus.bus"):
        await publish(bus, "s1", 5)  # #3 waits TIMEOUT at `stalled`, then all go on at once
    assert trio.current_time() - start == pytest.approx(TIMEOUT)
    assert [e.seq for e in drain(healthy)] == [1, 2, 3, 4, 5]
    assert stalled.closed
    with pytest.raises(SubscriberTooSlowError) as caught:
        await stalled.receive()
    assert (caught.value.maxsize, caught.value.dropped, caught.value.block_timeout) == (2, 3, 5.0)
    assert "too slow" in str(caught.value)
    with pytest.raises(SubscriberOverflowError):  # every later read too, and one handler
        await stalled.receive()
    (notice,) = drain(notices)
    assert (notice.session_id, notice.seq, notice.type) == (BUS_SESSION, 1, notice.event.type)
    event = notice.event
    assert isinstance(event, SubscriberDisconnected)
    assert event.type == "rtbus.bus.subscriber_disconnected"
    assert (event.policy, event.reason, event.maxsize, event.dropped) == (
        OverflowPolicy.BLOCK,
        "too_slow",
        2,
        3,
    )
    assert event.block_timeout == TIMEOUT
    assert event.blocked == pytest.approx(TIMEOUT)
    assert "block_timeout=5s" in event.subscription
    assert "subscriber too slow" in caplog.text


async def test_the_cut_is_counted(autojump_clock: trio.testing.MockClock) -> None:
    bus = Bus()
    bus.subscribe(maxsize=2, block_timeout=TIMEOUT)
    await publish(bus, "s1", 3)
    stats = bus.statistics()
    assert stats.dropped[OverflowPolicy.BLOCK] == 3  # two buffered, the one that waited
    assert stats.disconnected[OverflowPolicy.BLOCK] == 1
    assert stats.disconnected[OverflowPolicy.DISCONNECT] == 0
    assert stats.subscriptions == 0
    assert stats.blocked_seconds_max == 0.0


async def test_a_disconnect_overflow_is_counted_as_a_disconnection_too() -> None:
    bus = Bus()
    bus.subscribe(maxsize=1, overflow="disconnect")
    await publish(bus, "s1", 2)
    assert bus.statistics().disconnected[OverflowPolicy.DISCONNECT] == 1


async def test_a_subscriber_that_reads_within_the_timeout_is_never_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus()
    slow = bus.subscribe(maxsize=1, block_timeout=TIMEOUT)
    got: list[int] = []

    async def read() -> None:
        async for envelope in slow:
            got.append(envelope.seq)
            await trio.sleep(TIMEOUT * 0.9)  # slow, but never as slow as the timeout

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await publish(bus, "s1", 10)
        await publish(bus, "s2", 1)
        await settle()
        await bus.aclose()
    assert got == [*range(1, 11), 1]
    assert bus.statistics().disconnected[OverflowPolicy.BLOCK] == 0


async def test_every_waiting_publisher_is_released_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Three sessions, each with two publishers: one waits at `stalled`, the other its turn.
    bus = Bus()
    stalled = bus.subscribe(types="test.*", maxsize=1, block_timeout=TIMEOUT)
    after = bus.subscribe(types="test.*", maxsize=100)
    await publish(bus, "s0", 1)  # fills `stalled`
    sessions = ["s1", "s2", "s3"]
    async with trio.open_nursery() as nursery:
        for session in sessions:
            nursery.start_soon(publish, bus, session, 1)
            nursery.start_soon(publish, bus, session, 1)
        await settle()
        assert stalled.statistics().publishers_waiting == 3  # one per session at a time
        assert bus.statistics().blocked_seconds_max == 0.0  # no time has passed yet
    seen = [(e.session_id, e.seq) for e in drain(after)]
    assert seen[0] == ("s0", 1)
    for session in sessions:
        assert [seq for id, seq in seen if id == session] == [1, 2]
    assert len(seen) == 7
    assert bus.statistics().dropped[OverflowPolicy.BLOCK] == 4  # s0's, and s1-s3's first


async def test_a_subscription_after_the_stalled_one_still_blocks_normally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus()
    bus.subscribe(types="test.*", maxsize=1, block_timeout=TIMEOUT)
    forever = bus.subscribe(types="test.*", maxsize=1)  # block_timeout=None: waits for ever
    await publish(bus, "s1", 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish, bus, "s1", 1)
        await trio.sleep(TIMEOUT * 10)  # the first is cut; the second still holds it
        assert bus.statistics().blocked_seconds_max == pytest.approx(TIMEOUT * 9)
        assert not forever.closed
        assert (await forever.receive()).seq == 1
    assert (await forever.receive()).seq == 2


async def test_readiness_names_a_publisher_blocked_past_the_warning(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus(BusLimits(blocked_warn_seconds=1.0))
    bus.subscribe(types="test.*", maxsize=1, block_timeout=TIMEOUT)
    await publish(bus, "s1", 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish, bus, "s1", 1)
        await trio.sleep(0.5)
        assert bus.readiness_problem() is None
        await trio.sleep(2.7)
        problem = bus.readiness_problem()
        assert problem is not None
        assert problem.startswith("a publisher blocked 3.2s on <Subscription types=['test.*']")
    assert bus.readiness_problem() is None  # cut, and everyone moved on


async def test_a_cancelled_blocked_publish_keeps_the_old_semantics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Bus()
    first = bus.subscribe(maxsize=10)
    full = bus.subscribe(maxsize=1, block_timeout=TIMEOUT)
    await publish(bus, "s1", 1)
    with trio.move_on_after(TIMEOUT / 2) as scope:
        await publish(bus, "s1", 1)
    assert scope.cancelled_caught
    assert not full.closed  # a cancelled publisher cuts nothing
    assert full.statistics().publishers_waiting == 0
    assert [e.seq for e in drain(first)] == [1, 2]
    assert [e.seq for e in drain(full)] == [1]


async def test_block_timeout_must_be_a_positive_number() -> None:
    bus = Bus()
    for bad in (0, -1.0, float("inf"), float("nan"), True, "5"):
        with pytest.raises(BusArgumentError, match="block_timeout"):
            bus.subscribe(block_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(BusArgumentError, match="remote_block_timeout"):
        BusLimits(remote_block_timeout=0)
    assert bus.subscribe(block_timeout=2).block_timeout == 2
    assert bus.subscribe().block_timeout is None  # in process: for ever, as before
    assert Bus().limits == BusLimits(remote_block_timeout=5.0, blocked_warn_seconds=1.0)
