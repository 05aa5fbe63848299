"""Closing: a close handshake while the connection's reader can read the answer, an abort at
once when it cannot (its owner was cancelled), on the virtual clock.

The reader task runs under the owner of ``open_realtime``, so cancelling the owner cancels the
reader too: waiting for the server's close frame then could only end at ``close_timeout``.
"""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing
from support.upstream import KEY, upstream
from transport_upstream import deaf, start_raw_upstream

from rtbus.protocol._config import OpenAIConfig
from rtbus.sim import SimServer
from rtbus.transport import CloseStatus, ConnectOptions, open_realtime

# The default close timeout, 5 s: a wait for it cannot pass for "at once".
OPTIONS = ConnectOptions(close_timeout=5, keepalive_interval=None)


async def test_a_close_completes_the_handshake_with_a_live_server(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    config = upstream(sim)
    async with open_realtime(config, options=OPTIONS) as rt:
        assert (await rt.__anext__()).type == "session.created"
        start = trio.current_time()
        await rt.aclose(1000, "done")
        assert trio.current_time() - start == pytest.approx(0)
    assert rt.close_status == CloseStatus(1000, "done")


async def test_a_cancelled_owner_closes_at_once_though_the_server_would_answer(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    config = upstream(sim)
    with trio.CancelScope() as owner:
        async with open_realtime(config, options=OPTIONS) as rt:
            assert (await rt.__anext__()).type == "session.created"
            owner.cancel()
            cancelled_at = trio.current_time()
            await trio.sleep_forever()
    assert trio.current_time() - cancelled_at == pytest.approx(0)
    # Nothing went out: the stream was aborted, so the server saw no close frame.
    assert rt.close_status == CloseStatus(1006, "aborted: the close was cancelled")
    assert rt.statistics().close == rt.close_status


async def test_a_cancelled_owner_does_not_wait_for_a_deaf_server(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_raw_upstream(nursery, deaf)
    start = trio.current_time()
    with trio.move_on_after(1):
        async with open_realtime(server.config(), options=OPTIONS) as rt:
            await trio.sleep_forever()
    assert trio.current_time() - start == pytest.approx(1)
    assert rt.close_status == CloseStatus(1006, "aborted: the close was cancelled")


async def test_cancelling_a_close_stops_waiting_for_the_answer(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_raw_upstream(nursery, deaf)
    # A close that never marked itself done would leave the second waiting for ever.
    with trio.fail_after(60):
        async with open_realtime(server.config(), options=OPTIONS) as rt:
            start = trio.current_time()
            with trio.move_on_after(1):
                await rt.aclose(1000, "bye")
            assert trio.current_time() - start == pytest.approx(1)
            await rt.aclose()  # Closed already: at once.
            assert trio.current_time() - start == pytest.approx(1)
    # The close frame had gone out before the wait for the answer was cancelled.
    assert rt.close_status == CloseStatus(1000, "bye")


async def test_a_pre_cancelled_close_still_closes_and_then_raises_cancelled(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    config = upstream(sim)
    with trio.fail_after(60):
        async with open_realtime(config, options=OPTIONS) as rt:
            assert (await rt.__anext__()).type == "session.created"
            start = trio.current_time()
            with trio.CancelScope() as scope:
                scope.cancel()
                await rt.aclose()
            assert scope.cancelled_caught, "a cancelled call raises Cancelled"
            assert rt.close_status == CloseStatus(1006, "aborted: the close was cancelled")
            # Closed all the same: reading ends, a second close returns at once.
            assert [event.type async for event in rt] == []
            await rt.aclose()
            assert trio.current_time() - start == pytest.approx(0)


async def test_cancelled_during_the_websocket_handshake_ends_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # A server that accepts TCP and never answers the upgrade request.
    serve = functools.partial(trio.serve_tcp, deaf, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    port = listeners[0].socket.getsockname()[1]
    config = OpenAIConfig(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1")
    start = trio.current_time()
    with trio.move_on_after(1) as waited:
        async with open_realtime(config, options=OPTIONS):
            pytest.fail("the handshake cannot complete")
    assert waited.cancelled_caught
    assert trio.current_time() - start == pytest.approx(1)
