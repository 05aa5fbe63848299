"""Subscribing through the gateway: the in-process semantics, one real service away.

Events are published straight onto the service's bus (``publish``), so each test decides what
is published and when; ``settle`` waits until every task in this process (the service, the
gateway, the client) is blocked, which on loopback means every frame sent has been read.

A subscription of ``maxsize=4`` is a window of 2 in the client and a buffer of 2 in the service.
The overflow tests first fill the window (``fill_window``), so that the service's forwarder is
out of credit and the burst that follows meets the service's buffer alone, deterministically.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from support.gateway import GatewayApp, client, publish, take

from rtbus.bus import Envelope, OverflowPolicy, SubscriberOverflowError, SubscriptionStatistics
from rtbus.gateway import RemoteSubscription
from rtbus.service import Service

settle = trio.testing.wait_all_tasks_blocked


def seqs(envelopes: list[Envelope]) -> list[int]:
    return [envelope.seq for envelope in envelopes]


async def fill_window(service: Service) -> None:
    await publish(service, "s1", "test.x", 2)
    await settle()


def subscriptions(service: Service) -> int:
    """Subscriptions on the service's bus (the service itself holds none)."""
    return service.bus.statistics().subscriptions


def gateway_side(service: Service) -> SubscriptionStatistics:
    """The one subscription the gateway holds."""
    (ours,) = service.bus.subscription_statistics()
    return ours


async def test_filters_by_type_glob_exact_type_and_session(
    gateway: GatewayApp, service: Service
) -> None:
    async with (
        client(gateway) as bus,
        bus.subscribe(types=["test.a.*", "test.b"], sessions=["s1", "s2"]) as sub,
    ):
        await publish(service, "s1", "test.a.one")  # s1 #1: taken
        await publish(service, "s1", "test.c")  # s1 #2: not the type
        await publish(service, "s3", "test.b")  # s3 #1: not the session
        await publish(service, "s2", "test.b")  # s2 #1: taken
        await publish(service, "s2", "test.bb")  # s2 #2: not exact
        await publish(service, "s1", "test.a.two")  # s1 #3: taken
        got = await take(sub, 3)
        await settle()
        assert sub.statistics().queued == 0  # and nothing else came
    assert [(e.session_id, e.seq, e.type) for e in got] == [
        ("s1", 1, "test.a.one"),
        ("s2", 1, "test.b"),
        ("s1", 3, "test.a.two"),
    ]
    assert got[0].event.payload == {"type": "test.a.one", "event_id": "evt"}  # type: ignore[attr-defined]


async def test_statistics_have_the_in_process_shape(gateway: GatewayApp, service: Service) -> None:
    async with client(gateway) as bus, bus.subscribe(maxsize=8, overflow="drop_oldest") as sub:
        await publish(service, "s1", "test.x", 3)
        await take(sub, 2)
        await settle()
        stats = sub.statistics()
    assert stats == SubscriptionStatistics(
        delivered=2,
        dropped=0,
        lag=0,
        queued=1,
        maxsize=8,
        policy=OverflowPolicy.DROP_OLDEST,
        redelivered=0,
        publishers_waiting=0,
    )


async def test_block_back_pressures_the_publisher_and_loses_nothing(
    gateway: GatewayApp, service: Service
) -> None:
    published: list[int] = []

    async def publisher() -> None:
        for i in range(10):
            await publish(service, "s1", "test.x")
            published.append(i)

    async with (
        client(gateway) as bus,
        bus.subscribe(maxsize=4, overflow="block") as sub,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(publisher)
        await settle()
        # The subscription absorbs maxsize envelopes, like an in-process one; then the
        # publisher waits on the service's half of it.
        assert len(published) == 4
        assert gateway_side(service).publishers_waiting == 1
        got = await take(sub, 10)
    assert seqs(got) == list(range(1, 11))
    assert sub.statistics().dropped == 0


async def test_drop_newest_counts_what_it_dropped(gateway: GatewayApp, service: Service) -> None:
    async with client(gateway) as bus, bus.subscribe(maxsize=4, overflow="drop_newest") as sub:
        await fill_window(service)
        await publish(service, "s1", "test.x", 8)
        await settle()
        got = await take(sub, 4)
        lags = [sub.statistics().lag]
        await publish(service, "s1", "test.x")
        got.append(await sub.receive())
        lags.append(sub.statistics().lag)
        stats = sub.statistics()
    assert seqs(got) == [1, 2, 3, 4, 11]
    assert stats.dropped == 6
    assert lags == [0, 0]  # the drops came before 3; the 11th followed without any


async def test_drop_oldest_reports_the_lag_before_the_next_envelope(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus, bus.subscribe(maxsize=4, overflow="drop_oldest") as sub:
        await fill_window(service)
        await publish(service, "s1", "test.x", 8)
        await settle()
        got, lags = [], []
        for _ in range(4):
            got.append(await sub.receive())
            lags.append(sub.statistics().lag)
    # The two in the client's window were on their way; the service dropped the oldest of
    # what it still held, and said so with the next one.
    assert seqs(got) == [1, 2, 9, 10]
    assert lags == [0, 0, 6, 0]
    assert sub.statistics().dropped == 6


async def test_disconnect_ends_the_subscription_with_an_overflow_error(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus:
        sub = bus.subscribe(maxsize=4, overflow="disconnect")
        await sub.wait_registered()
        await fill_window(service)
        await publish(service, "s1", "test.x", 8)
        await settle()
        # The service tells the client at once, even with no credit to send events against,
        # and the error discards what waits here, as an overflow does in process.
        with pytest.raises(SubscriberOverflowError) as caught:
            await sub.receive()
        assert caught.value.maxsize == 4
        assert caught.value.dropped == 5  # #3 and #4 held, #5 did not fit, #1 and #2 here
        assert sub.closed
        assert subscriptions(service) == 0
        with pytest.raises(SubscriberOverflowError):
            await sub.receive()  # every later read too


async def test_a_slow_subscription_does_not_hold_up_another_on_the_same_connection(
    gateway: GatewayApp, service: Service
) -> None:
    async with (
        client(gateway) as bus,
        bus.subscribe(types="slow.*", maxsize=2) as slow,
        bus.subscribe(types="fast.*", maxsize=32) as fast,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(publish, service, "s1", "slow.x", 5)  # blocks after 2
        await settle()
        await publish(service, "s2", "fast.x", 20)  # would block too if 'fast' stalled
        got = await take(fast, 20)
        assert seqs(got) == list(range(1, 21))
        assert seqs(await take(slow, 5)) == list(range(1, 6))


async def test_closing_the_subscription_closes_the_service_side(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus:
        async with bus.subscribe() as sub:
            assert subscriptions(service) == 1
        await settle()
        assert subscriptions(service) == 0
        with pytest.raises(trio.ClosedResourceError):
            await sub.receive()


async def test_the_subscription_ends_when_the_client_closes(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus:
        sub: RemoteSubscription = bus.subscribe()
        await sub.wait_registered()
        await publish(service, "s1", "test.x", 2)
        await settle()
    # Like an in-process subscription when its bus closes: what it holds, then the end.
    assert seqs([envelope async for envelope in sub]) == [1, 2]
    await settle()
    assert subscriptions(service) == 0


async def test_a_bad_argument_raises_at_once_as_in_process(gateway: GatewayApp) -> None:
    from rtbus.bus import BusArgumentError

    async with client(gateway) as bus:
        bad: list[dict[str, Any]] = [{"overflow": "sometimes"}, {"maxsize": 0}, {"types": []}]
        for arguments in bad:
            with pytest.raises(BusArgumentError):
                bus.subscribe(**arguments)
