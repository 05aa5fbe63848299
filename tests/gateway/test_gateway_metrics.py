"""The gateway's metrics on the service's registry, and the gateway behind the real HTTP
surface (``serve_http`` routes ``/v1/bus`` to it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.gateway import TOKEN, GatewayApp, client, publish, raw_socket, take
from support.http_client import request

from rtbus.gateway import GatewayConnectionError, connect
from rtbus.service import HttpAddress, HttpConfig, Service, serve_http
from rtbus.service._gateway import REFUSALS


def samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(service.metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("rtbus_gateway")
        for sample in family.samples
    }


async def test_connections_frames_and_errors_are_counted(
    gateway: GatewayApp, service: Service
) -> None:
    async with raw_socket(gateway) as raw:
        await raw.ask({"op": "subscribe", "req": 1, "sub": "a"})
        await publish(service, "s1", "test.x")
        await raw.frame()
        await raw.ask(b"not json")
        await raw.ask({"op": "teleport", "req": 2})
        await raw.ask({"op": "teleport", "req": 3})
        during = samples(service)
    await gateway.wait_connections(0)
    after = samples(service)
    assert during[("rtbus_gateway_connections", ())] == 1
    assert during[("rtbus_gateway_frames_total", (("direction", "in"),))] == 4
    assert during[("rtbus_gateway_frames_total", (("direction", "out"),))] == 5
    assert during[("rtbus_gateway_errors_total", (("code", "not_json"),))] == 1
    assert during[("rtbus_gateway_errors_total", (("code", "unknown_op"),))] == 2
    assert after[("rtbus_gateway_connections", ())] == 0


@pytest.fixture
async def http(service: Service) -> AsyncIterator[HttpAddress]:
    async with trio.open_nursery() as nursery:
        address: HttpAddress = await nursery.start(
            serve_http, service, HttpConfig(port=0, token=TOKEN)
        )
        yield address
        nursery.cancel_scope.cancel()


async def test_the_gateway_metrics_show_at_the_first_scrape(http: HttpAddress) -> None:
    # Before any connection: a dashboard or an alert on them must not see "no data".
    response = await request(http.url, "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    assert [s.value for s in families["rtbus_gateway_connections"].samples] == [0]
    frames = {
        s.labels["direction"]: s.value
        for s in families["rtbus_gateway_frames"].samples
        if s.name == "rtbus_gateway_frames_total"
    }
    assert frames == {"in": 0, "out": 0}
    assert families["rtbus_gateway_errors"].type == "counter"
    refused = {s.labels["reason"]: s.value for s in families["rtbus_gateway_refused"].samples}
    assert refused == dict.fromkeys(REFUSALS, 0)


async def refused_after(http: HttpAddress, head: bytes) -> dict[str, float]:
    """Send ``head`` on a connection of its own, read until the service is done with it;
    the refusals counted then."""
    async with await trio.open_tcp_stream("127.0.0.1", http.port) as stream:
        await stream.send_all(head)
        while await stream.receive_some():
            pass  # the answer, then the end (a refused upgrade's close frame, answered or not)
    response = await request(http.url, "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    return {s.labels["reason"]: s.value for s in families["rtbus_gateway_refused"].samples}


UPGRADE = (
    b"GET /v1/bus HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
)


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"GET /v1/bus HTTP/1.1\r\nHost: x\r\n\r\n", "not_an_upgrade"),
        (b"GET /v1/bus HTTP/1.1\r\nNo colon here\r\n\r\n", "bad_request"),
        (UPGRADE + b"Authorization: Bearer wrong\r\n\r\n", "token"),
        (UPGRADE + f"Authorization: Bearer {TOKEN}\r\n".encode()
         + b"Sec-WebSocket-Protocol: chat\r\n\r\n", "subprotocol"),
    ],
)  # fmt: skip
async def test_a_refused_connection_is_counted_by_its_reason(
    http: HttpAddress, head: bytes, reason: str, autojump_clock: trio.testing.MockClock
) -> None:
    # autojump_clock: a refused upgrade's close waits a grace for an answer this never sends.
    assert await refused_after(http, head) == dict.fromkeys(REFUSALS, 0) | {reason: 1}


async def test_the_http_surface_serves_the_gateway_at_v1_bus(
    http: HttpAddress, service: Service
) -> None:
    async with connect(http.url, token=TOKEN) as bus, bus.subscribe(types="test.*") as sub:
        await publish(service, "s1", "test.x")
        envelope = await sub.receive()
        assert (envelope.session_id, envelope.seq, envelope.type) == ("s1", 1, "test.x")
        assert samples(service)[("rtbus_gateway_connections", ())] == 1
        metrics = generate_latest(service.metrics.registry).decode()
    assert 'rtbus_http_requests_total{method="GET",route="other",status="404"}' not in metrics


async def test_a_burst_crosses_in_fewer_messages_than_frames(
    gateway: GatewayApp, service: Service
) -> None:
    # Each publish is a checkpoint, so without gathering the forwarder would write about one
    # event per message; gathering turn after turn puts a burst in a few messages.
    async with client(gateway) as bus, bus.subscribe(types="test.*", maxsize=256) as sub:
        before = samples(service)
        await publish(service, "s1", "test.x", n=100)
        assert len(await take(sub, 100)) == 100
        after = samples(service)
    out = ("rtbus_gateway_frames_total", (("direction", "out"),))
    messages = ("rtbus_gateway_messages_sent_total", ())
    assert after[out] - before[out] == 100
    assert after[messages] - before[messages] <= 10


async def test_a_refused_handshake_says_where_and_never_shows_the_token(http: HttpAddress) -> None:
    url = http.url.replace("http://", "ws://") + "/v1/not-the-bus"
    with pytest.raises(GatewayConnectionError) as caught:
        async with connect(url, token=TOKEN):
            raise AssertionError("connected to a path that is not the gateway")
    message = str(caught.value)
    assert message.startswith(f"could not connect to {url}: ")
    assert "HTTP 404" in message
    assert TOKEN not in message
    assert TOKEN not in repr(caught.value)
