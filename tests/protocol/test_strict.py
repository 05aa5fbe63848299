"""Client events are checked as strictly as the server checks them, and no more strictly.

No more: every field name the ``openai`` package's client-event TypedDicts accept, at every
depth, is one our models accept (a walk over both trees). As strictly: unknown fields, wrong
types, enums, ranges and base64 audio are refused with the server's code and the dotted path.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs
import openai
import orjson
import pytest
import typing_extensions
from openai.types.realtime import RealtimeClientEventParam
from openai.types.realtime.response_create_event_with_references_param import (
    ResponseCreateEventWithReferencesParam,
)

from rtbus.protocol import (
    CLIENT_EVENT_CLASSES,
    ProtocolError,
    ResponseCreateEvent,
    ResponseItemReference,
    client_event_from_dict,
    decode_client_event,
)
from rtbus.protocol._models_compile import FieldType

pytestmark = pytest.mark.skipif(
    openai.__version__ != "3.54.0", reason="the walk is pinned to openai==3.54.0"
)


# -- the walk over openai's TypedDicts and our models ------------------------------------------


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and typing_extensions.is_typeddict(t)


def _sdk_dicts(t: Any) -> Iterator[Any]:
    """The TypedDicts a field of openai's param types can hold (through unions and lists)."""
    origin = typing.get_origin(t)
    if _is_typeddict(t):
        yield t
    elif origin in (typing.Union, types.UnionType, typing.Annotated, typing_extensions.Required):
        for arm in typing.get_args(t)[: 1 if origin is typing.Annotated else None]:
            yield from _sdk_dicts(arm)
    elif origin in (list, Iterable, typing.List, dict, Mapping):  # noqa: UP006
        yield from _sdk_dicts(typing.get_args(t)[-1])


def _our_models(t: Any) -> list[type]:
    """The model classes one of our fields can hold (through unions, tuples, mappings)."""
    out: list[type] = []
    for arm in FieldType.of(t).arms:
        origin = typing.get_origin(arm)
        if attrs.has(arm):
            out.append(arm)
        elif origin is tuple:
            out += _our_models(typing.get_args(arm)[0])
        elif origin is Mapping:
            out += _our_models(typing.get_args(arm)[1])
    return out


def _tag(keys: Mapping[str, Any], name: str) -> object:
    values = typing.get_args(_unrequired(keys[name])) if name in keys else ()
    return values[0] if len(values) == 1 else None


def _unrequired(t: Any) -> Any:
    origin = typing.get_origin(t)
    wrapped = origin in (typing_extensions.Required, typing_extensions.NotRequired)
    return typing.get_args(t)[0] if wrapped else t


def _sdk_tag(td: Any) -> tuple[object, object]:
    hints = typing.get_type_hints(td)
    return _tag(hints, "type"), _tag(hints, "role")


def _our_tag(cls: type) -> tuple[object, object]:
    fields = attrs.fields_dict(cls)
    return tuple(  # type: ignore[return-value]
        fields[name].default if name in fields and isinstance(fields[name].default, str) else None
        for name in ("type", "role")
    )


def _counterpart(td: Any, models: list[type], where: str) -> type:
    if len(models) == 1:
        return models[0]
    tag = _sdk_tag(td)
    matches = [m for m in models if _our_tag(m) == tag] or [
        m for m in models if _our_tag(m)[0] == tag[0]
    ]
    assert len(matches) == 1, f"{where}: no one model for openai's {td.__name__} ({tag})"
    return matches[0]


def mismatches(td: Any, cls: type, where: str, seen: set[tuple[Any, type]]) -> Iterator[str]:
    """Every field name openai accepts that ``cls`` does not, and the reverse, by path."""
    if (td, cls) in seen:
        return
    seen.add((td, cls))
    sdk = typing.get_type_hints(td)
    ours = typing.get_type_hints(cls)
    ours.pop("_extra", None)
    for name in sorted(set(sdk) ^ set(ours)):
        side = "openai only" if name in sdk else "rtbus only"
        yield f"{where}.{name} ({side})"
    for name in sorted(set(sdk) & set(ours)):
        dicts = list(_sdk_dicts(sdk[name]))
        models = _our_models(ours[name])
        if dicts and not models:
            yield f"{where}.{name}: openai takes an object, rtbus does not"
        for child in dicts:
            yield from mismatches(
                child, _counterpart(child, models, f"{where}.{name}"), f"{where}.{name}", seen
            )


def _client_event_params() -> list[Any]:
    arms = list(_sdk_dicts(RealtimeClientEventParam))
    return [*arms, ResponseCreateEventWithReferencesParam]


@pytest.mark.parametrize("param", _client_event_params(), ids=lambda td: td.__name__)
def test_our_models_accept_every_field_name_openai_accepts(param: Any) -> None:
    event_type = _sdk_tag(param)[0]
    assert isinstance(event_type, str)
    cls = CLIENT_EVENT_CLASSES[event_type]
    assert list(mismatches(param, cls, event_type, set())) == []


