"""The envelope: one published event, stamped once and shared by every subscriber."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs
import orjson

from rtbus.protocol import (
    CLIENT_EVENT_CLASSES,
    SERVER_EVENT_CLASSES,
    ProtocolError,
    UnknownEvent,
    encode,
)

__all__ = ["Envelope", "event_json"]


def _raw_repr(raw: bytes | None) -> str:
    # Frames can be large audio deltas; a repr should say how big, not dump them.
    return "None" if raw is None else f"<{len(raw)} bytes>"


@attrs.frozen
class Envelope:
    """One event as published on the bus.

    ``seq`` numbers a session's envelopes from 1 with no gaps at publish time, so a subscriber
    that sees a jump knows exactly how many it missed. ``received_at`` is the monotonic time the
    frame arrived (set by the publisher), ``raw`` the frame's exact bytes when the publisher has
    them, so a gateway can forward without re-encoding. The same object goes to every
    subscription: never copied, never re-encoded.
    """

    session_id: str
    seq: int
    type: str
    event: object
    received_at: float
    raw: bytes | None = attrs.field(default=None, repr=_raw_repr)


def event_json(envelope: Envelope) -> bytes:
    """The event of ``envelope`` as JSON, for whatever carries it past this process (the
    gateway, the Redis bridge).

    The upstream frame itself when the envelope has it: never decoded and encoded again. A
    protocol event is encoded; an ``rtbus.*`` lifecycle event (an attrs class, or the mapping
    a remote client hands over) becomes its fields plus ``type``, enums by value and an
    exception by its class name only (its message may hold anything, a secret included).
    Raises ``ProtocolError`` for anything else: it is not an event.
    """
    if envelope.raw is not None:
        return envelope.raw
    event = envelope.event
    if type(event) in _PROTOCOL_CLASSES:
        return encode(event)
    if attrs.has(type(event)) or isinstance(event, Mapping):
        return orjson.dumps(_lifecycle_fields(envelope.type, event))
    raise ProtocolError(f"{type(event).__name__} is not an event", event_type=envelope.type)


_PROTOCOL_CLASSES: Final = frozenset(
    [*SERVER_EVENT_CLASSES.values(), *CLIENT_EVENT_CLASSES.values(), UnknownEvent]
)


def _lifecycle_fields(type: str, event: object) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": type}
    if isinstance(event, Mapping):
        fields.update({str(k): _plain(v) for k, v in event.items()})
    else:
        values = attrs.asdict(event, recurse=False)  # type: ignore[arg-type]
        fields.update({name: _plain(value) for name, value in values.items()})
    return fields


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, BaseException):
        return {"exception": type(value).__name__}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return type(value).__name__
