"""Errors go back to their cause over HTTP: an event's outcome (``Prefer: wait``), refusals that
cost no session, and the conversation record, on hypercorn at 127.0.0.1:0 against the
simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from http_support import TOKEN, Api, serving
from support.upstream import take_until

from rtbus.service import HttpConfig, Service
from rtbus.session import SessionState

BEARER = ("authorization", f"Bearer {TOKEN}")
DELETE_MISSING = {"type": "conversation.item.delete", "item_id": "item_missing"}
SAY = {
    "type": "conversation.item.create",
    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
}


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with serving(service, HttpConfig(port=0, token=TOKEN)) as api:
        yield api


async def open_s1(api: Api) -> None:
    opened = await api.post("/v1/sessions", {"id": "s1"})
    assert opened.status == 201, opened


async def test_an_event_the_upstream_refuses_is_422_with_its_error_and_costs_nothing(
    api: Api, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    await open_s1(api)
    session = service.sessions["s1"]
    async with service.bus.subscribe(sessions="s1", types="rtbus.*") as lifecycle:
        refused = await api.post(
            "/v1/sessions/s1/events", DELETE_MISSING, headers=[BEARER, ("prefer", "wait=2")]
        )
        assert refused.status == 422, refused
        assert refused.headers["preference-applied"] == "wait=2"
        body = refused.json()
        assert body["status"] == "refused"
        assert body["error"]["code"] == "refused_by_upstream"
        assert body["error"]["upstream"]["code"] == "item_not_found"
        assert body["error"]["upstream"]["event_id"] == body["event_id"]
        assert body["event_id"].startswith("s1:")
        (event,) = await take_until(lifecycle, "rtbus.session.event_refused")
        assert (event.event.event_id, event.event.sender) == (body["event_id"], "control-api")  # type: ignore[attr-defined]
    assert session.state is SessionState.READY
    assert session.statistics().counts.failures == {}, "nobody subscribes to errors: still fine"


async def test_a_refusal_without_waiting_costs_no_session_either(
    api: Api, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    await open_s1(api)
    async with service.bus.subscribe(sessions="s1", types="rtbus.*") as lifecycle:
        for _ in range(4):  # more than any restart budget
            sent = await api.post("/v1/sessions/s1/events", DELETE_MISSING)
            assert sent.status == 202, sent
            await take_until(lifecycle, "rtbus.session.event_refused")
    session = service.sessions["s1"]
    assert (session.state, session.statistics().connects) == (SessionState.READY, 1)


async def test_an_event_nobody_refuses_is_accepted_after_the_wait(
    api: Api, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    await open_s1(api)
    started = trio.current_time()
    accepted = await api.post(
        "/v1/sessions/s1/events", SAY, headers=[BEARER, ("prefer", "wait=1.5")]
    )
    assert accepted.status == 200, accepted
    assert accepted.json()["status"] == "accepted"
    assert trio.current_time() - started >= 1.5


@pytest.mark.parametrize("prefer", ["wait=soon", "wait=-1", "wait=31"])
async def test_a_bad_wait_is_400_and_nothing_is_sent(
    api: Api, service: Service, prefer: str, autojump_clock: trio.testing.MockClock
) -> None:
    await open_s1(api)
    sent_before = service.sessions["s1"].statistics().send_queue.sent
    bad = await api.post("/v1/sessions/s1/events", SAY, headers=[BEARER, ("prefer", prefer)])
    assert bad.status == 400, bad
    assert bad.json()["error"]["code"] == "invalid_field"
    assert service.sessions["s1"].statistics().send_queue.sent == sent_before


async def test_the_conversation_record_is_readable(
    api: Api, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    await open_s1(api)
    async with service.bus.subscribe(sessions="s1", types="conversation.item.done") as done:
        assert (await api.post("/v1/sessions/s1/events", SAY)).status == 202
        await done.receive()
    got = await api.get("/v1/sessions/s1/conversation")
    assert got.status == 200, got
    record = got.json()
    assert [(i["role"], i["text"]) for i in record["items"]] == [("user", "Hi")]
    assert (record["dropped"], record["summary"]) == (0, None)
    assert (await api.get("/v1/sessions/nope/conversation")).status == 404
