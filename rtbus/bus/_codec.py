"""One codec for rtbus's own events wherever they leave the process: the gateway, Redis, logs.

rtbus publishes lifecycle events beside the upstream's (``rtbus.session.*`` from sessions,
``rtbus.call.*`` from the switchboard, ``rtbus.actor.*`` from supervisors, ``rtbus.bus.*``
from the bus itself). Every path out of
the process writes them with ``lifecycle_json`` and every path in reads them with
``decode_lifecycle``, so an in-process, a gateway and a Redis subscriber all get the same
class for ``rtbus.session.ready``.

Invariants:

* One table of classes, ``LIFECYCLE_EVENTS``, keyed by ``type``; a type it does not know
  (a newer service) decodes as ``UnknownEvent``, as an unknown upstream event does.
* One secret policy: an exception is written as its class name only (its message may hold
  anything, a secret included) and read back as a ``RemoteException`` of that name; enums as
  their values. Nothing else is dropped: ``decode_lifecycle(lifecycle_json(e))`` equals ``e``
  but for exceptions.
* ``lifecycle_fields`` is the same mapping, for a log line or a terminal.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import cattrs
import orjson

from rtbus.actors import (
    ActorExited,
    ActorFailed,
    ActorGaveUp,
    ActorRestarted,
    ActorStarted,
    SupervisionEvent,
    SupervisorGaveUp,
)
from rtbus.protocol import (
    CALL_EVENTS,
    SESSION_EVENTS,
    CallEvent,
    ProtocolError,
    SessionEvent,
    UnknownEvent,
)

from ._lifecycle import SubscriberDisconnected

__all__ = [
    "LIFECYCLE_EVENTS",
    "LifecycleEvent",
    "RemoteException",
    "decode_lifecycle",
    "lifecycle_fields",
    "lifecycle_json",
]

LifecycleEvent = SessionEvent | CallEvent | SupervisionEvent | SubscriberDisconnected
"""Any event rtbus publishes about itself."""


class RemoteException(Exception):
    """An exception that happened in another process: only its class name crossed (see the
    module), as ``name``; ``str()`` is that name too."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


_SUPERVISION: Final = (
    ActorStarted,
    ActorExited,
    ActorFailed,
    ActorRestarted,
    ActorGaveUp,
    SupervisorGaveUp,
)
LIFECYCLE_EVENTS: Final[Mapping[str, type[Any]]] = {
    cls.type: cls for cls in (*SESSION_EVENTS, *CALL_EVENTS, *_SUPERVISION, SubscriberDisconnected)
}
"""Every lifecycle event class, by its ``type``."""


def _unstructure_exception(exception: BaseException) -> str:
    return exception.name if isinstance(exception, RemoteException) else type(exception).__name__


def _structure_exception(value: object, _: object) -> BaseException:
    return RemoteException(str(value))


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(BaseException, _unstructure_exception)
    converter.register_structure_hook(BaseException, _structure_exception)
    converter.register_unstructure_hook(enum.Enum, lambda member: member.value)
    return converter


_CONVERTER: Final = _converter()


def lifecycle_fields(event: LifecycleEvent) -> dict[str, Any]:
    """``event``'s fields as JSON values, with its ``type`` (exceptions by class name)."""
    fields: dict[str, Any] = _CONVERTER.unstructure(event)
    return {"type": event.type, **fields}


def lifecycle_json(event: LifecycleEvent) -> bytes:
    """``event`` as the JSON every path out of the process carries."""
    return orjson.dumps(lifecycle_fields(event))


def decode_lifecycle(data: bytes | str | Mapping[str, Any]) -> LifecycleEvent | UnknownEvent:
    """The event ``lifecycle_json`` wrote; ``UnknownEvent`` for a type this side does not
    know. Raises ``ProtocolError`` for what is not one (no ``type``, a field that does not
    fit)."""
    fields = dict(data) if isinstance(data, Mapping) else _object(data)
    type_ = fields.pop("type", None)
    if not isinstance(type_, str):
        raise ProtocolError("a lifecycle event without a string 'type'")
    cls = LIFECYCLE_EVENTS.get(type_)
    if cls is None:
        return UnknownEvent(type=type_, payload={"type": type_, **fields})
    try:
        event: LifecycleEvent = _CONVERTER.structure(fields, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ProtocolError(f"a malformed {type_} event", event_type=type_) from exc
    return event


def _object(data: bytes | str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"a lifecycle event that is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ProtocolError("a lifecycle event that is not a JSON object")
    return value
