"""The Realtime codec: JSON frames <-> typed attrs events. Sans-IO; never imports trio.

``decode_server_event`` / ``decode_client_event`` turn one frame into one event object,
``encode`` turns one back into JSON bytes. The ``*_from_dict`` variants take an already parsed
object (the transport accepts plain dicts from users).

Invariants:

* Nothing but ``ProtocolError`` escapes a decode. It names the event type and the dotted path of
  the field to blame (``response.output[0].content[1].type``).
* Types are strict: a string where an int belongs is an error, never coerced. A ``float`` field
  takes a JSON integer as is (``1`` and ``1.0`` are one number in JSON).
* Server events are read forward compatibly: an unknown event ``type`` decodes to
  ``UnknownEvent``; an unknown field, on an event or any nested object, is kept in that
  object's ``_extra`` and encoded again, in place. An unknown ``type`` inside a nested union
  (a new item kind) is an error: it has no class.
* Client events are checked as strictly as the server checks them, so a typo is refused here
  and never costs a session upstream: an unknown field at any depth is an error, and so is a
  value outside the server's rules (``_server_rules``: ranges, base64 audio, voices). An
  unknown client event ``type`` still decodes to ``UnknownEvent`` (the caller decides).
* Every ``ProtocolError`` for a field carries a ``Violation`` with the server's error code
  (``unknown_parameter``, ``invalid_type``...), so a simulator words it as the server does.
* ``None`` means absent: JSON ``null`` and a missing optional field both decode to ``None`` and
  ``encode`` leaves ``None`` fields out. Fields where ``null`` means something take ``NULL``
  instead (see ``_null``), which round-trips as ``null``.
* An optional single-valued tag (``AudioPCM.type``) that is absent decodes to its value, so a
  model always says what it is.
* Preview event names that Azure preview deployments still send decode to their GA classes
  through ``PREVIEW_EVENT_ALIASES``; the object holds the GA ``type``.

How: one private cattrs converter is the registry. Hook factories compile, once per class, a
straight-line structure function (the way cattrs's own ``make_dict_structure_fn`` does) that
checks each field's type inline, fills the instance without attrs's frozen ``__init__``
(three times the cost; see ``_models_compile._twin_of``) and counts keys to spot unknown fields
without a set difference. Errors are rare, so they carry their path out by exception: a ``try``
costs nothing in CPython 3.11 until it catches, and each level adds its own segment on the way
up. Measured against ``orjson.loads`` alone by ``bench/bench_decode.py``.

A field's path in errors uses the JSON names; a message never repeats a value it was given,
except a rejected enum value (cut to 40 characters), so a secret pasted in the wrong field does
not end up in a log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast

import attrs
import orjson
from cattrs.preconf.orjson import make_converter

from ._errors import ProtocolError, Violation
from ._models import (
    CLIENT_EVENT_CLASSES_IN_ORDER,
    SERVER_EVENT_CLASSES_IN_ORDER,
    ClientEvent,
    ServerEvent,
)
from ._models_base import JsonValue
from ._models_compile import (
    Mismatch,
    describe_kind,
    structure_function,
    union_unstructure_function,
    unstructure_function,
)
from ._server_rules import SERVER_RULES

__all__ = [
    "CLIENT_EVENT_CLASSES",
    "CLIENT_EVENT_TYPES",
    "PREVIEW_EVENT_ALIASES",
    "SERVER_EVENT_CLASSES",
    "SERVER_EVENT_TYPES",
    "ClientEvent",
    "ServerEvent",
    "UnknownEvent",
    "client_event_from_dict",
    "decode_client_event",
    "decode_server_event",
    "encode",
    "server_event_from_dict",
]


@attrs.frozen
class UnknownEvent:
    """An event whose ``type`` rtbus does not model; ``payload`` is the whole JSON object.

    Decoding gives one for any type not in ``SERVER_EVENT_TYPES`` (or ``CLIENT_EVENT_TYPES``),
    so a server that learns a new event never breaks a reader. ``encode`` writes ``payload``
    back unchanged.
    """

    type: str
    payload: Mapping[str, JsonValue]


#: Preview (beta) event names -> the GA names whose classes decode them. Source: the preview
#: union ``openai.types.beta.realtime.RealtimeServerEvent`` against the GA one; the preview's
#: ``transcription_session.updated`` has no GA counterpart of the same shape and stays unknown.
PREVIEW_EVENT_ALIASES: Final[Mapping[str, str]] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}


def _type_of(cls: type) -> str:
    default = attrs.fields_dict(cls)["type"].default
    assert isinstance(default, str)
    return default


#: ``type`` string -> event class, for every modeled event (GA names only).
SERVER_EVENT_CLASSES: Final[Mapping[str, type[ServerEvent]]] = {
    _type_of(cls): cls for cls in SERVER_EVENT_CLASSES_IN_ORDER
}
CLIENT_EVENT_CLASSES: Final[Mapping[str, type[ClientEvent]]] = {
    _type_of(cls): cls for cls in CLIENT_EVENT_CLASSES_IN_ORDER
}
SERVER_EVENT_TYPES: Final = frozenset(SERVER_EVENT_CLASSES)
CLIENT_EVENT_TYPES: Final = frozenset(CLIENT_EVENT_CLASSES)

_converter = make_converter()
_converter.register_structure_hook_factory(
    attrs.has, lambda cls: structure_function(cls, _converter.get_structure_hook)
)
_converter.register_unstructure_hook_factory(
    attrs.has, lambda cls: unstructure_function(cls, _converter.get_unstructure_hook)
)


def _unstructure_unknown(event: UnknownEvent) -> Mapping[str, JsonValue]:
    if event.payload.get("type") == event.type and isinstance(event.payload, dict):
        return event.payload
    return {**event.payload, "type": event.type}


_converter.register_unstructure_hook(UnknownEvent, _unstructure_unknown)

# Client events structure through a second converter whose functions are strict; the two
# share the model classes, so each class has a lenient and a strict structure function.
_strict_converter = make_converter()
_strict_converter.register_structure_hook_factory(
    attrs.has,
    lambda cls: structure_function(cls, _strict_converter.get_structure_hook, SERVER_RULES),
)

_E = TypeVar("_E")


def _dispatch_table(
    classes: Mapping[str, type[_E]], aliases: Mapping[str, str], *, strict: bool = False
) -> dict[str, Callable[[Any], _E]]:
    # The generated structure functions take the value alone (cattrs also passes the type).
    converter = _strict_converter if strict else _converter
    table = {tag: _structure_hook(converter, cls) for tag, cls in classes.items()}
    for preview, ga in aliases.items():
        table[preview] = _renamed(table[ga], ga)
    return table


def _structure_hook(converter: Any, cls: type[_E]) -> Callable[[Any], _E]:
    return cast(Callable[[Any], _E], converter.get_structure_hook(cls))


def _renamed(structure: Callable[[Any], _E], ga: str) -> Callable[[Any], _E]:
    return lambda obj: structure({**obj, "type": ga})


_SERVER_DISPATCH: Final = _dispatch_table(SERVER_EVENT_CLASSES, PREVIEW_EVENT_ALIASES)
_CLIENT_DISPATCH: Final = _dispatch_table(CLIENT_EVENT_CLASSES, {}, strict=True)
_ENCODERS: Final = union_unstructure_function(_converter.get_unstructure_hook)


def decode_server_event(data: bytes | str) -> ServerEvent | UnknownEvent:
    """Decode one frame from the server; an unmodeled ``type`` gives an ``UnknownEvent``.

    Raises ``ProtocolError`` when the frame is not a JSON object with a string ``type`` or a
    field does not fit its model.
    """
    # The hot path, by hand: the two calls it saves are a tenth of a small event's cost.
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise _not_json(data, exc) from None
    try:
        structure = _SERVER_DISPATCH[obj["type"]]
    except (KeyError, TypeError):
        # Not an object, no or unhashable type, or not modeled: the careful path sorts it out.
        return _from_dict(obj, _SERVER_DISPATCH)
    try:
        return structure(obj)
    except Mismatch as exc:
        raise _mismatch(exc, obj["type"]) from None


def decode_client_event(data: bytes | str) -> ClientEvent | UnknownEvent:
    """Decode one frame a client sent, as strictly as the server checks it.

    Raises ``ProtocolError`` (with a ``Violation``) when the frame is not a JSON object with a
    string ``type``, a field is unknown, missing or of the wrong type, or a value breaks one of
    the server's rules; an unmodeled ``type`` gives an ``UnknownEvent``.
    """
    return _from_dict(_loads(data), _CLIENT_DISPATCH)


def server_event_from_dict(obj: object) -> ServerEvent | UnknownEvent:
    """Structure an already parsed server event (a ``dict`` as ``orjson.loads`` gives)."""
    return _from_dict(obj, _SERVER_DISPATCH)


def client_event_from_dict(obj: object) -> ClientEvent | UnknownEvent:
    """Structure a client event given as a plain ``dict`` (nested models may be instances).

    Raises ``ProtocolError`` as ``decode_client_event`` does.
    """
    return _from_dict(obj, _CLIENT_DISPATCH)


def encode(event: object) -> bytes:
    """The JSON bytes of an event (or any model object); ``type`` is always present.

    ``None`` fields are left out, ``NULL`` fields written as ``null``, unknown fields kept.
    Raises ``ProtocolError`` for an object that is not a model or holds a non-JSON value.
    """
    if not attrs.has(type(event)):
        raise ProtocolError(f"cannot encode {type(event).__name__}: not a Realtime model")
    try:
        return orjson.dumps(_ENCODERS(event))
    except (TypeError, AttributeError, orjson.JSONEncodeError) as exc:
        event_type = getattr(event, "type", None)
        raise ProtocolError(
            f"cannot encode {type(event).__name__}: {exc}",
            event_type=event_type if isinstance(event_type, str) else None,
        ) from None


def _loads(data: bytes | str) -> object:
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise _not_json(data, exc) from None


def _not_json(data: object, exc: Exception) -> ProtocolError:
    if not isinstance(data, bytes | bytearray | memoryview | str):
        return ProtocolError(f"frame must be bytes or str, not {type(data).__name__}")
    reason = exc.msg if isinstance(exc, orjson.JSONDecodeError) else str(exc)
    return ProtocolError(f"frame is not valid JSON ({reason})")


def _mismatch(exc: Mismatch, event_type: str) -> ProtocolError:
    violation = Violation(
        exc.code,
        tuple(reversed(exc.path)),
        expected=exc.expected,
        allowed=exc.allowed,
        limit=exc.limit,
    )
    return ProtocolError(
        exc.message, event_type=event_type, path=exc.render_path(), violation=violation
    )


def _from_dict(obj: object, dispatch: Mapping[str, Callable[[Any], _E]]) -> _E | UnknownEvent:
    if not isinstance(obj, dict):
        raise ProtocolError(f"an event must be a JSON object, not {describe_kind(obj)}")
    event_type = obj.get("type")
    if not isinstance(event_type, str):
        problem = "has no 'type'" if event_type is None else "has a 'type' that is not a string"
        raise ProtocolError(f"the event {problem}", path=None if event_type is None else "type")
    structure = dispatch.get(event_type)
    if structure is None:
        return UnknownEvent(event_type, obj)
    try:
        return structure(obj)
    except Mismatch as exc:
        raise _mismatch(exc, event_type) from None
