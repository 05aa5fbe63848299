"""Properties: any event we can build round-trips; nothing but ProtocolError escapes a decode."""

from __future__ import annotations

import typing
from typing import Any

import attrs
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtbus.protocol import _models as m
from rtbus.protocol._codec import (
    UnknownEvent,
    client_event_from_dict,
    decode_client_event,
    decode_server_event,
    encode,
)
from rtbus.protocol._errors import ProtocolError
from rtbus.protocol._models_compile import FieldType
from rtbus.protocol._null import NULL, Null

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(max_size=8),
    int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
}
# Unknown field names cannot collide with modeled ones: none of those starts with "x-".
EXTRA = st.dictionaries(st.text(max_size=4).map(lambda s: f"x-{s}"), JSON, max_size=2)


def for_type(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of a model field's type, as a user could build them."""
    t = FieldType.of(annotation)
    strategies = [_for_arm(arm) for arm in t.arms]
    if t.optional:
        strategies.append(st.none())
    if t.nullable:
        strategies.append(st.just(NULL))
    return st.one_of(strategies)


def _for_arm(arm: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(arm)
    if attrs.has(arm):
        return st.deferred(lambda: models(arm))
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(arm))
    if origin is tuple:
        return st.lists(for_type(typing.get_args(arm)[0]), max_size=2).map(tuple)
    if origin is not None and typing.get_args(arm)[0] is str and len(typing.get_args(arm)) == 2:
        return st.dictionaries(st.text(max_size=4), for_type(typing.get_args(arm)[1]), max_size=2)
    if arm in SCALARS:
        return SCALARS[arm]
    return JSON  # JsonValue


def models(cls: type) -> st.SearchStrategy[Any]:
    """Instances of a model class: tags fixed, every other field drawn, unknown fields too."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        if field.name == "_extra":
            fields["_extra"] = EXTRA
        elif _is_tag(hints[field.name], field.default):
            # Tags are fixed: an absent optional tag decodes to its value, by design.
            fields[field.name] = st.just(field.default)
        else:
            fields[field.name] = for_type(hints[field.name])
    return st.builds(cls, **fields)


def _is_tag(annotation: Any, default: object) -> bool:
    arms = FieldType.of(annotation).arms
    return len(arms) == 1 and typing.get_args(arms[0]) == (default,)


SERVER_EVENTS = st.sampled_from(m.SERVER_EVENT_CLASSES_IN_ORDER).flatmap(models)
CLIENT_EVENTS = st.sampled_from(m.CLIENT_EVENT_CLASSES_IN_ORDER).flatmap(models)
PROPERTY = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@PROPERTY
@given(SERVER_EVENTS)
def test_server_events_round_trip(event: Any) -> None:
    assert decode_server_event(encode(event)) == event


#: The codes a strict client decode may refuse a well-typed event with (the server's rules).
RULE_CODES = {
    "invalid_value",
    "integer_below_min_value",
    "integer_above_max_value",
    "decimal_below_min_value",
    "decimal_above_max_value",
    "array_above_max_length",
    "missing_required_parameter",
}


@PROPERTY
@given(CLIENT_EVENTS)
def test_client_events_round_trip_or_are_refused_for_a_named_reason(event: Any) -> None:
    # Client events are strict: an unknown field anywhere is refused, and so is a value the
    # server's rules refuse; everything else comes back as it went.
    refusal = _refusal(encode(event))
    if refusal is None:
        assert not _has_extra(event)
        assert decode_client_event(encode(event)) == event
        assert client_event_from_dict(orjson.loads(encode(event))) == event
    else:
        assert refusal.path is not None
        unknown = {"unknown_parameter"} if _has_extra(event) else set()
        assert refusal.code in RULE_CODES | unknown


def _refusal(frame: bytes) -> ProtocolError | None:
    try:
        decode_client_event(frame)
    except ProtocolError as exc:
        return exc
    return None


def _has_extra(value: Any) -> bool:
    if isinstance(value, tuple):
        return any(_has_extra(v) for v in value)
    if isinstance(value, dict):
        return any(_has_extra(v) for v in value.values())
    if not attrs.has(type(value)):
        return False
    if value._extra:
        return True
    return any(_has_extra(getattr(value, f.name)) for f in attrs.fields(type(value)))


@PROPERTY
@given(st.binary(max_size=64))
def test_garbage_bytes_raise_only_protocol_error(frame: bytes) -> None:
    _decode_or_protocol_error(frame)


@PROPERTY
@given(JSON)
def test_garbage_json_raises_only_protocol_error(value: Any) -> None:
    _decode_or_protocol_error(orjson.dumps(value))


@PROPERTY
@given(st.sampled_from([*m.SERVER_EVENT_CLASSES_IN_ORDER, *m.CLIENT_EVENT_CLASSES_IN_ORDER]), JSON)
def test_a_known_type_with_garbage_fields(cls: type, value: Any) -> None:
    payload = value if isinstance(value, dict) else {"field": value}
    payload["type"] = attrs.fields_dict(cls)["type"].default
    _decode_or_protocol_error(orjson.dumps(payload))


@PROPERTY
@given(SERVER_EVENTS | CLIENT_EVENTS, st.data())
def test_mutated_valid_payloads_raise_only_protocol_error(event: Any, data: st.DataObject) -> None:
    payload = orjson.loads(encode(event))
    mutated = _mutate(payload, data)
    _decode_or_protocol_error(orjson.dumps(mutated))


def _mutate(value: Any, data: st.DataObject) -> Any:
    """Replace, drop or retype one node somewhere in the JSON tree."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        if data.draw(st.booleans()):
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        return [*value[:index], _mutate(value[index], data), *value[index + 1 :]]
    return data.draw(JSON)


def _decode_or_protocol_error(frame: bytes) -> None:
    for decode in (decode_server_event, decode_client_event):
        try:
            event = decode(frame)
        except ProtocolError:
            continue
        else:
            assert attrs.has(type(event))
            if isinstance(event, UnknownEvent):
                assert orjson.loads(encode(event)) == orjson.loads(frame)


def test_null_strategy_is_used() -> None:
    # The strategies above must be able to draw NULL, or the null round trip goes untested.
    hint = typing.get_type_hints(m.AudioInputConfig)["turn_detection"]
    assert Null in typing.get_args(hint)
    assert FieldType.of(hint).nullable
