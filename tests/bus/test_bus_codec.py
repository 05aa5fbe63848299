"""One codec for rtbus's own events: every lifecycle class round-trips to itself, an exception
crosses by its class name only, and an unknown type is an UnknownEvent."""

from __future__ import annotations

import orjson
import pytest

from rtbus.actors import ActorExited, ActorFailed, ActorGaveUp, ActorStarted, ExitReason
from rtbus.bus import (
    LIFECYCLE_EVENTS,
    OverflowPolicy,
    RemoteException,
    SubscriberDisconnected,
    decode_lifecycle,
    lifecycle_json,
)
from rtbus.protocol import (
    ProtocolError,
    SessionClosed,
    SessionReady,
    SessionResumed,
    UnknownEvent,
)

SAME = [
    SessionReady(model="gpt-realtime", upstream_session_id="sess_1"),
    SessionClosed(reason="closed by rtbus"),
    SessionResumed(
        cause="close_1006",
        items_restored=4,
        items_dropped=0,
        items_untranscribed=1,
        items_refused=0,
        summarized=False,
        previous_upstream_session_id="sess_1",
        upstream_session_id="sess_2",
        waited_seconds=0.25,
        interrupted_response_id="resp_1",
    ),
    ActorStarted("root/sessions", "s1", 1.5, incarnation=2),
    ActorExited("root/sessions", "s1", 2.0, reason=ExitReason.KILLED),
    SubscriberDisconnected(
        subscription="<Subscription>",
        policy=OverflowPolicy.BLOCK,
        reason="too_slow",
        maxsize=32,
        block_timeout=5.0,
        blocked=5.01,
        dropped=33,
        at=9.0,
    ),
]


@pytest.mark.parametrize("event", SAME, ids=lambda e: e.type)
def test_a_lifecycle_event_comes_back_as_the_same_class_and_value(event: object) -> None:
    decoded = decode_lifecycle(lifecycle_json(event))  # type: ignore[arg-type]
    assert type(decoded) is type(event)
    assert decoded == event


def test_an_exception_crosses_by_its_class_name_only() -> None:
    failed = ActorFailed("root/workers", "w", 1.0, exception=ValueError("sk-secret-in-here"))
    json = lifecycle_json(failed)
    assert b"sk-secret" not in json
    assert orjson.loads(json)["exception"] == "ValueError"
    decoded = decode_lifecycle(json)
    assert isinstance(decoded, ActorFailed)
    assert isinstance(decoded.exception, RemoteException)
    assert decoded.exception.name == "ValueError"
    assert lifecycle_json(decoded) == json, "and crosses again unchanged"
    gave_up = ActorGaveUp(
        "root/workers", "w", 2.0, max_restarts=5, period=60.0, abandoned=3, exception=None
    )
    assert decode_lifecycle(lifecycle_json(gave_up)) == gave_up


def test_every_lifecycle_class_is_in_the_table_under_its_type() -> None:
    assert all(cls.type == type_ for type_, cls in LIFECYCLE_EVENTS.items())
    assert {
        "rtbus.session.ready",
        "rtbus.actor.gave_up",
        "rtbus.bus.subscriber_disconnected",
    } <= set(LIFECYCLE_EVENTS)


def test_an_unknown_type_is_an_unknown_event_and_garbage_a_protocol_error() -> None:
    newer = decode_lifecycle(b'{"type":"rtbus.session.newer","x":1}')
    assert isinstance(newer, UnknownEvent)
    assert newer.payload == {"type": "rtbus.session.newer", "x": 1}
    for bad in (b"[]", b"not json", b'{"no":"type"}', b'{"type":"rtbus.session.ready"}'):
        with pytest.raises(ProtocolError):
            decode_lifecycle(bad)
