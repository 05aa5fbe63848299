"""The client's keepalive: a connection that died without a word (half-open: a NAT or a load
balancer forgot it) is found by an unanswered ping and replaced, with nothing to write.

Real sockets through a relay the test can cut (``support.tcp_proxy``), so real time: short
intervals, and a deadline on every wait.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from support.gateway import FAST, TOKEN, GatewayApp, publish
from support.tcp_proxy import TcpProxy

from rtbus.gateway import GatewayReconnected, connect
from rtbus.protocol import ConfigError
from rtbus.service import Service


@pytest.fixture
async def proxy(gateway: GatewayApp, nursery: trio.Nursery) -> TcpProxy:
    relay = TcpProxy(gateway.port)
    await nursery.start(relay.run)
    return relay


async def test_a_half_open_connection_is_found_by_a_ping_and_replaced(
    proxy: TcpProxy, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus.bus.remote")
    async with (
        connect(
            proxy.url, token=TOKEN, backoff=FAST, keepalive_interval=0.1, pong_timeout=0.3
        ) as bus,
        bus.subscribe(sessions="s1") as sub,
    ):
        proxy.cut()  # from now on nothing comes back, and nothing says so
        with trio.fail_after(5):
            reconnected = await sub.receive()
        await publish(service, "s1", "test.x")
        with trio.fail_after(5):
            event = await sub.receive()
    assert isinstance(reconnected.event, GatewayReconnected)
    assert (event.session_id, event.seq, event.type) == ("s1", 1, "test.x")
    assert proxy.connections == 2
    lost = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
    assert lost == ["gateway connection lost: the gateway answered no ping within 0.3s"]


async def test_a_live_connection_answers_its_pings_and_stays(
    proxy: TcpProxy, service: Service
) -> None:
    async with (
        connect(proxy.url, token=TOKEN, keepalive_interval=0.05, pong_timeout=1.0) as bus,
        bus.subscribe(sessions="s1") as sub,
    ):
        idle = proxy.bytes_from_clients
        await trio.sleep(0.5)  # about ten rounds of pings, in real time; nothing else is sent
        assert proxy.bytes_from_clients > idle
        await publish(service, "s1", "test.x")
        with trio.fail_after(5):
            event = await sub.receive()
    assert (event.session_id, event.seq) == ("s1", 1)  # not a reconnect
    assert proxy.connections == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("keepalive_interval", 0), ("keepalive_interval", -1.0), ("pong_timeout", float("inf"))],
)
async def test_a_bad_keepalive_setting_is_refused_before_connecting(
    option: str, value: float
) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=f"^{option}: must be a positive number of seconds"):
        async with connect("ws://127.0.0.1:1/v1/bus", **options):
            raise AssertionError("connected with a bad setting")
