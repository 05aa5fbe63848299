"""The control API over real HTTP: hypercorn on 127.0.0.1:0, a real service on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from http_support import TOKEN, Api, error_of, serving
from support.upstream import MODEL, take_until, upstream

from rtbus import SessionSpec
from rtbus.bus import Subscription
from rtbus.service import HttpConfig, Service, ServiceConfig, open_service
from rtbus.sim import SimServer

LIMIT = 2048  # max_body_bytes of the served surface: small, so an oversized body is cheap


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with serving(service, HttpConfig(port=0, token=TOKEN, max_body_bytes=LIMIT)) as api:
        yield api


# -- the routes ------------------------------------------------------------------------------


async def test_a_session_opened_used_inspected_and_closed_over_http(
    api: Api, service: Service
) -> None:
    opened = await api.post("/v1/sessions", {"id": "s1", "session": {"instructions": "Hi."}})
    assert opened.status == 201, opened
    assert opened.json() == {"id": "s1", "state": "ready", "model": MODEL}
    assert opened.headers["location"] == "/v1/sessions/s1"
    assert await api.session_ids() == ["s1"]

    async with service.bus.subscribe(sessions="s1") as sub:
        sent = await api.post("/v1/sessions/s1/events", {"type": "response.create"})
        assert sent.status == 202, sent
        assert sent.json() == {
            "session": "s1",
            "type": "response.create",
            "event_id": "s1:2",
            "status": "sent",
        }
        assert (await take_until(sub, "response.done"))[0].type == "response.created"

    one = await api.get("/v1/sessions/s1")
    assert one.status == 200
    statistics = one.json()["statistics"]
    assert (one.json()["state"], statistics["state"], statistics["connects"]) == ("ready",) * 2 + (
        1,
    )
    assert statistics["send_queue"]["sent"] >= 1

    closed = await api.delete("/v1/sessions/s1")
    assert closed.status == 200, closed
    assert closed.json() == {"id": "s1", "state": "closed", "model": MODEL}
    assert error_of(await api.get("/v1/sessions/s1")) == (404, "unknown_session")
    assert await api.session_ids() == []


async def test_a_session_without_an_id_gets_one_and_takes_the_model_asked_for(
    api: Api,
) -> None:
    opened = await api.post("/v1/sessions", {"model": "gpt-realtime-mini"})
    assert opened.status == 201, opened
    body = opened.json()
    assert body["id"].startswith("sess_")
    assert body["model"] == "gpt-realtime-mini"
    assert await api.session_ids() == [body["id"]]


async def test_a_session_config_of_type_transcription_opens_a_transcription_session(
    api: Api, service: Service
) -> None:
    config = {"type": "transcription", "audio": {"input": {"turn_detection": None}}}
    async with service.bus.subscribe(sessions="t1") as sub:
        opened = await api.post("/v1/sessions", {"id": "t1", "session": config})
        assert opened.status == 201, opened
        # 125 ms of 24 kHz PCM16 silence, in five bodies under this API's 2 KiB limit.
        append = {"type": "input_audio_buffer.append", "audio": "A" * 1_600}
        for event in [*[append] * 5, {"type": "input_audio_buffer.commit"}]:
            assert (await api.post("/v1/sessions/t1/events", event)).status == 202
        taken = await take_until(sub, "conversation.item.input_audio_transcription.completed")
    updated = next(e for e in taken if e.type == "session.updated")
    assert updated.event.session.type == "transcription"  # type: ignore[attr-defined]
    assert "error" not in [e.type for e in taken]
    assert opened.json()["model"] is None  # the transcriber is named in its config
    with_model = await api.post("/v1/sessions", {"model": "gpt-realtime", "session": config})
    assert error_of(with_model) == (400, "invalid_field")
    assert "session.audio.input.transcription.model" in with_model.json()["error"]["message"]


async def test_an_empty_body_opens_a_session_with_the_defaults(api: Api) -> None:
    opened = await api.call("POST", "/v1/sessions")
    assert opened.status == 201, opened
    assert opened.json()["model"] == MODEL


# -- bad requests: each is refused with what was wrong, and changes nothing -------------------


@pytest.fixture
async def idle(api: Api, service: Service) -> AsyncIterator[Subscription]:
    """One idle ready session ("s1") and a subscription on everything, taken before the bad
    request: afterwards the session list and the bus must be as they were."""
    assert (await api.post("/v1/sessions", {"id": "s1"})).status == 201
    async with service.bus.subscribe() as sub:
        await trio.testing.wait_all_tasks_blocked()  # the lifecycle events of s1 are out
        published = service.bus.statistics().published
        yield sub
        assert await api.session_ids() == ["s1"]
        assert service.bus.statistics().published == published
        assert sub.statistics().queued == 0


BAD_AUTH = [
    pytest.param([], "missing Authorization", id="missing"),
    pytest.param([("authorization", f"Basic {TOKEN}")], "Bearer scheme", id="wrong-scheme"),
    pytest.param([("authorization", "Bearer not-the-token")], "not valid", id="wrong-token"),
    pytest.param([("authorization", f"Bearer {TOKEN}x")], "not valid", id="longer-token"),
    pytest.param([("authorization", "Bearer")], "not valid", id="no-token"),
]


@pytest.mark.parametrize(("headers", "says"), BAD_AUTH)
async def test_the_control_api_wants_the_bearer_token(
    api: Api, idle: Subscription, headers: list[tuple[str, str]], says: str
) -> None:
    for method, path in [
        ("GET", "/v1/sessions"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions/s1"),
        ("DELETE", "/v1/sessions/s1"),
        ("POST", "/v1/sessions/s1/events"),
    ]:
        response = await api.call(method, path, json={"type": "response.create"}, headers=headers)
        assert error_of(response) == (401, "unauthorized"), (method, path)
        assert says in response.json()["error"]["message"]
        assert response.headers["www-authenticate"].startswith('Bearer realm="rtbus"')
        assert TOKEN not in response.body.decode()


BAD_OPEN = [
    pytest.param(b"{not json", "application/json", 400, "malformed_json", id="malformed"),
    pytest.param(b"[1, 2]", "application/json", 400, "invalid_body", id="array"),
    pytest.param(b'"s2"', "application/json", 400, "invalid_body", id="string"),
    pytest.param(b'{"id": "s2"}', "text/plain", 415, "unsupported_media_type", id="text"),
    pytest.param(b'{"id": "s2"}', None, 415, "unsupported_media_type", id="no-type"),
    pytest.param(
        b'{"id": "s2", "modle": "x"}', "application/json", 400, "unknown_field", id="typo"
    ),
    pytest.param(b'{"id": 7}', "application/json", 400, "invalid_field", id="id-type"),
    pytest.param(b'{"id": "a/b"}', "application/json", 400, "invalid_field", id="id-slash"),
    pytest.param(b'{"id": ""}', "application/json", 400, "invalid_field", id="id-empty"),
    pytest.param(b'{"model": ""}', "application/json", 400, "invalid_field", id="model-empty"),
    pytest.param(b'{"session": []}', "application/json", 400, "invalid_field", id="session-type"),
    pytest.param(
        b'{"session": {"instructions": 5}}', "application/json", 400, "invalid_field", id="config"
    ),
    pytest.param(b'{"id": "s1"}', "application/json", 409, "duplicate_id", id="duplicate"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_OPEN)
async def test_a_bad_open_request_is_refused_and_says_why(
    api: Api, idle: Subscription, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    headers = [("authorization", f"Bearer {TOKEN}")]
    if content_type is not None:
        headers.append(("content-type", content_type))
    response = await api.call("POST", "/v1/sessions", body=body, headers=headers)
    assert error_of(response) == (status, code)


async def test_field_errors_name_the_field(api: Api) -> None:
    says = {
        "modle": "unknown field 'modle'",
        "id": "id must be",
        "session": "session config: ",
    }
    bodies: dict[str, Any] = {
        "modle": {"modle": "x"},
        "id": {"id": "no spaces"},
        "session": {"session": {"instructions": 5}},
    }
    for field, body in bodies.items():
        response = await api.post("/v1/sessions", body)
        assert says[field] in response.json()["error"]["message"], response.json()
    message = (await api.post("/v1/sessions", bodies["session"])).json()["error"]["message"]
    assert "instructions" in message


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    api: Api, idle: Subscription
) -> None:
    big = b'{"session": {"instructions": "' + b"x" * LIMIT + b'"}}'
    declared = await api.post("/v1/sessions", body=big, headers=_json_headers())
    assert error_of(declared) == (413, "body_too_large")
    streamed = await api.call(
        "POST", "/v1/sessions", chunks=[big[:1000], big[1000:]], headers=_json_headers()
    )
    assert error_of(streamed) == (413, "body_too_large")
    assert str(LIMIT) in streamed.json()["error"]["message"]


async def test_a_body_at_the_limit_is_read(api: Api) -> None:
    prefix, suffix = b'{"id": "s9", "session": {"instructions": "', b'"}}'
    body = prefix + b"x" * (LIMIT - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMIT
    response = await api.call("POST", "/v1/sessions", chunks=[body], headers=_json_headers())
    assert response.status == 201, response


async def test_an_unknown_session_is_404_on_every_route(api: Api, idle: Subscription) -> None:
    for method, path in [
        ("GET", "/v1/sessions/nope"),
        ("DELETE", "/v1/sessions/nope"),
        ("POST", "/v1/sessions/nope/events"),
    ]:
        response = await api.call(method, path, json={"type": "response.create"})
        assert error_of(response) == (404, "unknown_session"), (method, path)
        assert "'nope'" in response.json()["error"]["message"]


BAD_EVENTS = [
    pytest.param({"type": "response.explode"}, "is not a client event type", id="unknown-type"),
    pytest.param({"event_id": "e1"}, "type", id="no-type"),
    pytest.param({"type": "input_audio_buffer.append"}, "audio", id="missing-field"),
    pytest.param({"type": "input_audio_buffer.append", "audio": 5}, "audio", id="wrong-type"),
    pytest.param(
        {"type": "session.update", "session": {"type": "realtime", "instructions": []}},
        "instructions",
        id="nested",
    ),
    # The upstream refuses these with unknown_parameter / invalid_value, costing the session.
    pytest.param({"type": "response.create", "extra": 1}, "at 'extra'", id="unknown-field"),
    pytest.param(
        {"type": "response.create", "response": {"extra": 1}},
        "at 'response.extra'",
        id="unknown-nested-field",
    ),
    pytest.param(
        {"type": "session.update", "session": {"type": "realtime", "max_output_tokens": 0}},
        "at 'session.max_output_tokens'",
        id="out-of-range",
    ),
    pytest.param(
        {"type": "input_audio_buffer.append", "audio": "not base64!"},
        "base64",
        id="not-base64",
    ),
]


@pytest.mark.parametrize(("event", "says"), BAD_EVENTS)
async def test_a_bad_event_is_422_and_nothing_is_sent(
    api: Api, sim: SimServer, idle: Subscription, event: dict[str, Any], says: str
) -> None:
    frames = sim.statistics().frames_received
    response = await api.post("/v1/sessions/s1/events", event)
    assert error_of(response) == (422, "invalid_event")
    assert says in response.json()["error"]["message"]
    assert sim.statistics().frames_received == frames


async def test_an_item_reference_in_response_input_is_sent(api: Api, service: Service) -> None:
    # openai's types accept references to existing items as response input; so does rtbus.
    assert (await api.post("/v1/sessions", {"id": "s1"})).status == 201
    reference = {"type": "item_reference", "id": "item_1"}
    event = {"type": "response.create", "response": {"conversation": "none", "input": [reference]}}
    async with service.bus.subscribe(sessions="s1") as sub:
        response = await api.post("/v1/sessions/s1/events", event)
        assert response.status == 202, response
        assert (await take_until(sub, "response.done"))[0].type == "response.created"


BAD_SESSION_CONFIGS = [
    pytest.param({"audio": {"output": {"voise": "ash"}}}, "session.audio.output.voise", id="typo"),
    pytest.param({"audio": {"output": {"voice": "nope"}}}, "session.audio.output.voice", id="enum"),
    pytest.param({"tools": [{"type": "function"}]}, "session.tools[0].name", id="missing"),
    pytest.param({"audio": {"output": {"speed": 9}}}, "session.audio.output.speed", id="range"),
]


@pytest.mark.parametrize(("session", "key"), BAD_SESSION_CONFIGS)
async def test_a_session_config_the_upstream_would_refuse_is_400_before_any_connection(
    api: Api, service: Service, sim: SimServer, session: dict[str, Any], key: str
) -> None:
    # Today's alternative was a 502 after the upstream refused it: a connection made, a
    # session failure counted, rtbus.session.failed published. None of that may happen.
    connections = sim.statistics().connections_total
    published = service.bus.statistics().published
    supervision = dict(service.supervision_counts())
    response = await api.post("/v1/sessions", {"id": "bad", "session": session})
    assert error_of(response) == (400, "invalid_field")
    message = response.json()["error"]["message"]
    assert message.startswith(f"session config: {key}: "), message
    assert "rt.on('error'" not in message
    await trio.testing.wait_all_tasks_blocked()
    assert sim.statistics().connections_total == connections
    assert service.bus.statistics().published == published
    assert await api.session_ids() == []
    assert dict(service.supervision_counts()) == supervision


async def test_a_non_object_event_is_400(api: Api, idle: Subscription) -> None:
    response = await api.post("/v1/sessions/s1/events", ["response.create"])
    assert error_of(response) == (400, "invalid_body")


async def test_unknown_routes_are_404_and_wrong_methods_405(api: Api, idle: Subscription) -> None:
    for path in ["/", "/v2/sessions", "/v1/sessions/s1/events/1", "/metricsz"]:
        assert error_of(await api.get(path)) == (404, "not_found"), path
    wrong = await api.call("PUT", "/v1/sessions/s1", json={})
    assert error_of(wrong) == (405, "method_not_allowed")
    assert wrong.headers["allow"] == "DELETE, GET"
    post_probe = await api.post("/healthz", {})
    assert error_of(post_probe) == (405, "method_not_allowed")
    assert post_probe.headers["allow"] == "GET"


# -- the upstream's failures -----------------------------------------------------------------


async def test_a_session_the_upstream_refuses_is_502_without_the_key(sim: SimServer) -> None:
    wrong_key = "sk-wrong-key-that-must-not-leak"
    async with open_service(upstream(sim, key=wrong_key)) as svc, serving(svc) as api:
        response = await api.post("/v1/sessions", {"id": "s1"})
        assert error_of(response) == (502, "upstream_failed")
        message = response.json()["error"]["message"]
        assert "401" in message
        assert wrong_key not in response.body.decode()
        assert await api.session_ids() == []


async def test_a_session_that_never_becomes_ready_is_504(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    # Every connection stalls after session.created: the handshake times out, forever.
    stalling = SessionSpec(model=MODEL, extra_query={"sim_fault": "stall"}, ready_timeout=2)
    config = ServiceConfig(upstream=upstream(sim), session_defaults=stalling)
    http = HttpConfig(port=0, token=TOKEN, session_start_timeout=5)
    async with open_service(config) as svc, serving(svc, http) as api:
        response = await api.post("/v1/sessions", {"id": "s1"})
        assert error_of(response) == (504, "upstream_timeout")
        assert "within 5s" in response.json()["error"]["message"]
        assert await api.session_ids() == []
        assert "s1" not in svc.sessions


def _json_headers() -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKEN}"), ("content-type", "application/json")]
