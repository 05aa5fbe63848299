"""Keepalive and close timeouts, on the virtual clock against servers that stop answering."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from transport_upstream import deaf, hold_open, start_raw_upstream, start_upstream

from rtbus.protocol import RealtimeError
from rtbus.transport import CloseStatus, ConnectOptions, KeepaliveTimeoutError, open_realtime

KEEPALIVE = ConnectOptions(keepalive_interval=5, pong_timeout=3, close_timeout=2)


async def test_a_silent_peer_fails_the_keepalive(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = await start_raw_upstream(nursery, deaf)
    async with open_realtime(upstream.config(), options=KEEPALIVE) as rt:
        start = trio.current_time()
        with pytest.raises(RealtimeError, match="no pong within 3s") as caught:
            await rt.dispatch_events()
        assert trio.current_time() - start == pytest.approx(5 + 3)
        assert isinstance(caught.value.__cause__, KeepaliveTimeoutError)
        assert rt.close_status == CloseStatus(1006, "keepalive timeout")
        assert rt.statistics().pings_sent == 1


async def test_a_handled_keepalive_failure_ends_reading(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = await start_raw_upstream(nursery, deaf)
    errors: list[RealtimeError] = []
    async with open_realtime(upstream.config(), options=KEEPALIVE) as rt:
        rt.on("error", errors.append)
        await rt.dispatch_events()
    assert [type(e.__cause__) for e in errors] == [KeepaliveTimeoutError]


async def test_a_live_peer_answers_every_ping(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = await start_upstream(nursery, hold_open)
    async with open_realtime(upstream.config(), options=KEEPALIVE) as rt:
        await trio.sleep(5 * 3 + 1)
        stats = rt.statistics()
    assert (stats.pings_sent, stats.pongs_received) == (3, 3)
    assert stats.last_pong_rtt is not None
    assert 0 <= stats.last_pong_rtt < 3


async def test_no_keepalive_sends_no_pings(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = await start_upstream(nursery, hold_open)
    async with open_realtime(
        upstream.config(), options=ConnectOptions(keepalive_interval=None)
    ) as rt:
        await trio.sleep(600)
    assert rt.statistics().pings_sent == 0


async def test_aclose_gives_up_on_a_peer_that_never_closes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = await start_raw_upstream(nursery, deaf)
    async with open_realtime(upstream.config(), options=KEEPALIVE) as rt:
        start = trio.current_time()
        await rt.aclose(1000, "bye")
        assert trio.current_time() - start == pytest.approx(2)
        await rt.aclose()  # Idempotent, and at once.
        assert trio.current_time() - start == pytest.approx(2)
    assert rt.close_status == CloseStatus(1000, "bye")
