"""Ending a subscription or a connection: the gateway lets go at once and logs nothing.

The client's close waits up to its close timeout (10 s) for the server's answer, so an
endpoint that fails as a client leaves would make every ``rtbus tail`` stop slowly; these
bound it by real time (the sockets are real: no autojump clock).
"""

from __future__ import annotations

import logging

import orjson
import pytest
import trio
import trio_websocket
from support.gateway import TOKEN, GatewayApp, client, publish

from rtbus.gateway import SUBPROTOCOL
from rtbus.service import Service

PROMPTLY = 2.0  # seconds of real time; the client's close timeout is 10


@pytest.fixture(autouse=True)
def quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)


def assert_nothing_logged(caplog: pytest.LogCaptureFixture) -> None:
    """No warning or error from anyone: hypercorn ("Error in ASGI Framework"), rtbus."""
    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == []


async def test_closing_a_subscription_ends_its_forwarder_quietly(
    gateway: GatewayApp, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    async with client(gateway) as bus:
        async with bus.subscribe() as sub:
            await publish(service, "s1", "test.x")
            await sub.receive()  # the server's forwarder now waits for the next envelope
        # Requests are read in order: once this is answered, the unsubscribe was handled.
        assert await bus.sessions() == ()
        assert service.bus.statistics().subscriptions == 0  # the service itself has none
        with trio.fail_after(PROMPTLY):
            await bus.aclose()
    with trio.fail_after(PROMPTLY):
        await gateway.wait_connections(0)
    assert_nothing_logged(caplog)


async def test_a_client_that_leaves_while_events_flow_is_let_go_at_once(
    gateway: GatewayApp, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(PROMPTLY):
        async with client(gateway) as bus:
            first = bus.subscribe(maxsize=4, overflow="drop_oldest")  # its buffer fills
            second = bus.subscribe(types="test.*")
            await first.wait_registered()
            await second.wait_registered()
            await publish(service, "s1", "test.x", 20)
            await first.receive()
            await second.receive()
        await gateway.wait_connections(0)
    assert service.bus.statistics().subscriptions == 0
    assert_nothing_logged(caplog)


async def test_a_client_that_vanishes_without_a_close_is_let_go_quietly(
    gateway: GatewayApp, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
    stream = await trio.open_tcp_stream("127.0.0.1", gateway.port)
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            "127.0.0.1",
            "/v1/bus",
            subprotocols=[SUBPROTOCOL],
            extra_headers=headers,
        )
        await ws.send_message(orjson.dumps({"op": "subscribe", "req": 1, "sub": "a"}))
        assert orjson.loads(await ws.get_message())["frame"] == "result"
        await publish(service, "s1", "test.x", 5)
        await ws.get_message()
        await trio.aclose_forcefully(stream)  # as a killed process: no close frame
        nursery.cancel_scope.cancel()
    with trio.fail_after(PROMPTLY):
        await gateway.wait_connections(0)
    assert service.bus.statistics().subscriptions == 0
    assert_nothing_logged(caplog)