def test_the_walk_reaches_deep_fields() -> None:
    # A walk that stopped at the top would pass vacuously: it must have compared these.
    seen: set[tuple[Any, type]] = set()
    list(mismatches(ResponseCreateEventWithReferencesParam, ResponseCreateEvent, "r", seen))
    assert ResponseItemReference in {cls for _, cls in seen}
    assert len(seen) > 25


# -- as strictly as the server -----------------------------------------------------------------


def test_item_references_are_accepted_in_response_input() -> None:
    event = client_event_from_dict(
        {"type": "response.create", "response": {"input": [{"type": "item_reference", "id": "i"}]}}
    )
    assert isinstance(event, ResponseCreateEvent)
    assert event.response is not None
    assert event.response.input == (ResponseItemReference(id="i"),)


VOICE_OUT = {"type": "realtime", "audio": {"output": {"voice": "nope"}}}


def _session(**fields: object) -> dict[str, object]:
    return {"type": "session.update", "session": {"type": "realtime", **fields}}


def _vad(**fields: object) -> dict[str, object]:
    return _session(audio={"input": {"turn_detection": {"type": "server_vad", **fields}}})


REFUSED = [
    ({"type": "response.create", "extra": 1}, "unknown_parameter", "extra"),
    ({"type": "response.create", "response": {"extra": 1}}, "unknown_parameter", "response.extra"),
    (
        _session(audio={"output": {"voise": "ash"}}),
        "unknown_parameter",
        "session.audio.output.voise",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "x": 1}],
            },
        },
        "unknown_parameter",
        "item.content[0].x",
    ),
    (
        {"type": "session.update", "session": VOICE_OUT},
        "invalid_value",
        "session.audio.output.voice",
    ),
    (_session(output_modalities=["video"]), "invalid_value", "session.output_modalities[0]"),
    (_session(instructions=42), "invalid_type", "session.instructions"),
    ({"type": "session.update", "session": {}}, "missing_required_parameter", "session.type"),
    (_session(tools=[{"type": "function"}]), "missing_required_parameter", "session.tools[0].name"),
    (_session(max_output_tokens=0), "integer_below_min_value", "session.max_output_tokens"),
    (_session(max_output_tokens=4097), "integer_above_max_value", "session.max_output_tokens"),
    (
        _session(output_modalities=["text", "audio"]),
        "array_above_max_length",
        "session.output_modalities",
    ),
    (
        _session(audio={"output": {"speed": 2}}),
        "decimal_above_max_value",
        "session.audio.output.speed",
    ),
    (
        _vad(threshold=-0.1),
        "decimal_below_min_value",
        "session.audio.input.turn_detection.threshold",
    ),
    (
        _vad(idle_timeout_ms=10),
        "integer_below_min_value",
        "session.audio.input.turn_detection.idle_timeout_ms",
    ),
    ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_value", "audio"),
    (
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": "not base64!"}],
            },
        },
        "invalid_value",
        "item.content[0].audio",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": -1,
            "audio_end_ms": 0,
        },
        "integer_below_min_value",
        "content_index",
    ),
]


@pytest.mark.parametrize(("event", "code", "path"), REFUSED, ids=[p for *_, p in REFUSED])
def test_a_bad_client_event_is_refused_naming_the_servers_code_and_the_path(
    event: dict[str, Any], code: str, path: str
) -> None:
    for decode in (client_event_from_dict, lambda e: decode_client_event(orjson.dumps(e))):
        with pytest.raises(ProtocolError) as caught:
            decode(event)
        assert caught.value.code == code
        assert caught.value.path == path
        assert repr(path) in str(caught.value)
        assert caught.value.violation is not None
        assert caught.value.violation.segments[-1] == _last_segment(path)


def _last_segment(path: str) -> str | int:
    last = path.rsplit(".", 1)[-1]
    return int(last[last.index("[") + 1 : -1]) if last.endswith("]") else last


def test_messages_never_repeat_a_value_except_an_enums() -> None:
    secret = "sk-live-0123456789"
    for event in (
        {"type": "input_audio_buffer.append", "audio": secret + "!"},
        _session(instructions=[secret]),
        _session(max_output_tokens=10**20),
    ):
        with pytest.raises(ProtocolError) as caught:
            client_event_from_dict(event)
        assert secret not in str(caught.value)
        assert "100000000000000000000" not in str(caught.value)


def test_a_server_event_keeps_unknown_fields_as_before() -> None:
    # Strictness is for what clients send; a server that grows must never break a reader.
    from rtbus.protocol import decode_server_event

    frame = orjson.dumps({"type": "input_audio_buffer.cleared", "event_id": "e", "z_new": 1})
    assert decode_server_event(frame)._extra == {"z_new": 1}  # type: ignore[union-attr]
