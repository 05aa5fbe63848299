"""The bodies of webhook deliveries: ``realtime.call.incoming`` typed, the rest kept as data.

Sans-IO. ``decode_webhook_event`` reads a verified body; ``RealtimeCallIncoming.to_dict`` is the
shape the ``openai`` package's ``RealtimeCallIncomingWebhookEvent`` validates (the simulator
sends exactly that).

Invariants:

* A body that is not a JSON object with string ``id`` and ``type`` and an integer
  ``created_at`` is a ``ProtocolError`` (the sender's fault); a known ``type`` whose ``data``
  is misshapen is one too, naming the field.
* An event type rtbus does not model decodes to ``UnknownWebhookEvent`` with its ``data`` kept,
  so that a new kind of delivery is acknowledged rather than refused.
* SIP headers keep their order and repeats (the caller's INVITE as sent); lookups by name are
  case-insensitive, as SIP header names are.
"""

from __future__ import annotations

from typing import ClassVar, Final

import attrs
import orjson

from ._errors import ProtocolError

__all__ = [
    "CALL_INCOMING",
    "RealtimeCallIncoming",
    "SipHeader",
    "UnknownWebhookEvent",
    "WebhookEvent",
    "decode_webhook_event",
]

CALL_INCOMING: Final = "realtime.call.incoming"

JSONObject = dict[str, object]


@attrs.frozen
class SipHeader:
    """One header of the caller's SIP INVITE (untrusted caller metadata)."""

    name: str
    value: str


@attrs.frozen
class RealtimeCallIncoming:
    """A SIP call is waiting to be accepted or rejected by ``call_id``."""

    type: ClassVar[str] = CALL_INCOMING

    id: str
    created_at: int
    call_id: str
    sip_headers: tuple[SipHeader, ...] = ()
    sip_media_security: str | None = None

    def sip_header(self, name: str) -> str | None:
        """The first value of SIP header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next((h.value for h in self.sip_headers if h.name.lower() == wanted), None)

    def to_dict(self) -> JSONObject:
        """The event as the API sends it."""
        data: JSONObject = {
            "call_id": self.call_id,
            "sip_headers": [{"name": h.name, "value": h.value} for h in self.sip_headers],
        }
        if self.sip_media_security is not None:
            data["sip_media_security"] = self.sip_media_security
        return {
            "id": self.id,
            "object": "event",
            "created_at": self.created_at,
            "type": self.type,
            "data": data,
        }


@attrs.frozen
class UnknownWebhookEvent:
    """A delivery of a type rtbus does not model; ``data`` is as sent."""

    id: str
    created_at: int
    type: str
    data: object


WebhookEvent = RealtimeCallIncoming | UnknownWebhookEvent


def decode_webhook_event(body: bytes | str) -> WebhookEvent:
    """The event a (verified) webhook body holds."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("webhook body is not JSON") from exc
    if not isinstance(payload, dict):
        raise ProtocolError("webhook body is not a JSON object")
    event_id, event_type = _text(payload, "id", None), _text(payload, "type", None)
    created_at = _integer(payload, "created_at", event_type)
    if event_type == CALL_INCOMING:
        return _call_incoming(event_id, created_at, payload.get("data"))
    return UnknownWebhookEvent(event_id, created_at, event_type, payload.get("data"))


def _call_incoming(event_id: str, created_at: int, data: object) -> RealtimeCallIncoming:
    if not isinstance(data, dict):
        raise ProtocolError("data must be an object", event_type=CALL_INCOMING, path="data")
    headers = data.get("sip_headers")
    if not isinstance(headers, list):
        raise ProtocolError("must be a list", event_type=CALL_INCOMING, path="data.sip_headers")
    security = data.get("sip_media_security")
    return RealtimeCallIncoming(
        id=event_id,
        created_at=created_at,
        call_id=_text(data, "call_id", CALL_INCOMING, "data."),
        sip_headers=tuple(_sip_header(h, i) for i, h in enumerate(headers)),
        sip_media_security=security if isinstance(security, str) else None,
    )


def _sip_header(header: object, index: int) -> SipHeader:
    path = f"data.sip_headers.{index}."
    if not isinstance(header, dict):
        raise ProtocolError("must be an object", event_type=CALL_INCOMING, path=path[:-1])
    return SipHeader(
        _text(header, "name", CALL_INCOMING, path), _text(header, "value", CALL_INCOMING, path)
    )


def _text(obj: JSONObject, key: str, event_type: str | None, prefix: str = "") -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError("must be a string", event_type=event_type, path=prefix + key)
    return value


def _integer(obj: JSONObject, key: str, event_type: str | None) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("must be an integer", event_type=event_type, path=key)
    return value
