"""Conformance with the openai package, the schema reference.

For every event type, payloads are built by walking openai's pydantic models: every optional
field filled, every union arm and every literal value taken in turn across the payloads (and
every arm at once inside lists). Each payload is first validated by openai itself, in strict
mode, so it is a real event; then it must decode into our typed class, with models (never
dicts) wherever a model belongs, and encode back to the same JSON.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

import attrs
import openai
import orjson
import pydantic
import pytest
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

from rtbus.protocol import _models as m
from rtbus.protocol._codec import (
    CLIENT_EVENT_TYPES,
    PREVIEW_EVENT_ALIASES,
    SERVER_EVENT_CLASSES,
    SERVER_EVENT_TYPES,
    UnknownEvent,
    decode_client_event,
    decode_server_event,
    encode,
)
from rtbus.protocol._models_compile import FieldType

pytestmark = pytest.mark.skipif(
    openai.__version__ != "3.54.0", reason="payloads and type sets are pinned to openai==3.54.0"
)

Model = type[pydantic.BaseModel]


def _members(union: Any) -> list[Model]:
    if typing.get_origin(union) is typing.Annotated:
        return _members(typing.get_args(union)[0])
    if isinstance(union, type) and issubclass(union, pydantic.BaseModel):
        return [union]
    return [member for arm in typing.get_args(union) for member in _members(arm)]


def _type_string(model: Model) -> str:
    (value,) = typing.get_args(model.model_fields["type"].annotation)
    assert isinstance(value, str)
    return value


SERVER_MODELS = {_type_string(model): model for model in _members(RealtimeServerEvent)}
CLIENT_MODELS = {_type_string(model): model for model in _members(RealtimeClientEvent)}


# -- building payloads from openai's models ----------------------------------------------------


def _arms(t: Any) -> list[Any]:
    if typing.get_origin(t) is typing.Annotated:
        return _arms(typing.get_args(t)[0])
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return [a for arm in typing.get_args(t) for a in _arms(arm) if a is not type(None)]
    return [t]


def width(t: Any) -> int:
    """How many payloads it takes to use every arm and literal value under ``t``."""
    arms = _arms(t)
    own = len(arms)
    if len(arms) == 1 and typing.get_origin(arms[0]) is typing.Literal:
        own = len(typing.get_args(arms[0]))
    nested = [_width_inside(arm) for arm in arms]
    return max([own, *nested])


def _width_inside(arm: Any) -> int:
    if isinstance(arm, type) and issubclass(arm, pydantic.BaseModel):
        return max([1, *(width(f.annotation) for f in arm.model_fields.values())])
    if typing.get_origin(arm) in (list, dict):
        return width(typing.get_args(arm)[-1])
    return 1


def build(t: Any, k: int) -> Any:
    """Payload ``k`` for type ``t``: arm ``k`` of each union, value ``k`` of each literal."""
    arms = _arms(t)
    arm = arms[k % len(arms)]
    origin = typing.get_origin(arm)
    if isinstance(arm, type) and issubclass(arm, pydantic.BaseModel):
        return {name: build(f.annotation, k) for name, f in arm.model_fields.items()}
    if origin is typing.Literal:
        values = typing.get_args(arm)
        return values[k % len(values)]
    if origin is list:
        item = typing.get_args(arm)[0]
        return [build(item, j) for j in range(k, k + max(len(_arms(item)), 1))]
    if origin is dict:
        return {"key": build(typing.get_args(arm)[1], k)}
    return _SCALARS[arm](k)


_SCALARS: dict[Any, Any] = {
    str: lambda k: f"text-{k}",
    int: lambda k: k + 1,
    float: lambda k: k + 0.5,
    bool: lambda k: k % 2 == 0,
    object: lambda k: {"free": [k, "form", None, {"nested": True}]},
}


def payloads(model: Model) -> Iterator[dict[str, Any]]:
    """Every payload for ``model``: one per arm of its widest union."""
    for k in range(_width_inside(model)):
        yield build(model, k)


SERVER_CASES = [
    pytest.param(model, payload, id=f"{tag}-{k}")
    for tag, model in SERVER_MODELS.items()
    for k, payload in enumerate(payloads(model))
]
# The builder's values fit openai's types; the server also holds some fields to rules
# (``rtbus.protocol._server_rules``), which client payloads must follow to be decoded.
_SERVER_VALID: dict[str, Any] = {
    "audio": "AAAA",
    "voice": "alloy",
    "speed": 1.0,
    "strength": 0.5,
    "threshold": 0.5,
    "idle_timeout_ms": 5_000,
    "conversation": "auto",
}


def fit_server_rules(value: Any) -> Any:
    """``value`` with every scalar a server rule covers replaced by one that follows it."""
    if isinstance(value, list):
        return [fit_server_rules(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: _SERVER_VALID[k]
        if k in _SERVER_VALID and isinstance(v, str | int | float)
        else fit_server_rules(v)
        for k, v in value.items()
    }


CLIENT_CASES = [
    pytest.param(model, fit_server_rules(payload), id=f"{tag}-{k}")
    for tag, model in CLIENT_MODELS.items()
    for k, payload in enumerate(payloads(model))
]

SERVER_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)
CLIENT_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeClientEvent)


# -- checking the decoded objects ----------------------------------------------------------------


def assert_fully_typed(obj: Any, where: str = "") -> None:
    """No dict where a model belongs, anywhere in the tree; recurse into models and tuples."""
    hints = typing.get_type_hints(type(obj))
    for field in attrs.fields(type(obj)):
        if field.name == "_extra":
            assert getattr(obj, field.name) == {}, f"{where}.{field.name}: unexpected extras"
            continue
        _assert_value(
            getattr(obj, field.name), FieldType.of(hints[field.name]), f"{where}.{field.name}"
        )


def _assert_value(value: object, t: FieldType, where: str) -> None:
    models = [arm for arm in t.arms if attrs.has(arm)]
    if attrs.has(type(value)):
        assert type(value) in models, f"{where}: {type(value).__name__} not in {models}"
        assert_fully_typed(value, where)
    elif isinstance(value, tuple):
        (item,) = (typing.get_args(arm)[0] for arm in t.arms if typing.get_origin(arm) is tuple)
        for index, element in enumerate(value):
            _assert_value(element, FieldType.of(item), f"{where}[{index}]")
    elif isinstance(value, dict):
        assert not models, f"{where}: a dict where {models} belongs"


# -- the tests ----------------------------------------------------------------------------------


def test_server_event_types_are_openais() -> None:
    assert set(SERVER_MODELS) == SERVER_EVENT_TYPES
    # The brief said 47; openai 3.54.0's union has 46 members (46 distinct types).
    assert len(SERVER_EVENT_TYPES) == 46


def test_client_event_types_are_openais() -> None:
    assert set(CLIENT_MODELS) == CLIENT_EVENT_TYPES
    assert len(CLIENT_EVENT_TYPES) == 11


def test_every_union_member_has_a_class() -> None:
    assert [cls.__name__ for cls in m.SERVER_EVENT_CLASSES_IN_ORDER] == [
        _ga_class_name(tag) for tag in SERVER_MODELS
    ]
    assert [cls.__name__ for cls in m.CLIENT_EVENT_CLASSES_IN_ORDER] == [
        _ga_class_name(tag) for tag in CLIENT_MODELS
    ]


def _ga_class_name(tag: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in tag.replace("_", ".").split(".")) + "Event"


def test_payload_builder_reaches_every_arm() -> None:
    # The widest server event is an item union of nine kinds; all nine must be built.
    kinds = {
        (p["item"]["type"], p["item"].get("role"))
        for p in payloads(SERVER_MODELS["conversation.item.added"])
    }
    assert len(kinds) == 9


@pytest.mark.parametrize(("model", "payload"), SERVER_CASES)
def test_server_payload_decodes_typed_and_round_trips(
    model: Model, payload: dict[str, Any]
) -> None:
    assert type(SERVER_ADAPTER.validate_python(payload, strict=True)) is model
    event = decode_server_event(orjson.dumps(payload))
    assert not isinstance(event, UnknownEvent)
    assert event.type == payload["type"]
    assert_fully_typed(event)
    assert orjson.loads(encode(event)) == payload


@pytest.mark.parametrize(("model", "payload"), CLIENT_CASES)
def test_client_payload_decodes_typed_and_round_trips(
    model: Model, payload: dict[str, Any]
) -> None:
    assert type(CLIENT_ADAPTER.validate_python(payload, strict=True)) is model
    event = decode_client_event(orjson.dumps(payload))
    assert not isinstance(event, UnknownEvent)
    assert_fully_typed(event)
    assert orjson.loads(encode(event)) == payload


def test_encoded_client_events_validate_with_openai() -> None:
    # What we send is what openai's own types accept, for every payload we can build.
    for case in CLIENT_CASES:
        _, payload = case.values
        event = decode_client_event(orjson.dumps(payload))
        CLIENT_ADAPTER.validate_python(orjson.loads(encode(event)), strict=True)


def test_preview_aliases_are_the_beta_names_that_ga_renamed() -> None:
    from openai.types.beta.realtime import RealtimeServerEvent as PreviewServerEvent

    preview = {_type_string(model) for model in _members(PreviewServerEvent)}
    renamed = preview - SERVER_EVENT_TYPES
    # The preview transcription session event has no GA class of its shape: it stays unknown.
    assert renamed - {"transcription_session.updated"} == set(PREVIEW_EVENT_ALIASES)
    for alias, ga in PREVIEW_EVENT_ALIASES.items():
        assert ga in SERVER_EVENT_CLASSES
        assert alias.split(".")[-1] == ga.split(".")[-1]
