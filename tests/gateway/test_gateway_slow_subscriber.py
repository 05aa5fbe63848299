"""A gateway client that stops reading holds the sessions up for its ``block_timeout`` once,
then is cut loose: the proof that one slow consumer does not freeze the fleet.

The whole HTTP surface is served (``/v1/bus``, ``/readyz``, ``/metrics``) for a service on the
simulator, on the autojump clock: the timeouts pass as soon as everything waits on them, and
every frame on loopback has been read by then.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from support.events import ev
from support.gateway import FAST
from support.http_client import HttpResponse, request
from support.upstream import CREATE, take_until, upstream

from rtbus import ServiceConfig
from rtbus.bus import (
    BusLimits,
    Envelope,
    OverflowPolicy,
    SubscriberDisconnected,
    SubscriberTooSlowError,
)
from rtbus.gateway import GatewayError, connect
from rtbus.service import HttpConfig, Service, open_service
from rtbus.service._http import HttpAddress, serve_http
from rtbus.sim import SimServer

TOKEN = "rtbus-slow-subscriber-test-token"
LIMITS = BusLimits(remote_block_timeout=5.0, blocked_warn_seconds=1.0)
SESSIONS = ("s1", "s2", "s3")


@pytest.fixture
async def served(sim: SimServer) -> AsyncIterator[tuple[Service, HttpAddress]]:
    config = ServiceConfig(upstream=upstream(sim), bus_limits=LIMITS)
    async with open_service(config) as svc, trio.open_nursery() as nursery:
        address = await nursery.start(serve_http, svc, HttpConfig(port=0, token=TOKEN))
        yield svc, address
        nursery.cancel_scope.cancel()


async def get(address: HttpAddress, path: str) -> HttpResponse:
    return await request(address.url, "GET", path, headers=[("authorization", f"Bearer {TOKEN}")])


async def metric(address: HttpAddress, series: str) -> float:
    text = (await get(address, "/metrics")).body.decode()
    (line,) = [line for line in text.splitlines() if line.startswith(series + " ")]
    return float(line.rpartition(" ")[2])


def assert_contiguous(envelopes: list[Envelope]) -> None:
    for session in SESSIONS:
        seqs = [e.seq for e in envelopes if e.session_id == session]
        assert seqs == list(range(1, len(seqs) + 1)), session


async def test_a_gateway_subscriber_that_stops_reading_is_cut_loose_and_the_fleet_goes_on(
    served: tuple[Service, HttpAddress], autojump_clock: trio.testing.MockClock
) -> None:
    svc, address = served
    url = f"ws://{address.host}:{address.port}/v1/bus"
    async with (
        svc.bus.subscribe(sessions=SESSIONS, maxsize=100_000) as healthy,
        svc.bus.subscribe(types="rtbus.bus.*") as notices,
        connect(url, token=TOKEN, backoff=FAST) as remote,
        remote.subscribe(types="rtbus.bus.*") as remote_notices,  # a healthy one beside
        connect(url, token=TOKEN, backoff=FAST) as other,
        other.subscribe(sessions=SESSIONS, maxsize=60_000) as other_client,  # and another
    ):
        sessions = [await svc.open_session(id=id) for id in SESSIONS]
        stalled = remote.subscribe(sessions=SESSIONS, maxsize=4)  # block; never read
        await stalled.wait_registered()
        for session in sessions:
            await session.send(CREATE)
        await trio.sleep(3.2)  # the sessions wait on `stalled` (the timeout is 5 s)

        blocked = await get(address, "/readyz")
        assert blocked.status == 503
        problem = blocked.json()["checks"]["bus"]
        assert problem.startswith("a publisher blocked 3.2s on <Subscription ")
        assert "block_timeout=5s" in problem
        assert await metric(address, "rtbus_bus_publisher_blocked_seconds_max") >= 3.2

        # Reading `stalled` now would take what waits in the client and grant credit: first
        # wait for the cut (announced on the bus) and for its error frame to arrive.
        notice = await notices.receive()
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(SubscriberTooSlowError) as caught:
            await stalled.receive()
        assert caught.value.block_timeout == 5.0  # the service's, as it answered
        assert caught.value.dropped > 0

        # The fleet went on: every session finishes its response and takes another.
        got: list[Envelope] = []
        for _ in SESSIONS:
            got += await take_until(healthy, "response.done")
        for session in sessions:
            await session.send(CREATE)
        for _ in SESSIONS:
            got += await take_until(healthy, "response.done")
        assert [e.type for e in got].count("response.done") == 6
        assert_contiguous(got)
        from_other = [await other_client.receive() for _ in got]
        assert [(e.session_id, e.seq) for e in from_other] == [(e.session_id, e.seq) for e in got]

        remote_notice = await remote_notices.receive()
        assert notice.type == remote_notice.type == "rtbus.bus.subscriber_disconnected"
        assert notice.session_id == remote_notice.session_id == "rtbus/bus"
        assert isinstance(remote_notice.event, SubscriberDisconnected)
        assert remote_notice.event.reason == "too_slow"
        assert remote_notice.event.dropped == caught.value.dropped - 2

        ready = await get(address, "/readyz")
        assert (ready.status, ready.json()["checks"]["bus"]) == (200, "ok")
        disconnected = 'rtbus_bus_subscribers_disconnected_total{policy="block",reason="too_slow"}'
        assert await metric(address, disconnected) == 1
        assert await metric(address, 'rtbus_bus_dropped_total{policy="block"}') > 0
        assert await metric(address, "rtbus_bus_publisher_blocked_seconds_max") == 0
        assert svc.bus.statistics().dropped[OverflowPolicy.BLOCK] == notice.event.dropped  # type: ignore[attr-defined]


async def test_a_client_may_ask_for_a_shorter_block_timeout_not_a_longer_one(
    served: tuple[Service, HttpAddress], autojump_clock: trio.testing.MockClock
) -> None:
    svc, address = served
    url = f"ws://{address.host}:{address.port}/v1/bus"
    async with connect(url, token=TOKEN, backoff=FAST) as remote:
        with pytest.raises(GatewayError, match="at most 5") as refused:
            await remote.subscribe(block_timeout=60).wait_registered()
        assert refused.value.code == "invalid_field"
        async with remote.subscribe(sessions="s1", maxsize=2, block_timeout=0.5) as stalled:
            start = trio.current_time()
            for _ in range(3):  # one in the client, one in the service, one waits
                await svc.bus.publish("s1", "test.x", ev(), received_at=0.0)
            assert trio.current_time() - start == pytest.approx(0.5)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(SubscriberTooSlowError) as caught:
                await stalled.receive()
        assert caught.value.block_timeout == 0.5
        assert caught.value.dropped == 3
        assert "0.5s" in str(caught.value)
