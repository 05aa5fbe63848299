"""/healthz, /readyz, /metrics, draining, WebSocket routing and logging, over real HTTP."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

import orjson
import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
import wsproto.events
from http_support import TOKEN, Api, error_of, serving
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.events import ev
from support.upstream import upstream

from rtbus.actors import ActorStarted, Backoff
from rtbus.bus import Envelope
from rtbus.service import Service, ServiceConfig, SystemWorker, open_service
from rtbus.sim import SimServer


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with serving(service) as api:
        yield api


async def test_healthz_needs_no_token(api: Api) -> None:
    response = await api.get("/healthz", headers=[])
    assert (response.status, response.json()) == (200, {"status": "alive"})
    assert response.headers["content-type"] == "application/json"


async def test_metrics_needs_no_token_and_counts_requests_by_route_template(api: Api) -> None:
    await api.get("/healthz")
    await api.get("/v1/sessions/secret-session-id")  # 404, counted under its template
    await api.get("/v1/sessions", headers=[])  # 401
    await api.get("/no/such/route")
    response = await api.get("/metrics", headers=[])
    assert response.status == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    text = response.body.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counted = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in families["rtbus_http_requests"].samples
        if s.name == "rtbus_http_requests_total"
    }
    assert counted == {
        ("/healthz", "GET", "200"): 1,
        ("/v1/sessions/{id}", "GET", "404"): 1,
        ("/v1/sessions", "GET", "401"): 1,
        ("other", "GET", "404"): 1,
    }
    assert "secret-session-id" not in text
    assert "/no/such/route" not in text


async def test_metrics_counts_a_method_outside_the_standard_ones_as_other(api: Api) -> None:
    assert error_of(await api.call("BREW", "/healthz")) == (405, "method_not_allowed")
    text = (await api.get("/metrics")).body.decode()
    assert 'rtbus_http_requests_total{method="other",route="/healthz",status="405"} 1.0' in text
    assert "BREW" not in text


async def test_readyz_waits_for_the_required_sessions(api: Api, service: Service) -> None:
    ready = await api.get("/readyz", headers=[])
    assert ready.status == 200, ready
    checks = {"service": "ok", "supervision": "ok", "bus": "ok"}
    assert ready.json() == {"status": "ready", "checks": checks}

    service.require_sessions(["s1", "s2"])
    waiting = await api.get("/readyz")
    assert waiting.status == 503
    assert waiting.json() == {
        "status": "not_ready",
        "checks": {
            "service": "ok",
            "supervision": "ok",
            "session s1": "absent",
            "session s2": "absent",
            "bus": "ok",
        },
    }

    assert (await api.post("/v1/sessions", {"id": "s1"})).status == 201
    assert (await api.get("/readyz")).json()["checks"]["session s1"] == "ok"
    assert (await api.get("/readyz")).status == 503
    assert (await api.post("/v1/sessions", {"id": "s2"})).status == 201
    assert (await api.get("/readyz")).status == 200

    assert (await api.delete("/v1/sessions/s2")).status == 200
    after = await api.get("/readyz")
    assert (after.status, after.json()["checks"]["session s2"]) == (503, "absent")


async def test_readyz_asks_the_plugged_in_checks(api: Api, service: Service) -> None:
    problem: list[str | None] = ["not connected"]

    def broken() -> str | None:
        raise RuntimeError("a message that could hold anything, sk-secret")

    service.add_readiness_check("redis", lambda: problem[0])
    service.add_readiness_check("broken", broken)
    response = await api.get("/readyz")
    assert response.status == 503
    checks = response.json()["checks"]
    assert checks["redis"] == "not connected"
    assert checks["broken"] == "the check raised RuntimeError"
    assert "sk-secret" not in response.body.decode()


async def test_readiness_refuses_bad_declarations_and_changes_nothing(service: Service) -> None:
    service.add_readiness_check("redis", lambda: None)
    bad_checks = [("redis", "taken"), ("service", "taken"), ("session s1", "taken"), ("", "name")]
    for name, says in bad_checks:
        with pytest.raises(ValueError, match=says):
            service.add_readiness_check(name, lambda: "never called")
    with pytest.raises(TypeError, match="not one string"):
        service.require_sessions("s1")
    with pytest.raises(ValueError, match="non-empty string"):
        service.require_sessions(["s1", ""])
    checks = {"service": "ok", "supervision": "ok", "bus": "ok", "redis": "ok"}
    assert service.readiness().checks == checks


async def test_readyz_says_when_a_supervisor_gave_up(sim: SimServer) -> None:
    # Only the service's own parts share a budget: a system worker that keeps failing makes
    # root/system give up (user workers and sessions are given up on one by one instead).
    config = ServiceConfig(upstream=upstream(sim), worker_backoff=Backoff(base=0.0, jitter=0.0))

    failures: list[int] = []

    def fail(envelope: Envelope) -> None:
        # One more failure than root/system allows (3), then it recovers.
        if len(failures) < 4:
            failures.append(envelope.seq)
            raise RuntimeError("the worker fails on its first four tries")

    broken = SystemWorker("broken", fail, types="poke")
    async with open_service(config, system_workers=[broken]) as svc, serving(svc) as api:
        async with svc.bus.subscribe(sessions="root", types="rtbus.actor.started") as sub:
            await svc.bus.publish("poke", "poke", ev(), received_at=trio.current_time())
            async for envelope in sub:
                event = envelope.event
                assert isinstance(event, ActorStarted)
                if (event.child, event.incarnation) == ("system", 2):
                    break
        response = await api.get("/readyz")
        assert response.status == 503
        assert response.json()["checks"]["supervision"] == "root/system gave up and was restarted"


async def test_while_draining_readyz_and_the_control_api_say_503(
    api: Api, service: Service
) -> None:
    # A worker holding an envelope holds the drain: workers stop after sessions, and a stop
    # lets the handler in progress finish.
    holding, release = trio.Event(), trio.Event()

    async def hold(envelope: Envelope) -> None:
        holding.set()
        await release.wait()

    assert (await api.post("/v1/sessions", {"id": "s1"})).status == 201
    await service.add_worker(hold, sessions="hold")
    await service.bus.publish("hold", "hold", ev(), received_at=trio.current_time())
    await holding.wait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.aclose)
        await trio.testing.wait_all_tasks_blocked()
        assert service.draining
        readyz = await api.get("/readyz")
        assert (readyz.status, readyz.json()["checks"]["service"]) == (503, "draining")
        for method, path in [
            ("POST", "/v1/sessions"),
            ("GET", "/v1/sessions"),
            ("DELETE", "/v1/sessions/s1"),
            ("POST", "/v1/sessions/s1/events"),
        ]:
            response = await api.call(method, path, json={"type": "response.create"})
            assert error_of(response) == (503, "draining"), (method, path)
        # The token is still checked first: a stranger learns nothing.
        assert error_of(await api.get("/v1/sessions", headers=[])) == (401, "unauthorized")
        assert (await api.get("/healthz")).status == 200
        release.set()
    readyz = await api.get("/readyz")
    assert readyz.status == 503
    assert readyz.json()["checks"]["supervision"] == "root is not running"
    assert (await api.get("/metrics")).status == 200


async def test_other_websocket_paths_are_refused_with_404(api: Api) -> None:
    handshake = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", base64.b64encode(b"0123456789abcdef").decode()),
        ("sec-websocket-version", "13"),
    ]
    refused = await api.get("/v1/other", headers=handshake)
    assert error_of(refused) == (404, "not_found")
    assert "/v1/bus" in refused.json()["error"]["message"]


async def test_nothing_reaches_stderr_and_no_log_carries_the_token(
    api: Api, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.get("/v1/sessions")
    await api.get("/v1/sessions", headers=[("authorization", "Bearer wrong-" + TOKEN)])
    await api.post("/v1/sessions", {"id": "s1"})
    assert "/v1/sessions" in caplog.text, "the surface logs each request at debug"
    assert TOKEN not in caplog.text
    assert "authorization" not in caplog.text.lower()
    assert capfd.readouterr().err == ""


async def test_the_bus_websocket_is_the_gateway_behind_the_same_token(api: Api) -> None:
    assert (await api.post("/v1/sessions", {"id": "s1"})).status == 201
    url = f"ws://127.0.0.1:{api.address.port}/v1/bus"
    bearer = [(b"authorization", f"Bearer {TOKEN}".encode())]
    async with trio_websocket.open_websocket_url(
        url, subprotocols=["rtbus.gateway.v1"], extra_headers=bearer
    ) as ws:
        await ws.send_message(orjson.dumps({"op": "list_sessions", "req": 1}).decode())
        frame = orjson.loads(await ws.get_message())
        while frame.get("frame") != "result":
            frame = orjson.loads(await ws.get_message())
    assert [s["id"] for s in frame["result"]["sessions"]] == ["s1"]

    code, reason = await close_of(api, [(b"authorization", b"Bearer not-the-token")])
    assert (code, reason) == (1008, "the bearer token is not valid")


async def close_of(api: Api, headers: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    """The close a /v1/bus handshake gets, spoken with wsproto on a plain socket (the
    trio-websocket client leaves its socket open when the server closes first)."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    host = f"127.0.0.1:{api.address.port}"
    request = wsproto.events.Request(host=host, target="/v1/bus", extra_headers=headers)
    async with await trio.open_tcp_stream("127.0.0.1", api.address.port) as stream:
        await stream.send_all(client.send(request))
        while True:
            data = await stream.receive_some()
            assert data, "the server hung up without a close frame"
            client.receive_data(data)
            for event in client.events():
                if isinstance(event, wsproto.events.CloseConnection):
                    return event.code, event.reason or ""


async def test_a_stopped_surface_leaves_the_registry_as_it_found_it(service: Service) -> None:
    for _ in range(2):
        async with serving(service) as api:
            assert (await api.get("/healthz")).status == 200
            text = (await api.get("/metrics")).body.decode()
            assert text.count("# TYPE rtbus_http_requests_total counter") == 1
    assert b"rtbus_http_requests_total" not in generate_latest(service.metrics.registry)
