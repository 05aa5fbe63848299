"""The envelope: one published event, stamped once and shared by every subscriber."""

from __future__ import annotations

from typing import Final, Protocol

import attrs

from rtbus.protocol import (
    CLIENT_EVENT_CLASSES,
    SERVER_EVENT_CLASSES,
    ProtocolError,
    UnknownEvent,
    encode,
)

from ._codec import lifecycle_json

__all__ = ["Envelope", "Event", "Undecoded", "event_json"]


def _raw_repr(raw: bytes | None) -> str:
    # Frames can be large audio deltas; a repr should say how big, not dump them.
    return "None" if raw is None else f"<{len(raw)} bytes>"


class Event(Protocol):
    """What the bus carries: anything with a ``type`` -- an upstream server event, a client
    event, an ``UnknownEvent``, an rtbus lifecycle event, or ``Undecoded``."""

    @property
    def type(self) -> str: ...


@attrs.frozen
class Undecoded:
    """An event a raw subscriber did not decode (``raw=True``, through the gateway or from
    Redis alike): its type is here, its JSON in ``Envelope.raw``."""

    type: str


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
    event: Event
    received_at: float
    raw: bytes | None = attrs.field(default=None, repr=_raw_repr)


def event_json(envelope: Envelope) -> bytes:
    """The event of ``envelope`` as JSON, for whatever carries it past this process (the
    gateway, the Redis bridge).

    The upstream frame itself when the envelope has it: never decoded and encoded again. A
    protocol event is encoded; an ``rtbus.*`` lifecycle event goes through the one lifecycle
    codec (``_codec``: exceptions by class name only). Raises ``ProtocolError`` for anything
    else: it is not an event.
    """
    if envelope.raw is not None:
        return envelope.raw
    event = envelope.event
    if type(event) in _PROTOCOL_CLASSES:
        return encode(event)
    if attrs.has(type(event)) and isinstance(getattr(event, "type", None), str):
        return lifecycle_json(event)  # type: ignore[arg-type]
    raise ProtocolError(f"{type(event).__name__} is not an event", event_type=envelope.type)


_PROTOCOL_CLASSES: Final = frozenset(
    [*SERVER_EVENT_CLASSES.values(), *CLIENT_EVENT_CLASSES.values(), UnknownEvent]
)
