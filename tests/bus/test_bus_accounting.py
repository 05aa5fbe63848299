"""Nothing is lost uncounted: every envelope offered to a subscription is delivered, dropped
by its policy, still queued, waiting with its publisher, discarded by the subscriber, or
withdrawn by a cancelled publisher, under every policy and however the subscription ends."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.events import ev

from rtbus.bus import Bus, OverflowPolicy, Subscription, SubscriptionStatistics


def accounted(stats: SubscriptionStatistics) -> int:
    return (
        stats.delivered
        + stats.dropped
        + stats.queued
        + stats.publishers_waiting
        + stats.discarded
        + stats.withdrawn
    )


async def publish(bus: Bus, n: int, session: str = "s1") -> None:
    for _ in range(n):
        await bus.publish(session, "response.done", ev(), received_at=0.0)


async def read(sub: Subscription, n: int) -> None:
    for _ in range(n):
        await sub.receive()


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest", "disconnect"])
async def test_a_full_buffer_counts_what_its_policy_drops(policy: str) -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=4, overflow=policy)
    await publish(bus, 10)
    stats = sub.statistics()
    # A disconnected subscription is offered nothing more after the envelope that overflowed.
    assert stats.offered == (5 if policy == "disconnect" else 10)
    assert stats.offered == accounted(stats)
    assert stats.dropped > 0


async def test_block_accounts_for_waiting_withdrawn_and_discarded_publishers(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=2)
    await publish(bus, 2)
    cancel = trio.CancelScope()

    async def stuck() -> None:
        with cancel:
            await publish(bus, 1, session="s2")

    nursery.start_soon(stuck)
    nursery.start_soon(publish, bus, 1, "s3")
    await trio.testing.wait_all_tasks_blocked()
    waiting = sub.statistics()
    assert (waiting.offered, waiting.publishers_waiting) == (4, 2)
    assert accounted(waiting) == 4
    cancel.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert sub.statistics().withdrawn == 1
    await read(sub, 1)
    sub.close()
    closed = sub.statistics()
    assert closed.offered == 4 == accounted(closed)
    assert closed.discarded == 2, "two unread when the subscriber closed it"


async def test_a_subscription_cut_loose_counts_everything_it_held(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    bus = Bus()
    slow = bus.subscribe(maxsize=2, block_timeout=1.0)
    fast = bus.subscribe(maxsize=100)
    await publish(bus, 5)
    cut = slow.statistics()
    assert (cut.offered, cut.dropped) == (3, 3), "two buffered and the one that waited"
    assert cut.offered == accounted(cut)
    # Five, and the bus's announcement of the cut (rtbus.bus.subscriber_disconnected).
    assert fast.statistics().offered == 6 == accounted(fast.statistics())
    assert cut.policy is OverflowPolicy.BLOCK
    assert slow.closed


async def test_the_bus_closing_on_a_waiting_publisher_discards_its_envelope(
    nursery: trio.Nursery,
) -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1)
    await publish(bus, 1)
    nursery.start_soon(publish, bus, 1)
    await trio.testing.wait_all_tasks_blocked()
    await bus.aclose()
    await read(sub, 1)
    stats = sub.statistics()
    assert (stats.offered, stats.discarded) == (2, 1)
    assert accounted(stats) == 2


async def test_an_observer_watches_errors_without_handling_them() -> None:
    bus = Bus()
    async with bus.subscribe(types="error", observer=True) as watching:
        assert not bus.has_subscriber("s1", "error"), "watching is not handling"
        async with bus.subscribe(types="error") as handling:
            assert bus.has_subscriber("s1", "error")
            assert not handling.observer
        assert watching.observer
