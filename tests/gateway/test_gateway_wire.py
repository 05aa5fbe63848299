"""The gateway's wire format, sans-IO: round trips, splicing, and every malformed request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtbus.bus import Envelope, Event, OverflowPolicy, Undecoded
from rtbus.bus._envelope import event_json
from rtbus.gateway import (
    Batch,
    CloseSession,
    Credit,
    ErrorCode,
    ErrorFrame,
    EventFrame,
    Hello,
    Limits,
    ListSessions,
    OpenSession,
    Request,
    ResultFrame,
    Send,
    Subscribe,
    Unsubscribe,
    WireError,
    encode_error,
    encode_event,
    encode_request,
    encode_result,
    parse_request,
    parse_server_frame,
    parse_server_frames,
)
from rtbus.protocol import UnknownEvent, decode_server_event
from rtbus.session import SessionReady

LIMITS = Limits()

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}", fullmatch=True)
reqs = st.one_of(st.integers(0, 2**53 - 1), st.text(min_size=1, max_size=64))
names = st.from_regex(r"[a-z][a-z_.]{0,15}", fullmatch=True)
patterns = st.one_of(st.just("*"), names, st.lists(names, min_size=1, max_size=5).map(tuple))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20))
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
events = st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(
    lambda fields: {**fields, "type": "x.event"}
)
requests: st.SearchStrategy[Request] = st.one_of(
    st.builds(
        Hello, req=reqs, versions=st.lists(st.integers(0, 9), min_size=1, max_size=16).map(tuple)
    ),
    st.builds(
        Subscribe,
        req=reqs,
        sub=ids,
        types=patterns,
        sessions=patterns,
        maxsize=st.integers(1, LIMITS.max_maxsize),
        overflow=st.sampled_from(OverflowPolicy),
        credit=st.integers(0, LIMITS.max_maxsize),
        block_timeout=st.one_of(
            st.none(), st.floats(0, LIMITS.max_block_timeout, exclude_min=True)
        ),
    ),
    st.builds(Unsubscribe, req=reqs, sub=ids),
    st.builds(Credit, sub=ids, n=st.integers(1, 2**31)),
    st.builds(Send, req=reqs, session=ids, event=events),
    st.builds(
        OpenSession,
        req=reqs,
        model=st.one_of(st.none(), st.text(min_size=1, max_size=128)),
        session=st.one_of(st.none(), events),
        id=st.one_of(st.none(), ids),
    ),
    st.builds(CloseSession, req=reqs, id=ids),
    st.builds(ListSessions, req=reqs),
)


@given(requests)
def test_every_request_round_trips(request: Request) -> None:
    assert parse_request(encode_request(request), LIMITS) == request


@given(events)
def test_a_send_encoded_by_the_client_is_spliced_in_unchanged(event: dict[str, Any]) -> None:
    data = orjson.dumps(event)
    parsed = parse_request(encode_request(Send(req=1, session="s", event=data)), LIMITS)
    assert parsed == Send(req=1, session="s", event=event)


@given(
    sub=ids,
    session_id=st.text(min_size=1, max_size=30),
    seq=st.integers(1, 2**40),
    type=st.text(min_size=1, max_size=30),
    received_at=st.floats(allow_nan=False, allow_infinity=False),
    age=st.floats(0, 1e6),
    lag=st.integers(0, 2**31),
    event=events,
)
def test_an_event_frame_carries_the_raw_bytes_exactly(
    sub: str,
    session_id: str,
    seq: int,
    type: str,
    received_at: float,
    age: float,
    lag: int,
    event: dict[str, Any],
) -> None:
    # Indented on purpose: bytes orjson would never write, so a re-encode would show.
    raw = orjson.dumps(event, option=orjson.OPT_INDENT_2)
    envelope = Envelope(session_id, seq, type, Undecoded(type), received_at, raw)
    frame = b"".join(encode_event(sub, envelope, lag=lag, age=age))
    assert orjson.loads(frame)["event"] == event  # still one JSON object
    assert parse_server_frame(frame) == EventFrame(
        sub=sub,
        session_id=session_id,
        seq=seq,
        type=type,
        received_at=received_at,
        age=age,
        lag=lag,
        event=raw,
    )


@given(st.lists(events, min_size=1, max_size=6))
def test_a_batch_carries_each_frame_exactly_even_with_newlines(batch: list[Any]) -> None:
    # Indented: raw frames full of newlines, which must not split the batch.
    raws = [orjson.dumps(event, option=orjson.OPT_INDENT_2) for event in batch]
    envelopes = [
        Envelope("s", i + 1, "x.event", Undecoded("x.event"), 0.0, raw)
        for i, raw in enumerate(raws)
    ]
    frames = [encode_event("a", envelope, lag=0, age=0.0) for envelope in envelopes]
    built = Batch()  # frame by frame, the forwarder's way, with its size so far
    for frame in frames:
        built.add(frame)
    assert len(built) == len(frames)
    assert built.size == sum(len(b"".join(frame)) for frame in frames)
    parsed = parse_server_frames(b"".join(built.message()))
    assert [frame.event for frame in parsed] == raws  # type: ignore[union-attr]
    assert [frame.seq for frame in parsed] == list(range(1, len(raws) + 1))  # type: ignore[union-attr]
    if len(frames) == 1:
        assert built.message() == frames[0]  # one frame goes alone, without a batch line


@pytest.mark.parametrize(
    "message",
    [
        b'{"frame":"batch","sizes":[5]}\n{}',
        b'{"frame":"batch","sizes":[1,1]}\n{}',
        b'{"frame":"batch","sizes":[0,2]}\n{}',
        b'{"frame":"batch","sizes":"2"}\n{}',
        b'{"frame":"batch"',
    ],
)
def test_a_batch_whose_sizes_do_not_fit_is_a_wire_error(message: bytes) -> None:
    with pytest.raises(WireError):
        parse_server_frames(message)


@given(
    req=st.one_of(st.none(), reqs),
    sub=st.one_of(st.none(), ids),
    dropped=st.one_of(st.none(), st.integers(0, 2**31)),
    message=st.text(max_size=50),
    code=st.sampled_from(ErrorCode),
)
def test_error_frames_round_trip(
    req: str | int | None, sub: str | None, dropped: int | None, message: str, code: ErrorCode
) -> None:
    frame = encode_error(code, message, req=req, sub=sub, dropped=dropped)
    expected = ErrorFrame(code=code.value, message=message, req=req, sub=sub, dropped=dropped)
    assert parse_server_frame(frame) == expected


@given(req=reqs, result=json_values)
def test_result_frames_round_trip(req: str | int, result: object) -> None:
    assert parse_server_frame(encode_result(req, result)) == ResultFrame(req=req, result=result)


def test_an_event_without_raw_bytes_is_encoded() -> None:
    server = decode_server_event(b'{"type":"input_audio_buffer.cleared","event_id":"e1"}')
    lifecycle = SessionReady(model="gpt-realtime", upstream_session_id="sess_up")
    unknown = UnknownEvent("x.y", {"type": "x.y", "n": 1})
    cases: list[tuple[Event, dict[str, Any]]] = [
        (server, {"type": "input_audio_buffer.cleared", "event_id": "e1"}),
        (
            lifecycle,
            {
                "type": "rtbus.session.ready",
                "model": "gpt-realtime",
                "upstream_session_id": "sess_up",
            },
        ),
        (unknown, {"type": "x.y", "n": 1}),
    ]
    for event, expected in cases:
        envelope = Envelope("s", 1, expected["type"], event, 0.0)
        assert orjson.loads(event_json(envelope)) == expected


def test_an_exception_in_a_lifecycle_event_is_named_not_shown() -> None:
    from rtbus.actors import ActorFailed

    failed = ActorFailed("root/sessions", "s1", 1.0, exception=ValueError("sk-secret-in-here"))
    json = event_json(Envelope("root/sessions", 1, failed.type, failed, 0.0))
    assert b"sk-secret" not in json
    assert orjson.loads(json)["exception"] == "ValueError"


def _code(data: bytes | str, limits: Limits = LIMITS) -> tuple[ErrorCode, Any, Any, str]:
    with pytest.raises(WireError) as caught:
        parse_request(data, limits)
    assert caught.value.message
    return caught.value.code, caught.value.req, caught.value.sub, caught.value.message


@pytest.mark.parametrize(
    ("frame", "code", "req"),
    [
        (b"not json", ErrorCode.NOT_JSON, None),
        (b"", ErrorCode.NOT_JSON, None),
        (b"[1, 2]", ErrorCode.MALFORMED_FRAME, None),
        (b'"hello"', ErrorCode.MALFORMED_FRAME, None),
        (b'{"req": 7}', ErrorCode.MISSING_FIELD, 7),
        (b'{"op": "launch", "req": 7}', ErrorCode.UNKNOWN_OP, 7),
        (b'{"op": 3, "req": "r"}', ErrorCode.UNKNOWN_OP, "r"),
        (b'{"op": "subscribe", "req": 7}', ErrorCode.MISSING_FIELD, 7),
        (b'{"op": "subscribe", "sub": "a"}', ErrorCode.MISSING_FIELD, None),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "colour": 1}', ErrorCode.UNKNOWN_FIELD, 7),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "maxsize": 0}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "maxsize": true}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "overflow": "x"}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "types": []}', ErrorCode.INVALID_FIELD, 7),
        (
            b'{"op": "subscribe", "req": 7, "sub": "a", "types": {"a": 1}}',
            ErrorCode.INVALID_FIELD,
            7,
        ),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "types": "re[s"}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "subscribe", "req": 7, "sub": "a", "sessions": [1]}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "subscribe", "req": 7, "sub": " a"}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "send", "req": 7, "session": "s", "event": [1]}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "send", "req": 7, "event": {}}', ErrorCode.MISSING_FIELD, 7),
        (b'{"op": "credit", "sub": "a", "n": 0}', ErrorCode.INVALID_FIELD, None),
        (b'{"op": "hello", "req": 7, "versions": []}', ErrorCode.INVALID_FIELD, 7),
        (b'{"op": "list_sessions", "req": true}', ErrorCode.INVALID_FIELD, None),
        (b'{"op": "list_sessions", "req": -1}', ErrorCode.INVALID_FIELD, None),
    ],
)
def test_each_malformed_request_names_its_fault(frame: bytes, code: ErrorCode, req: Any) -> None:
    assert _code(frame)[:2] == (code, req)


def test_an_error_keeps_the_sub_so_a_bad_credit_finds_its_subscription() -> None:
    assert _code(b'{"op": "credit", "sub": "a", "n": -1}')[:3] == (
        ErrorCode.INVALID_FIELD,
        None,
        "a",
    )


def test_an_oversized_frame_is_refused_before_it_is_parsed() -> None:
    limits = Limits(max_frame_bytes=100)
    frame = orjson.dumps({"op": "list_sessions", "req": "x" * 100})
    code, _, _, message = _code(frame, limits)
    assert code is ErrorCode.FRAME_TOO_LARGE
    assert "100" in message


def test_too_many_patterns_are_refused() -> None:
    limits = Limits(max_patterns=2)
    frame = orjson.dumps({"op": "subscribe", "req": 1, "sub": "a", "types": ["a", "b", "c"]})
    assert _code(frame, limits)[0] is ErrorCode.INVALID_FIELD


def test_a_message_never_repeats_a_long_value() -> None:
    secret = "sk-" + "s" * 80
    frame = orjson.dumps({"op": secret, "req": 1})
    assert secret not in _code(frame)[3]


def test_text_and_binary_frames_read_alike() -> None:
    text = '{"op": "list_sessions", "req": 1}'
    assert parse_request(text, LIMITS) == parse_request(text.encode(), LIMITS)


@pytest.mark.parametrize(
    "frame",
    [
        b"nope",
        b"[]",
        b'{"frame": "mystery"}',
        b'{"frame": "result"}',
        b'{"frame": "error", "code": "x"}',
        b'{"frame":"event","sub":"a"}',
        b'{"frame":"event","sub":"a","event":{}}',
    ],
)
def test_a_server_frame_the_client_cannot_read_is_a_wire_error(frame: bytes) -> None:
    with pytest.raises(WireError):
        parse_server_frame(frame)


@pytest.mark.parametrize("value", [0, -1, 5.5, True, "1", None, float("nan"), float("inf")])
def test_a_block_timeout_is_seconds_above_zero_up_to_the_limit(value: object) -> None:
    frame = orjson.dumps({"op": "subscribe", "req": 1, "sub": "a", "block_timeout": value})
    code, _, _, message = _code(frame, Limits(max_block_timeout=5.0))
    assert code is ErrorCode.INVALID_FIELD
    assert "at most 5" in message


def test_a_block_timeout_within_the_limit_is_taken_as_seconds() -> None:
    frame = b'{"op": "subscribe", "req": 1, "sub": "a", "block_timeout": 2}'
    assert parse_request(frame, LIMITS) == Subscribe(req=1, sub="a", block_timeout=2.0)


def test_an_event_frame_with_a_field_from_a_later_version_is_read() -> None:
    frame = b'{"frame":"event","sub":"a","session_id":"s","seq":3,"type":"x.y","received_at":1.5,'
    frame += b'"age":0.25,"lag":0,"shard":7,"event":{"type":"x.y"}}'
    assert parse_server_frame(frame) == EventFrame(
        sub="a", session_id="s", seq=3, type="x.y", received_at=1.5, age=0.25, lag=0,
        event=b'{"type":"x.y"}',
    )  # fmt: skip


def test_an_event_frame_without_a_field_is_malformed_and_names_it() -> None:
    frame = b'{"frame":"event","sub":"a","session_id":"s","seq":3,"type":"x.y","received_at":1.5,'
    frame += b'"lag":0,"event":{"type":"x.y"}}'
    with pytest.raises(WireError, match="'age'") as caught:
        parse_server_frames(b'{"frame":"batch","sizes":[%d,2]}\n%s{}' % (len(frame), frame))
    assert caught.value.code is ErrorCode.MALFORMED_FRAME
