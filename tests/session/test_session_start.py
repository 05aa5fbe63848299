"""A session stopped before it is ready ends at once, against rtbus.sim on the virtual clock.

Cancelling a starting session cancels its connection's reader too, so nobody is left to read
the server's answer to a close frame; and an upstream that did not answer ``session.update``
within ``ready_timeout`` will not answer a close frame either. A session that waited for that
answer anyway would take ``close_timeout`` (5 s) longer than each test here allows.
"""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing
from support.upstream import upstream

from rtbus import SessionSpec, open_service
from rtbus.actors import ChildStartFailed, Fatal
from rtbus.service import Service
from rtbus.session import HandshakeTimeoutError
from rtbus.sim import SimServer
from rtbus.transport import ReconnectPolicy

# Every connection stalls right after session.created: session.updated never comes.
STALLING = {"sim_fault": "stall"}


async def test_open_session_cancelled_before_ready_returns_at_once(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    # A healthy upstream, that would answer a close frame at once if anyone could read it.
    async with open_service(upstream(sim)) as svc:
        async with (
            trio.open_nursery() as opening,
            # Room for one envelope: once session.created is taken, the session can publish
            # session.updated but not rtbus.session.ready, so it is not ready at the cancel.
            svc.bus.subscribe(sessions="s1", maxsize=1, overflow="block") as sub,
        ):
            opening.start_soon(functools.partial(svc.open_session, id="s1"))
            assert (await sub.receive()).type == "session.created"
            opening.cancel_scope.cancel()
            cancelled_at = trio.current_time()
        assert trio.current_time() - cancelled_at == pytest.approx(0)
        assert "s1" not in svc.sessions


async def test_open_session_cancelled_on_a_stalled_upstream_returns_at_once(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc:
        start = trio.current_time()
        with trio.move_on_after(1) as waited:
            await svc.open_session(id="s1", spec=SessionSpec(extra_query=STALLING))
        assert waited.cancelled_caught
        assert trio.current_time() - start == pytest.approx(1)
        assert "s1" not in svc.sessions


async def test_a_handshake_timeout_aborts_the_connection_at_once(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = SessionSpec(
        extra_query=STALLING, ready_timeout=2, reconnect=ReconnectPolicy(max_attempts=0)
    )
    async with open_service(upstream(sim)) as svc:
        start = trio.current_time()
        with pytest.raises(ChildStartFailed) as failed:
            await svc.open_session(id="s1", spec=spec)
        assert trio.current_time() - start == pytest.approx(2)
    assert isinstance(failed.value.__cause__, Fatal)
    assert isinstance(failed.value.__cause__.__cause__, HandshakeTimeoutError)


async def test_a_start_bounded_by_the_caller_ends_on_time_while_handshakes_time_out(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    # The shape of POST /v1/sessions answering 504: handshakes time out after 2 s and are
    # retried; the caller gives up after 5 s, which must be when it gets control back.
    spec = SessionSpec(extra_query=STALLING, ready_timeout=2)
    async with open_service(upstream(sim)) as svc:
        start = trio.current_time()
        with trio.move_on_after(5) as waited:
            await svc.open_session(id="s1", spec=spec)
        assert waited.cancelled_caught
        assert trio.current_time() - start == pytest.approx(5)
        assert sim.statistics().connections_total >= 2, "the timed-out handshake was retried"


async def test_closing_the_service_while_a_session_starts_is_prompt(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async def open_until_closed(svc: Service) -> None:
        with pytest.raises(trio.ClosedResourceError):
            await svc.open_session(id="s1", spec=SessionSpec(extra_query=STALLING))

    async with open_service(upstream(sim)) as svc, trio.open_nursery() as opening:
        async with svc.bus.subscribe(sessions="s1", types="session.created") as sub:
            opening.start_soon(open_until_closed, svc)
            await sub.receive()
        start = trio.current_time()
        await svc.aclose()
        assert trio.current_time() - start == pytest.approx(0)
