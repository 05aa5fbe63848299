"""Bounded labels for what a session counts: event types, error types and codes, close codes.

A server decides what it sends, and nothing bounds a server's strings: an event type rtbus
does not model, an error code nobody documented. A session's counters are keyed by these
labels, and metrics export them, so each value outside a known set becomes ``other`` when it
is counted, never later (the counters must not grow with what a server invents).
"""

from __future__ import annotations

from typing import Final

from rtbus.protocol import (
    CLIENT_EVENT_TYPES,
    ERROR_CODES,
    ERROR_TYPES,
    LIFECYCLE_TYPES,
    SERVER_EVENT_TYPES,
)
from rtbus.transport import CloseStatus

__all__ = [
    "CLOSE_CODES",
    "NONE",
    "OTHER",
    "PUBLISHED_TYPES",
    "client_event_label",
    "close_code_label",
    "error_code_label",
    "error_type_label",
    "server_event_label",
]

OTHER: Final = "other"
NONE: Final = "none"
PUBLISHED_TYPES: Final = SERVER_EVENT_TYPES | LIFECYCLE_TYPES
"""What a session publishes: the server's events and its own lifecycle events."""
# The codes the Realtime API documents for its error events, besides the classifier's.
_DOCUMENTED_CODES: Final = frozenset(
    {
        "array_above_max_length",
        "array_below_min_length",
        "decimal_above_max_value",
        "decimal_below_min_value",
        "input_audio_buffer_commit_empty",
        "integer_above_max_value",
        "integer_below_min_value",
        "invalid_event",
        "invalid_json",
        "invalid_type",
        "invalid_value",
        "item_already_exists",
        "item_not_found",
        "missing_required_parameter",
        "response_cancel_not_active",
        "string_above_max_length",
        "string_below_min_length",
        "unknown_parameter",
        "unsupported_content_type",
        "unsupported_event_for_transport",
    }
)
_ERROR_CODES: Final = _DOCUMENTED_CODES | frozenset(ERROR_CODES)
_ERROR_TYPES: Final = frozenset(ERROR_TYPES) | {"invalid_request_error", "server_error"}
CLOSE_CODES: Final = range(1000, 5000)
"""The close codes a close frame may carry (RFC 6455 7.4); any other is not a label."""
# 1006 is never sent in a close frame (RFC 6455 7.4.1): it is how a dropped connection reads.
_NO_CLOSE_FRAME: Final = 1006


def server_event_label(type: str) -> str:
    """``type`` if it is a GA server event type or an ``rtbus.session.*`` type, else other."""
    return type if type in PUBLISHED_TYPES else OTHER


def client_event_label(type: object) -> str:
    """``type`` if it is a GA client event type, else other."""
    return type if isinstance(type, str) and type in CLIENT_EVENT_TYPES else OTHER


def error_type_label(type: str | None) -> str:
    """A server error's ``type``, bounded (``none`` when absent)."""
    if type is None:
        return NONE
    return type if type in _ERROR_TYPES else OTHER


def error_code_label(code: str | None) -> str:
    """A server error's ``code``, bounded (``none`` when absent)."""
    if code is None:
        return NONE
    return code if code in _ERROR_CODES else OTHER


def close_code_label(close: CloseStatus | None) -> str:
    """How a connection ended: its close code, or ``none`` when no close frame came."""
    if close is None or close.code == _NO_CLOSE_FRAME:
        return NONE
    return str(close.code) if close.code in CLOSE_CODES else OTHER
