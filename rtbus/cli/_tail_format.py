"""How ``rtbus tail`` shows an envelope: one readable line, or one JSON line (sans-IO).

Readable: ``[TIME] SESSION #SEQ TYPE DETAIL``, where the time is the wall-clock time the
service received the event and the detail is what a person scanning a live stream wants from
that type -- an audio delta's size (never its base64), a text delta's text, a transcript as
the words said, a function call as ``name(arguments)``, an error's code and message, a
response's status, a lifecycle event's fields. ``styled_line`` is the same line with colours
by kind (errors red, function calls cyan, ...), for a terminal. JSON: the envelope's fields,
``received_at`` as wall-clock ISO 8601 (UTC), with the event as the server sent it (spliced
from the raw frame when the envelope carries it, so nothing is re-encoded), for ``jq``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson
from rich.text import Text

from rtbus.bus import Envelope, Undecoded, event_json, lifecycle_fields
from rtbus.protocol import UnknownEvent

from ._logging import rounded

__all__ = ["format_json", "format_line", "styled_line", "wall_clock_iso"]

_TEXT_LIMIT = 80  # characters of a text delta shown; the rest is elided


def format_line(envelope: Envelope, at: float | None = None) -> str:
    """One readable line for ``envelope``; ``at`` (wall-clock seconds) leads it as a time."""
    return styled_line(envelope, at).plain


def styled_line(envelope: Envelope, at: float | None = None) -> Text:
    """``format_line``'s line, with its parts styled for a terminal."""
    line = Text()
    if at is not None:
        line.append(_local_time(at) + " ", style="dim")
    line.append(envelope.session_id, style="bold")
    line.append(f" #{envelope.seq} ", style="dim")
    line.append(envelope.type, style=_style(envelope.type))
    detail = _detail(envelope)
    if detail:
        line.append(" " + detail, style=_DETAIL_STYLES.get(envelope.type, ""))
    return line


def format_json(envelope: Envelope, at: float | None = None) -> bytes:
    """One JSON line (no newline) for ``envelope``: its fields and the event as JSON;
    ``received_at`` is ``at`` (wall-clock seconds) in ISO 8601 when given."""
    head = orjson.dumps(
        {
            "session_id": envelope.session_id,
            "seq": envelope.seq,
            "type": envelope.type,
            "received_at": envelope.received_at if at is None else wall_clock_iso(at),
        }
    )
    return head[:-1] + b',"event":' + _event_json(envelope) + b"}"


def wall_clock_iso(at: float) -> str:
    """``at`` (seconds since the epoch) as ISO 8601 in UTC, to the millisecond."""
    moment = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def _local_time(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


def _style(type: str) -> str:
    # First match wins: the event type's family decides its colour.
    return next((style for prefix, style in _TYPE_STYLES if type.startswith(prefix)), "")


def _event_json(envelope: Envelope) -> bytes:
    if envelope.raw is not None:
        return envelope.raw
    return event_json(envelope)


def _detail(envelope: Envelope) -> str:
    if isinstance(envelope.event, Undecoded):
        return f"({len(envelope.raw or b'')} bytes, raw)"
    describe = _DETAILS.get(envelope.type)
    if describe is None:
        describe = _lifecycle if envelope.type.startswith("rtbus.") else _delta
    return describe(envelope.event)


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


def _function_call(event: object) -> str:
    return f"{getattr(event, 'name', '?')}({getattr(event, 'arguments', '')})"


def _transcript(speaker: str, field: str) -> Callable[[object], str]:
    def describe(event: object) -> str:
        return f"{speaker}: {getattr(event, field, '')}"

    return describe


def _response_done(event: object) -> str:
    response = getattr(event, "response", None)
    return f"status={getattr(response, 'status', None)}"


def _lifecycle(event: object) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in _lifecycle_fields(event).items())


def _lifecycle_fields(event: object) -> dict[str, Any]:
    """The fields the one lifecycle codec writes, less the type and the service's clock."""
    if isinstance(event, UnknownEvent):  # a lifecycle type this client does not know
        fields: Mapping[str, Any] = event.payload
    elif attrs.has(type(event)):
        fields = lifecycle_fields(event)  # type: ignore[arg-type]
    else:
        return {}
    return {k: _plain(v) for k, v in fields.items() if k not in {"type", "at"}}


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _short(value: object) -> str:
    text = str(rounded(value) if isinstance(value, float) else value)
    return repr(text) if " " in text or not text else text


_DETAILS: Mapping[str, Callable[[object], str]] = {
    "response.output_audio.delta": _audio,
    "error": _error,
    "response.done": _response_done,
    "response.function_call_arguments.done": _function_call,
    "response.output_audio_transcript.done": _transcript("assistant", "transcript"),
    "response.output_text.done": _transcript("assistant", "text"),
    "conversation.item.input_audio_transcription.completed": _transcript("user", "transcript"),
}
_TYPE_STYLES: tuple[tuple[str, str], ...] = (
    ("error", "bold red"),
    ("rtbus.session.failed", "bold red"),
    ("rtbus.actor.failed", "red"),
    ("rtbus.actor.gave_up", "bold red"),
    ("rtbus.gateway.", "bold yellow"),
    ("rtbus.", "yellow"),
    ("response.function_call", "cyan"),
    ("response.done", "green"),
    ("session.", "blue"),
)
# What a reader looks for stands out: what was said, what was called, what went wrong.
_DETAIL_STYLES: Mapping[str, str] = {
    "error": "red",
    "response.function_call_arguments.done": "bold cyan",
    "response.output_audio_transcript.done": "bold",
    "response.output_text.done": "bold",
    "conversation.item.input_audio_transcription.completed": "bold",
}
