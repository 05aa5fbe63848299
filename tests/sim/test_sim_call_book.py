"""The simulated calls API as a sans-IO book: states as a table, and no request can break it."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbus.protocol import CallOperation
from rtbus.sim._calls import CallBook, CallState, Reply, Request
from rtbus.sim._session import SessionSettings

SESSION = {"type": "realtime", "model": "gpt-realtime"}


def book() -> CallBook:
    return CallBook(rng=random.Random(3), settings=SessionSettings(), ring_seconds=30)


def post(b: CallBook, op: CallOperation, call_id: str | None, body: object = None) -> Reply:
    data = b"" if body is None else orjson.dumps(body)
    return b.handle(op, call_id, Request(data, "application/json", now=1000.0))


@pytest.mark.parametrize(
    ("first", "then", "status"),
    [
        (CallOperation.ACCEPT, CallOperation.ACCEPT, 400),  # already accepted
        (CallOperation.ACCEPT, CallOperation.REJECT, 400),
        (CallOperation.REJECT, CallOperation.ACCEPT, 404),  # over
        (CallOperation.HANGUP, CallOperation.HANGUP, 404),
        (CallOperation.ACCEPT, CallOperation.HANGUP, 200),
    ],
)
def test_operations_follow_the_state_table(
    first: CallOperation, then: CallOperation, status: int
) -> None:
    b = book()
    call = b.ring((), now=1000.0)
    assert post(b, first, call.call_id, SESSION).status == 200
    assert post(b, then, call.call_id, SESSION).status == status


@pytest.mark.parametrize("code", [200, 999, "busy", True])
def test_reject_takes_sip_statuses_only(code: object) -> None:
    b = book()
    call = b.ring((), now=1000.0)
    assert post(b, CallOperation.REJECT, call.call_id, {"status_code": code}).status == 400
    assert call.state is CallState.RINGING


def test_attach_needs_an_answered_call_and_may_attach_again() -> None:
    b = book()
    call = b.ring((), now=1000.0)
    assert isinstance(b.attach(call.call_id, now=1000.0), Reply)
    post(b, CallOperation.ACCEPT, call.call_id, SESSION)
    assert b.attach(call.call_id, now=1000.0) is call
    assert b.attach(call.call_id, now=1001.0) is call  # a reconnect
    ended: list[str] = []
    call.on_end.append(lambda: ended.append("x"))
    post(b, CallOperation.HANGUP, call.call_id)
    post(b, CallOperation.HANGUP, call.call_id)
    assert ended == ["x"]
    assert isinstance(b.attach(call.call_id, now=1002.0), Reply)


FIELDS = st.dictionaries(
    st.sampled_from(["type", "model", "status_code", "target_uri", "session", "sdp", "voice"]),
    st.integers(-(2**31), 2**31) | st.text(max_size=20) | st.none(),
)
CONTENT_TYPES = ["application/json", "application/sdp", "multipart/form-data; boundary=x", ""]


@settings(max_examples=200, deadline=None)
@given(
    op=st.sampled_from(list(CallOperation)),
    body=st.binary(max_size=200) | st.builds(orjson.dumps, FIELDS),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_no_request_breaks_the_book(op: CallOperation, body: bytes, content_type: str) -> None:
    b = book()
    call = b.ring((), now=1000.0)
    reply = b.handle(op, call.call_id, Request(body, content_type, now=1000.0))
    assert reply.status in (200, 201, 400, 404)
    if reply.status >= 400:
        assert orjson.loads(reply.body)["error"]["message"]
