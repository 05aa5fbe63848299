"""Losing the gateway and coming back: resubscription, gap detection, waiting requests.

The test app ends the server side of every connection (``kill``) and refuses new ones until
``release``, so events published in between are certainly lost to the client.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.gateway import GatewayApp, client, publish, take

from rtbus.bus import Undecoded
from rtbus.gateway import (
    GATEWAY_SESSION,
    GatewayConnectionError,
    GatewayError,
    GatewayGap,
    GatewayReconnected,
    RemoteSession,
)
from rtbus.service import Service


async def test_a_reconnected_subscriber_is_told_and_sees_the_gap(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus, bus.subscribe(sessions=["s1", "s2", "s3"]) as sub:
        await publish(service, "s1", "test.x", 2)
        await publish(service, "s2", "test.x")
        assert [(e.session_id, e.seq) for e in await take(sub, 3)] == [
            ("s1", 1),
            ("s1", 2),
            ("s2", 1),
        ]
        await gateway.kill(hold=True)
        await publish(service, "s1", "test.x", 2)  # s1 #3 and #4, while the client is away
        await publish(service, "s3", "test.x", 2)  # s3 #1 and #2: never seen before
        gateway.release()
        reconnected = await sub.receive()
        await publish(service, "s2", "test.x")  # s2 #2: nothing of s2 was lost
        await publish(service, "s1", "test.x")  # s1 #5
        await publish(service, "s3", "test.x")  # s3 #3
        after = await take(sub, 4)
    assert (reconnected.session_id, reconnected.type) == (
        GATEWAY_SESSION,
        "rtbus.gateway.reconnected",
    )
    assert isinstance(reconnected.event, GatewayReconnected)
    assert reconnected.event.attempt >= 1
    assert [(e.session_id, e.seq, e.type) for e in after] == [
        ("s2", 2, "test.x"),
        (GATEWAY_SESSION, 0, "rtbus.gateway.gap"),
        ("s1", 5, "test.x"),
        ("s3", 3, "test.x"),  # a session first seen now has no known gap
    ]
    assert after[1].event == GatewayGap(session_id="s1", expected=3, received=5)


async def test_a_raw_subscriber_gets_its_lifecycle_events_as_bytes(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus, bus.subscribe(raw=True) as sub:
        await publish(service, "s1", "test.x")
        await sub.receive()
        await gateway.kill()
        reconnected = await sub.receive()
    assert reconnected.event == Undecoded("rtbus.gateway.reconnected")
    assert reconnected.raw is not None
    assert b'"type":"rtbus.gateway.reconnected"' in reconnected.raw


async def test_a_request_made_while_away_waits_for_the_connection(
    gateway: GatewayApp, service: Service
) -> None:
    answers: list[tuple[RemoteSession, ...]] = []
    async with client(gateway) as bus:

        async def ask() -> None:
            answers.append(await bus.sessions())

        await gateway.kill(hold=True)
        await trio.testing.wait_all_tasks_blocked()  # the client has read the close
        assert not bus.connected
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            assert answers == []
            gateway.release()
    assert answers == [()]


async def test_a_token_refused_on_reconnect_fails_everything_for_good(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus:
        sub = bus.subscribe()
        await sub.wait_registered()
        gateway.token = "rotated-" + "0" * 16
        await gateway.kill()
        with pytest.raises(GatewayConnectionError) as caught:
            await sub.receive()
        assert caught.value.close_code == 1008
        with pytest.raises(GatewayConnectionError):
            await bus.sessions()
        with pytest.raises(GatewayConnectionError):
            bus.subscribe()
    assert gateway.connections == 0


async def test_a_service_that_shuts_down_says_so_with_1001(
    gateway: GatewayApp, service: Service
) -> None:
    async with client(gateway) as bus:
        sub = bus.subscribe()
        await sub.wait_registered()
        await service.bus.aclose()  # as the service does when it drains
        # The connection closes with 1001 and the client comes back; this bus takes no
        # subscriptions any more, and the service says why.
        with pytest.raises(GatewayError) as caught:
            await sub.receive()
    assert caught.value.code == "not_running"
