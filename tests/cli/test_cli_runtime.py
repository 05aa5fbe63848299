"""``run_service``: the configured sessions, readiness, the lifecycle log, and the drain,
against the real embedded simulator and a real HTTP server."""

from __future__ import annotations

import functools
import gc
import io
import logging
from collections.abc import Iterator

import attrs
import pytest
import trio
import trio.testing
from cli_support import restored_logging
from support.events import ev
from support.http_client import request

from rtbus import AzureConfig, OpenAIConfig
from rtbus.actors import Backoff, RestartIntensity
from rtbus.bus import Envelope
from rtbus.cli._logging import configure_logging
from rtbus.service import (
    DemoSettings,
    LogSettings,
    RunningService,
    SessionsNotStarted,
    Settings,
    SimUpstream,
    StartupSession,
    run_service,
)
from rtbus.sim import SimServer, serve_sim

SAFETY_NET = 30  # seconds: only a hung service ever meets it
UpstreamSettings = SimUpstream | OpenAIConfig | AzureConfig


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


def settings(
    *,
    upstream: UpstreamSettings | None = None,
    sessions: tuple[StartupSession, ...] = (),
    demo: int = 0,
) -> Settings:
    """Fast settings: a free port, a quick simulator, no demo unless asked for."""
    base = Settings()
    return attrs.evolve(
        base,
        upstream=upstream or SimUpstream(speed=20.0, response_audio_seconds=1.0),
        http=attrs.evolve(base.http, port=0),
        sessions=sessions,
        demo=DemoSettings(sessions=demo),
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def fields(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == message]


async def test_configured_sessions_are_ready_and_required(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    startup = (StartupSession(id="front"), StartupSession(id="back", model="gpt-realtime-mini"))
    with trio.fail_after(SAFETY_NET):
        running: RunningService = await nursery.start(run_service, settings(sessions=startup))
    service = running.service
    assert {"front", "back"} <= set(service.sessions)
    assert service.sessions["back"].spec.model == "gpt-realtime-mini"
    response = await request(running.http.url, "GET", "/readyz")
    assert response.status == 200
    assert {"session front", "session back"} <= set(response.json()["checks"])
    (serving,) = fields(caplog, "serving")
    assert (serving["url"], serving["upstream"], serving["sessions"]) == (
        running.http.url,
        "sim",
        2,
    )
    ready = {f["session"] for f in fields(caplog, "rtbus.session.ready")}
    assert {"front", "back"} <= ready
    started = fields(caplog, "rtbus.actor.started")
    assert {"supervisor": "root/sessions", "child": "front", "incarnation": 1} in started


async def test_cancelling_drains_then_stops_http(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    seen: list[Envelope] = []
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(
                run_service, settings(sessions=(StartupSession(id="front"),))
            )
            session = running.service.sessions["front"]
            # A response is running when the drain starts: the drain lets it finish.
            bus = running.service.bus
            async with bus.subscribe(types=["response.*"], sessions=["front"]) as sub:
                await session.send({"type": "response.create"})
                async for envelope in sub:
                    seen.append(envelope)
                    if envelope.type == "response.created":
                        break
            watch = functools.partial(_collect, running, seen)
            await nursery.start(watch)
            nursery.cancel_scope.cancel()
    order = messages(caplog)
    assert order.index("draining") < order.index("rtbus.session.closed") < order.index("drained")
    types = [e.type for e in seen]
    assert types.index("response.done") < types.index("rtbus.session.closed")
    assert {"session": "front", "reason": "closed by rtbus"} in fields(
        caplog, "rtbus.session.closed"
    )
    (summary,) = fields(caplog, "drained")
    assert summary["sessions"] == 1
    assert (summary["responses_finished"], summary["responses_cut"]) == (1, 0)
    assert summary["dropped"] == 0
    with pytest.raises(OSError):  # noqa: PT011 -- refused: nothing listens any more
        await trio.open_tcp_stream(running.http.host, running.http.port)


async def _collect(
    running: RunningService,
    seen: list[Envelope],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    # Shielded: it must keep reading while the drain it watches runs.
    with trio.CancelScope(shield=True):
        types = ["response.*", "rtbus.session.closed"]
        async with running.service.bus.subscribe(types=types, sessions=["front"]) as sub:
            task_status.started()
            async for envelope in sub:
                seen.append(envelope)
                if envelope.type == "rtbus.session.closed":
                    return


async def test_a_session_that_cannot_start_stops_the_service(nursery: trio.Nursery) -> None:
    sim: SimServer = await nursery.start(
        functools.partial(serve_sim, "127.0.0.1", 0, api_key="sk-the-right-key-000")
    )
    wrong = OpenAIConfig(api_key="sk-the-wrong-key-999", base_url=sim.url)
    config = settings(upstream=wrong, sessions=(StartupSession(id="a"), StartupSession(id="b")))
    output = io.StringIO()
    configure_logging(LogSettings(format="json"), secrets=config.secrets(), stream=output)
    with trio.fail_after(SAFETY_NET), pytest.raises(SessionsNotStarted) as caught:
        await run_service(config)
    assert sorted(caught.value.ids) == ["a", "b"]
    log = output.getvalue()
    assert log.count('"msg":"session could not start"') == 2
    assert "401" in log
    assert "sk-the-wrong-key-999" not in log
    assert '"msg":"drained"' in log


async def test_a_configured_session_that_is_gone_is_opened_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    base = settings(sessions=(StartupSession(id="front"),))
    quick = Backoff(base=0.05, jitter=0.0)
    config = attrs.evolve(base, service=attrs.evolve(base.service, reconcile_backoff=quick))
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(run_service, config)
            service = running.service
            first = service.sessions["front"]
            async with service.bus.subscribe(sessions="front", types="rtbus.session.ready") as sub:
                await service.close_session("front")
                await sub.receive()
            # Ready is published just before the supervisor admits the reopened session.
            await trio.testing.wait_all_tasks_blocked()
            assert service.sessions["front"] is not first
            response = await request(running.http.url, "GET", "/readyz")
            assert response.status == 200
            nursery.cancel_scope.cancel()  # the drain stops the reconciler first
    assert [f["session"] for f in fields(caplog, "session gone")] == ["front"]
    assert fields(caplog, "session reopened") == [{"session": "front"}]
    assert "drained" in messages(caplog)


async def test_a_worker_given_up_on_is_logged_once_and_the_service_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    base = settings(sessions=(StartupSession(id="front"),))
    service_settings = attrs.evolve(
        base.service,
        worker_intensity=RestartIntensity(max_restarts=1, period=60.0),
        worker_backoff=Backoff(base=0.0, jitter=0.0),
    )
    config = attrs.evolve(base, service=service_settings)

    def broken(envelope: Envelope) -> None:
        raise RuntimeError("always")

    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(run_service, config)
            service = running.service
            async with service.bus.subscribe(types="rtbus.actor.gave_up") as gave_ups:
                await service.add_worker(broken, id="broken", types="poke")
                await service.bus.publish("x", "poke", ev(), received_at=trio.current_time())
                await gave_ups.receive()
            session = service.sessions["front"]
            async with service.bus.subscribe(sessions="front", types="response.done") as done:
                await session.send({"type": "response.create"})
                await done.receive()
            response = await request(running.http.url, "GET", "/readyz")
            assert response.status == 200
            nursery.cancel_scope.cancel()
    records = [r for r in caplog.records if r.getMessage() == "rtbus.actor.gave_up"]
    assert [r.levelno for r in records] == [logging.ERROR]
    logged = records[0].fields  # type: ignore[attr-defined]
    assert (logged["supervisor"], logged["child"], logged["abandoned"]) == (
        "root/workers",
        "broken",
        1,
    )
    assert logged["exception"] == "RuntimeError"  # the class only: a message may hold a secret


async def test_a_drain_does_not_wait_for_sessions_in_backoff(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as upstream_side:
                serve = functools.partial(serve_sim, "127.0.0.1", 0, speed=20.0, api_key="sk-t")
                sim: SimServer = await upstream_side.start(serve)
                upstream = OpenAIConfig(api_key="sk-t", base_url=sim.url)
                configured = settings(upstream=upstream, sessions=(StartupSession(id="front"),))
                configured = attrs.evolve(
                    configured, service=attrs.evolve(configured.service, drain_seconds=60.0)
                )
                running: RunningService = await nursery.start(run_service, configured)
                bus = running.service.bus
                sub = bus.subscribe(sessions=["front"], types="rtbus.session.*")
                await running.service.sessions["front"].send({"type": "response.create"})
                upstream_side.cancel_scope.cancel()  # the upstream goes away mid-response
            async with sub:  # and stays away: the session backs off between attempts
                async for envelope in sub:
                    if envelope.type == "rtbus.session.disconnected":
                        break
            started = trio.current_time()
            nursery.cancel_scope.cancel()
    assert trio.current_time() - started < 5.0, "not the 60 s drain grace"
    (summary,) = fields(caplog, "drained")
    assert summary["sessions"] == 1


async def test_the_banner_says_what_serves_and_a_status_line_follows_each_period(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    configured = settings(sessions=(StartupSession(id="front"),))
    configured = attrs.evolve(
        configured, service=attrs.evolve(configured.service, status_seconds=5.0)
    )
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_service, configured)
            await trio.sleep(11.0)
            nursery.cancel_scope.cancel()
    (banner,) = fields(caplog, "serving")
    assert banner["upstream"] == "sim"
    assert (banner["sessions"], banner["token"], banner["redis"]) == (1, "off", "off")
    assert banner["version"]
    statuses = fields(caplog, "status")
    assert len(statuses) == 2
    assert statuses[-1]["sessions_ready"] == 1
    assert {"events_per_second", "errors", "reconnects", "dropped"} <= set(statuses[-1])


async def test_the_service_sets_the_young_gc_threshold_while_it_runs() -> None:
    before = gc.get_threshold()
    configured = settings()
    configured = attrs.evolve(
        configured, service=attrs.evolve(configured.service, gc_threshold=12_345)
    )
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_service, configured)
            assert gc.get_threshold() == (12_345, *before[1:])
            nursery.cancel_scope.cancel()
    assert gc.get_threshold() == before


async def test_the_embedded_simulator_listens_where_it_is_told() -> None:
    import socket

    from rtbus.service import load_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loaded = load_settings(None, environ={}, overrides={"upstream.port": port})
    assert isinstance(loaded.upstream, SimUpstream)
    assert loaded.upstream.port == port
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(
                run_service, attrs.evolve(settings(), upstream=loaded.upstream)
            )
            upstream = running.service.config.upstream
            assert isinstance(upstream, OpenAIConfig)
            assert f"127.0.0.1:{port}" in upstream.base_url
            nursery.cancel_scope.cancel()
