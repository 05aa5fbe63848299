"""The session actor end to end: rtbus.service against rtbus.sim on loopback."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing
from support.upstream import CREATE, MODEL, first_connect_only, take_until, upstream

from rtbus import ServiceConfig, SessionSpec, open_service
from rtbus.actors import ChildStartFailed, Fatal, RestartIntensity
from rtbus.bus import Envelope, Subscription
from rtbus.session import SessionState
from rtbus.sim import SimServer
from rtbus.transport import ConnectionRejectedError


def assert_contiguous(envelopes: list[Envelope]) -> None:
    assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1))


async def test_ready_after_config_applied_and_every_event_published_in_order(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(sessions="s1") as sub:
        session = await svc.open_session(id="s1", session={"instructions": "Be brief."})
        assert session.state is SessionState.READY
        await session.send(CREATE)
        envelopes = await take_until(sub, "response.done")
    assert [e.type for e in envelopes[:3]] == [
        "session.created",
        "session.updated",
        "rtbus.session.ready",
    ]
    assert envelopes[1].event.session.instructions == "Be brief."  # type: ignore[attr-defined]
    assert_contiguous(envelopes)
    assert all(e.session_id == "s1" for e in envelopes)
    assert "response.output_audio.delta" in {e.type for e in envelopes}


async def test_dropped_mid_response_reconnects_reapplies_config_and_says_so(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "drop:after_events=6")
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(sessions="s1") as sub:
        session = await svc.open_session(id="s1", spec=spec, session={"instructions": "Hi."})
        await session.send(CREATE)
        before = await take_until(sub, "rtbus.session.reconnected")
        await session.send(CREATE)
        after = await take_until(sub, "response.done")
    types = [e.type for e in before]
    assert "response.done" not in types, "the drop came mid-response"
    assert types[-4:] == [
        "rtbus.session.disconnected",
        "session.created",
        "session.updated",
        "rtbus.session.reconnected",
    ]
    assert before[-2].event.session.instructions == "Hi."  # type: ignore[attr-defined]
    assert before[-1].event.reason.startswith("connection closed with code 1006")  # type: ignore[attr-defined]
    assert_contiguous(before + after)
    assert sim.statistics().connections_total == 2


async def test_session_expired_reconnects(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "expire:after_events=2")
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(sessions="s1", types=["error", "rtbus.*"]) as sub,
    ):
        await svc.open_session(id="s1", spec=spec)
        envelopes = await take_until(sub, "rtbus.session.reconnected")
    assert envelopes[0].type == "rtbus.session.ready"
    assert envelopes[1].event.error.code == "session_expired"  # type: ignore[attr-defined]
    assert envelopes[-1].event.attempt == 1  # type: ignore[attr-defined]


async def test_bad_key_is_fatal_and_not_retried(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim, key="sk-wrong")) as svc:
        with pytest.raises(ChildStartFailed) as info:
            await svc.open_session(id="s1")
        assert isinstance(info.value.__cause__, Fatal)
        rejected = info.value.__cause__.__cause__
        assert isinstance(rejected, ConnectionRejectedError)
        assert rejected.status == 401
        assert "sk-wrong" not in str(info.value.__cause__)
        assert svc.sessions == {}
    stats = sim.statistics()
    assert (stats.connections_total, stats.handshakes_rejected) == (1, 1), "never retried"


async def test_fatal_error_event_fails_the_session_for_good(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = SessionSpec(extra_query={"sim_fault": "error:insufficient_quota:after_events=2"})
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types=["rtbus.session.failed", "rtbus.actor.*"]) as sub,
    ):
        session = await svc.open_session(id="s1", spec=spec)
        failed = await take_until(sub, "rtbus.session.failed")
        await take_until(sub, "rtbus.actor.failed")
        assert "insufficient_quota" in failed[-1].event.reason  # type: ignore[attr-defined]
        assert session.state is SessionState.FAILED
        assert "s1" not in svc.sessions
    assert sim.statistics().connections_total == 1


async def test_unhandled_recoverable_error_is_a_failure_that_restarts(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    spec = first_connect_only(sim, "error:invalid_value:after_events=2")
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(sessions="s1", types=["rtbus.*"]) as sub,
    ):
        session = await svc.open_session(id="s1", spec=spec)
        envelopes = await take_until(sub, "rtbus.session.reconnected")
        assert session.state is SessionState.READY
    assert [e.type for e in envelopes] == [
        "rtbus.session.ready",
        "rtbus.session.failed",
        "rtbus.session.reconnected",
    ]
    assert "handled by nobody" in envelopes[1].event.reason, "it says how to take errors"  # type: ignore[attr-defined]


async def test_recoverable_error_with_a_subscriber_keeps_the_session(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(types="error") as errors:
        session = await svc.open_session(id="s1")
        # Valid as an event (rtbus sends it), refused by the upstream: no such item.
        await session.send({"type": "conversation.item.delete", "item_id": "no_such_item"})
        error = await errors.receive()
        await session.send(CREATE)
        assert session.state is SessionState.READY
    assert error.event.error.param == "item_id"  # type: ignore[attr-defined]
    assert error.event.error.event_id.startswith("s1:"), "rtbus stamped the event id"  # type: ignore[attr-defined]
    assert sim.statistics().connections_total == 1


@pytest.mark.parametrize("sequenced", [True, False])
async def test_response_create_waits_for_the_running_response(
    sim: SimServer, autojump_clock: trio.testing.MockClock, sequenced: bool
) -> None:
    spec = SessionSpec(sequence_responses=sequenced)
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types=["response.done", "error"]) as sub,
    ):
        session = await svc.open_session(id="s1", spec=spec)
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(session.send, CREATE)
        seen = [(await sub.receive()).type for _ in range(3 if sequenced else 2)]
    if sequenced:
        assert seen == ["response.done"] * 3
    else:
        assert "error" in seen, "without sequencing the server refuses the second response"


async def test_close_session_drains_and_closes(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc, svc.bus.subscribe(sessions="s1") as sub:
        session = await svc.open_session(id="s1")
        await session.send(CREATE)
        await svc.close_session("s1")
        envelopes = await take_until(sub, "rtbus.session.closed")
    types = [e.type for e in envelopes]
    assert types.index("response.done") < types.index("rtbus.session.closed")
    assert envelopes[-1].event.reason == "closed by rtbus"  # type: ignore[attr-defined]
    assert session.state is SessionState.CLOSED
    assert_contiguous(envelopes)


async def test_worker_restarts_and_loses_nothing_under_block(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    handled: list[int] = []
    failed_once: set[int] = set()

    def flaky(envelope: Envelope) -> None:
        if envelope.seq % 5 == 0 and envelope.seq not in failed_once:
            failed_once.add(envelope.seq)
            raise RuntimeError(f"flaky on {envelope.seq}")
        handled.append(envelope.seq)

    config = ServiceConfig(
        upstream=upstream(sim), worker_intensity=RestartIntensity(max_restarts=20, period=60)
    )
    async with open_service(config) as svc:
        worker = await svc.add_worker(flaky, sessions="s1", maxsize=4)
        async with svc.bus.subscribe(sessions="s1", types="response.done") as done:
            session = await svc.open_session(id="s1")
            await session.send(CREATE)
            await done.receive()
        await svc.close_session("s1")
    assert failed_once, "the handler failed at least once"
    assert handled == list(range(1, len(handled) + 1)), "every envelope, in order, once"
    assert worker.statistics().redelivered == len(failed_once)


async def test_a_worker_given_up_on_never_stalls_the_sessions(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    def broken(envelope: Envelope) -> None:
        raise RuntimeError("always")

    config = ServiceConfig(
        upstream=upstream(sim), worker_intensity=RestartIntensity(max_restarts=1, period=60)
    )
    async with (
        open_service(config) as svc,
        svc.bus.subscribe(types=["rtbus.actor.gave_up", "response.done"]) as sub,
    ):
        worker = await svc.add_worker(broken, sessions="s1", maxsize=1)
        session = await svc.open_session(id="s1")
        await session.send(CREATE)
        seen = [e.type for e in await take_until(sub, "response.done")]
    assert "rtbus.actor.gave_up" in seen
    assert worker.statistics().delivered == 0


async def test_many_sessions_and_three_policies_count_exactly(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    sessions = [f"s{n}" for n in range(100)]

    # Slow readers, on the virtual clock: the block one paces the publishers, and the
    # drop ones read slower still, so they must drop to keep up.
    pace = {"block": 0.01, "drop_oldest": 0.05, "drop_newest": 0.05}

    async def drain(sub: Subscription, into: list[Envelope], seconds: float) -> None:
        async for envelope in sub:
            into.append(envelope)
            await trio.sleep(seconds)

    received: dict[str, list[Envelope]] = {"block": [], "drop_oldest": [], "drop_newest": []}
    async with open_service(upstream(sim)) as svc:
        subs = {p: svc.bus.subscribe(sessions=sessions, maxsize=8, overflow=p) for p in received}
        async with trio.open_nursery() as readers:
            for policy, sub in subs.items():
                readers.start_soon(drain, sub, received[policy], pace[policy])
            async with trio.open_nursery() as nursery:
                for sid in sessions:
                    nursery.start_soon(functools.partial(svc.open_session, id=sid))
            handles = list(svc.sessions.values())
            async with trio.open_nursery() as nursery:
                for session in handles:
                    nursery.start_soon(session.send, CREATE)
            for session in handles:
                await svc.close_session(session.id)
            # Closing the bus lets each subscription hand out what it holds, then end.
            await svc.bus.aclose()
    published = sum(session.statistics().events_published for session in handles)
    block = received["block"]
    assert len(block) == published > 100 * 10
    for sid in sessions:
        assert_contiguous([e for e in block if e.session_id == sid])
    for policy in ("drop_oldest", "drop_newest"):
        stats = subs[policy].statistics()
        assert stats.delivered == len(received[policy])
        assert stats.delivered + stats.dropped == published
        assert stats.dropped > 0
        kept = {(e.session_id, e.seq) for e in received[policy]}
        assert kept <= {(e.session_id, e.seq) for e in block}
    # drop_newest keeps the first of each burst, drop_oldest the last: the very last event
    # published reaches drop_oldest and not drop_newest.
    assert block[-1] in received["drop_oldest"]
    assert block[-1] not in received["drop_newest"]


async def test_ended_sessions_leave_nothing_behind(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A long-lived service must not grow with every session that ever ran."""
    fatal = SessionSpec(extra_query={"sim_fault": "error:insufficient_quota:after_events=2"})
    async with open_service(upstream(sim)) as svc:
        counters = []
        for n in range(4):
            async with svc.bus.subscribe(types="rtbus.session.failed") as failures:
                await svc.open_session(id=f"closed-{n}")
                await svc.close_session(f"closed-{n}")
                await svc.open_session(id=f"fatal-{n}", spec=fatal)
                await failures.receive()
            await trio.testing.wait_all_tasks_blocked()
            counters.append(svc.bus.statistics().sessions)
        assert counters == [counters[0]] * 4, "no sequence counter left per ended session"
        assert svc._sessions == {}, "no ended session left in the registry"


async def test_service_drain_is_bounded_by_one_grace_period(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    # Every upstream stalls mid-response, so no session can finish its response by itself.
    stalled = SessionSpec(model=MODEL, extra_query={"sim_fault": "stall:after_events=4"})
    config = ServiceConfig(upstream=upstream(sim), session_defaults=stalled, session_shutdown=5.0)
    async with open_service(config) as svc, svc.bus.subscribe(types="response.created") as sub:
        for n in range(10):
            await (await svc.open_session(id=f"s{n}")).send(CREATE)
        for _ in range(10):
            await sub.receive()
        started = trio.current_time()
        await svc.aclose()
    # The sessions drain together: one 5 s grace period in all, not ten in a row; past it the
    # cancelled sessions abort their sockets rather than wait for a close the peer never sends.
    assert trio.current_time() - started == pytest.approx(5.0, abs=0.5)
