"""Configured sessions are desired state: one that failed for good is opened again, and
``/readyz`` names it until it is back (a real HTTP server, a service on the simulator)."""

from __future__ import annotations

import trio
import trio.testing
from http_support import serving
from support.upstream import upstream

from rtbus import SessionSpec
from rtbus.actors import Backoff, RestartIntensity
from rtbus.service import ServiceConfig, open_service
from rtbus.sim import SimServer

ID = "front-desk"
# An error event after session.updated on every connection: while nobody takes this
# session's errors, each one fails its actor.
REFUSED = SessionSpec(extra_query={"sim_fault": "error:invalid_value:after_events=2"})
IMMEDIATE = Backoff(base=0.0, jitter=0.0)


async def test_a_configured_session_that_failed_for_good_comes_back(
    sim: SimServer, mock_clock: trio.testing.MockClock
) -> None:
    # A manual clock: only the test moves it, so "retrying in 8s" is exact when it is read.
    config = ServiceConfig(
        upstream=upstream(sim),
        session_intensity=RestartIntensity(max_restarts=1, period=60.0),
        session_backoff=IMMEDIATE,
        reconcile_backoff=Backoff(base=8.0, factor=2.0, max_delay=60.0, jitter=0.0),
    )
    async with (
        open_service(config) as svc,
        serving(svc) as api,
        trio.open_nursery() as reconciling,
        svc.bus.subscribe(sessions="root/sessions", types="rtbus.actor.gave_up") as gave_ups,
    ):
        svc.require_sessions([ID])
        await svc.open_session(id=ID, spec=REFUSED)
        await reconciling.start(svc.reconcile_sessions, {ID: REFUSED})
        await gave_ups.receive()
        await trio.testing.wait_all_tasks_blocked()
        response = await api.get("/readyz")
        assert response.status == 503
        assert response.json()["checks"][f"session {ID}"] == "failed, retrying in 8s"
        mock_clock.jump(3)
        assert svc.readiness().checks[f"session {ID}"] == "failed, retrying in 5s"

        # From now on its errors have a taker, so the next incarnation keeps running.
        async with (
            svc.bus.subscribe(sessions=ID, types="error") as errors,
            svc.bus.subscribe(sessions=ID, types="rtbus.session.ready") as ready,
        ):
            mock_clock.jump(5)
            await ready.receive()
            await errors.receive()
            await trio.testing.wait_all_tasks_blocked()
            response = await api.get("/readyz")
        assert response.status == 200
        assert response.json()["checks"][f"session {ID}"] == "ok"
        assert ID in svc.sessions
        reconciling.cancel_scope.cancel()


async def test_sessions_opened_through_the_api_are_not_reconciled(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    config = ServiceConfig(
        upstream=upstream(sim),
        session_intensity=RestartIntensity(max_restarts=0),
        reconcile_backoff=Backoff(base=1.0, jitter=0.0),
    )
    async with (
        open_service(config) as svc,
        serving(svc) as api,
        trio.open_nursery() as reconciling,
        svc.bus.subscribe(sessions="root/sessions", types="rtbus.actor.gave_up") as gave_ups,
    ):
        await reconciling.start(svc.reconcile_sessions, {})
        response = await api.post("/v1/sessions", json={"id": "callers"})
        assert response.status == 201
        await svc.open_session(id="doomed", spec=REFUSED)
        await gave_ups.receive()
        await trio.sleep(60)
        assert "doomed" not in svc.sessions
        assert "callers" in svc.sessions
        assert svc.readiness().ready
        reconciling.cancel_scope.cancel()
