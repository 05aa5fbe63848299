"""How ``rtbus tail`` shows an envelope: one readable line, or one JSON line (sans-IO).

Readable: ``SESSION #SEQ TYPE DETAIL``, where the detail is what a person scanning a live
stream wants from that type -- an audio delta's size (never its base64), a text delta's text,
an error's code and message, a response's status, a lifecycle event's fields. JSON: the
envelope's fields with the event as the server sent it (spliced from the raw frame when the
envelope carries it, so nothing is re-encoded), for ``jq``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from rtbus.bus import Envelope
from rtbus.protocol import encode

__all__ = ["format_json", "format_line"]

_TEXT_LIMIT = 80  # characters of a text delta shown; the rest is elided


def format_line(envelope: Envelope) -> str:
    """One readable line for ``envelope``."""
    head = f"{envelope.session_id} #{envelope.seq} {envelope.type}"
    detail = _detail(envelope)
    return f"{head} {detail}" if detail else head


def format_json(envelope: Envelope) -> bytes:
    """One JSON line (no newline) for ``envelope``: its fields and the event as JSON."""
    head = orjson.dumps(
        {
            "session_id": envelope.session_id,
            "seq": envelope.seq,
            "type": envelope.type,
            "received_at": envelope.received_at,
        }
    )
    return head[:-1] + b',"event":' + _event_json(envelope) + b"}"


def _event_json(envelope: Envelope) -> bytes:
    if envelope.raw is not None:
        return envelope.raw
    if isinstance(envelope.event, bytes):
        return envelope.event  # a raw subscription: the frame itself
    if envelope.type.startswith("rtbus."):
        return orjson.dumps(_lifecycle_fields(envelope.event))
    return encode(envelope.event)


def _detail(envelope: Envelope) -> str:
    event = envelope.event
    if isinstance(event, bytes):
        return f"({len(event)} bytes, raw)"
    describe = _DETAILS.get(envelope.type)
    if describe is None:
        describe = _lifecycle if envelope.type.startswith("rtbus.") else _delta
    return describe(event)


def _audio(event: object) -> str:
    delta = getattr(event, "delta", "")
    return f"{_base64_size(delta)} bytes" if isinstance(delta, str) else ""


def _base64_size(text: str) -> int:
    return len(text) * 3 // 4 - text[-2:].count("=")


def _delta(event: object) -> str:
    delta = getattr(event, "delta", None)
    if not isinstance(delta, str):
        return ""
    shown = delta if len(delta) <= _TEXT_LIMIT else delta[: _TEXT_LIMIT - 1] + "…"
    return repr(shown)


def _error(event: object) -> str:
    error = getattr(event, "error", None)
    code = getattr(error, "code", None) or getattr(error, "type", None) or "error"
    return f"{code}: {getattr(error, 'message', '')}"


def _response_done(event: object) -> str:
    response = getattr(event, "response", None)
    return f"status={getattr(response, 'status', None)}"


def _lifecycle(event: object) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in _lifecycle_fields(event).items())


def _lifecycle_fields(event: object) -> dict[str, Any]:
    if isinstance(event, Mapping):  # as a remote bus client may hand it over
        return {k: v for k, v in event.items() if k not in {"type", "at"}}
    if not attrs.has(type(event)):
        return {}
    fields = attrs.asdict(event, recurse=False)  # type: ignore[arg-type]
    fields.pop("at", None)  # the service's clock: meaningless here
    return {k: _plain(v) for k, v in fields.items()}


def _plain(value: object) -> object:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return getattr(value, "value", value)  # an enum's value


def _short(value: object) -> str:
    text = str(value)
    return repr(text) if " " in text or not text else text


_DETAILS: Mapping[str, Callable[[object], str]] = {
    "response.output_audio.delta": _audio,
    "error": _error,
    "response.done": _response_done,
}
