"""Failures stay where they happen: a session or a worker that keeps failing is given up on
alone, published and counted, while everything else goes on (a service on the simulator)."""

from __future__ import annotations

from collections import defaultdict

import pytest
import trio
import trio.testing
from metrics_support import Scrape
from support.upstream import CREATE, take_until, upstream

from rtbus import ServiceConfig, SessionSpec, open_service
from rtbus.actors import ActorGaveUp, RestartIntensity
from rtbus.bus import Envelope
from rtbus.service import SystemWorker
from rtbus.session import SessionState
from rtbus.sim import SimServer
from rtbus.transport import SendQueueClosed

# An error event after session.updated on every connection: nobody takes this session's
# errors, so each one fails its actor (as each refused POST did in the issue).
REFUSED_AGAIN_AND_AGAIN = SessionSpec(
    extra_query={"sim_fault": "error:invalid_value:after_events=2"}
)
BUDGET = RestartIntensity(max_restarts=3, period=60.0)


async def test_a_session_failing_again_and_again_exhausts_only_its_own_budget(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    config = ServiceConfig(upstream=upstream(sim), session_intensity=BUDGET)
    async with (
        open_service(config) as svc,
        svc.bus.subscribe(types=["rtbus.session.failed", "rtbus.actor.gave_up"]) as sub,
    ):
        good = [await svc.open_session(id=f"good-{n}") for n in range(3)]
        bad = await svc.open_session(id="bad", spec=REFUSED_AGAIN_AND_AGAIN)
        seen = await take_until(sub, "rtbus.actor.gave_up")
        # Every failure was the bad session's, and it said so each time, the last one too.
        assert [(e.type, e.session_id) for e in seen] == [
            *[("rtbus.session.failed", "bad")] * 4,
            ("rtbus.actor.gave_up", "root/sessions"),
        ]
        gave_up = seen[-1].event
        assert isinstance(gave_up, ActorGaveUp)
        assert (gave_up.child, gave_up.max_restarts, gave_up.period) == ("bad", 3, 60.0)
        assert gave_up.exception is not None
        # It is gone for good: dropped, and its senders are told.
        assert "bad" not in svc.sessions
        assert bad.state is SessionState.FAILED
        with pytest.raises(SendQueueClosed):
            await bad.send(CREATE)
        # The others never noticed, and the service goes on taking sessions.
        async with svc.bus.subscribe(types="response.done") as done:
            for session in good:
                await session.send(CREATE)
            answered = {(await done.receive()).session_id for _ in good}
        assert answered == {s.id for s in good}
        assert all(s.statistics().connects == 1 for s in good)
        await svc.open_session(id="late")
        assert svc.readiness().checks["supervision"] == "ok"
        scrape = Scrape(svc)
    assert scrape.value("rtbus_actor_gave_up_total", supervisor="root/sessions") == 1
    assert scrape.value("rtbus_supervisor_remaining_intensity", supervisor="root/sessions") == 3
    assert scrape.by("rtbus_actor_restarts_total", "outcome") == {"restarted": 3}


async def test_a_worker_raising_on_every_25th_envelope_is_given_up_on_alone(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    sessions = ["s1", "s2", "s3"]
    config = ServiceConfig(upstream=upstream(sim), worker_intensity=BUDGET)
    calls, returned = 0, 0

    def raises_every_25th(envelope: Envelope) -> None:
        nonlocal calls, returned
        calls += 1
        if calls % 25 == 0:
            raise RuntimeError(f"call {calls}")
        returned += 1

    seqs: dict[str, list[int]] = defaultdict(list)

    def counts_every_one(envelope: Envelope) -> None:
        seqs[envelope.session_id].append(envelope.seq)

    logged: list[str] = []
    log = SystemWorker("log", lambda e: logged.append(e.type), types="rtbus.actor.*")
    async with (
        open_service(config, system_workers=[log]) as svc,
        svc.bus.subscribe(types="rtbus.actor.gave_up") as gave_ups,
    ):
        counter = await svc.add_worker(counts_every_one, sessions=sessions, maxsize=4)
        flaky = await svc.add_worker(raises_every_25th, sessions=sessions, maxsize=4)
        handles = [await svc.open_session(id=id) for id in sessions]
        async with svc.bus.subscribe(sessions=sessions, types="response.done") as done:

            async def talk() -> None:
                # Responses, one session after another, until the flaky worker is given up on
                # and then some more: publishing must never stall on its closed subscription.
                for turn in range(40):
                    session = handles[turn % len(handles)]
                    await session.send(CREATE)
                    await done.receive()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(talk)
                gave_up = (await gave_ups.receive()).event
        for session in sessions:
            await svc.close_session(session)
        await trio.testing.wait_all_tasks_blocked()
        scrape = Scrape(svc)
        system = {s.supervisor: s for s in svc.supervisor_statistics()}["root/system"]
        supervision = svc.readiness().checks["supervision"]
    assert isinstance(gave_up, ActorGaveUp)
    assert (gave_up.supervisor, gave_up.child) == ("root/workers", flaky.id)
    assert calls == 100, "three restarts granted, the fourth failure is one too many"
    # What it never handled: the one it failed on and those queued behind it.
    assert 1 <= gave_up.abandoned <= 1 + 4
    assert flaky.statistics().delivered == returned
    assert scrape.by("rtbus_worker_envelopes_lost_total", "reason") == {
        "gave_up": gave_up.abandoned
    }
    assert scrape.by("rtbus_actor_gave_up_total", "supervisor") == {"root/workers": 1}
    # The block worker beside it got every envelope of every session, in order, once.
    for session in sessions:
        assert seqs[session] == list(range(1, len(seqs[session]) + 1))
        assert seqs[session][-1] > 0
    assert counter.handled == sum(len(s) for s in seqs.values())
    assert counter.handled > calls, "the sessions kept publishing after the give-up"
    # The service's own workers never went down.
    assert (system.running, system.restarts_total) == (1, 0)  # the log worker
    assert logged.count("rtbus.actor.gave_up") == 1
    assert supervision == "ok"
    assert scrape.by("rtbus_bus_dropped_total", "policy")["block"] == 0
