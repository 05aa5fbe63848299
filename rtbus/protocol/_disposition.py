"""What a Realtime failure means for the session that met it: the classifier, as data.

Most Realtime errors leave the session open, so a failure is classified before anyone acts:

* ``RECOVERABLE`` -- the session stays open (say, one bad client event). The session actor
  publishes it on the bus as that session's ``error`` event.
* ``RECONNECT`` -- the upstream session is gone or going (a lost connection, close codes
  1001/1005/1006/1011/1012/1013/1015, ``session_expired``, a 5xx or 429 at the handshake):
  reconnect with backoff, re-apply the session config and restore the conversation.
* ``FATAL`` -- retrying cannot help (a bad key, no quota, a deactivated account, an unknown
  model, a protocol violation): the session fails and is not retried.
* ``ENDED`` -- the server closed the session normally (close code 1000).

Lookups go from the most to the least specific key: an error event's ``code``, then its
``type``; a close code; an HTTP status, then its class. What no table names is ``RECOVERABLE``
for error events (the API's own advice: most errors are recoverable) and ``FATAL`` for close
codes and statuses nobody listed (never hammer an upstream we do not understand).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = [
    "Disposition",
    "classify_close",
    "classify_error",
    "classify_status",
    "reconnect_close_codes",
    "reconnect_error_codes",
    "reconnect_http_statuses",
]


class Disposition(enum.Enum):
    """What the session does about a failure."""

    RECOVERABLE = "recoverable"
    RECONNECT = "reconnect"
    FATAL = "fatal"
    ENDED = "ended"


_R, _C, _F = Disposition.RECOVERABLE, Disposition.RECONNECT, Disposition.FATAL

ERROR_CODES: Final[Mapping[str, Disposition]] = {
    "session_expired": _C,
    "invalid_api_key": _F,
    "insufficient_quota": _F,
    "account_deactivated": _F,
    "billing_hard_limit_reached": _F,
    "model_not_found": _F,
    "unsupported_country_region_territory": _F,
    "conversation_already_has_active_response": _R,
    "rate_limit_exceeded": _R,
}
ERROR_TYPES: Final[Mapping[str, Disposition]] = {
    "authentication_error": _F,
    "permission_error": _F,
    "insufficient_quota": _F,
    "invalid_request_error": _R,
    "rate_limit_error": _R,
    "server_error": _R,
}
CLOSE_CODES: Final[Mapping[int, Disposition]] = {
    1000: Disposition.ENDED,
    1001: _C,  # going away: the server restarts, or the session hit its time limit
    1005: _C,  # a close frame with no code: retried, as the official SDKs do
    1006: _C,  # no close frame: the connection dropped
    1011: _C,  # internal error
    1012: _C,  # service restart
    1013: _C,  # try again later
    1015: _C,  # the TLS handshake failed: retried, as the official SDKs do
    1008: _F,  # policy violation: the server refuses this client as it is
}
HTTP_STATUSES: Final[Mapping[int, Disposition]] = {
    408: _C,
    429: _C,
}
HTTP_STATUS_CLASSES: Final[Mapping[int, Disposition]] = {4: _F, 5: _C}


def classify_error(error_type: str, code: str | None) -> Disposition:
    """The disposition of a server ``error`` event with this ``type`` and ``code``."""
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    return ERROR_TYPES.get(error_type, _R)


def classify_close(code: int) -> Disposition:
    """The disposition of a WebSocket close with this code (1006: dropped, no close frame)."""
    return CLOSE_CODES.get(code, _F)


def classify_status(status: int) -> Disposition:
    """The disposition of an HTTP status that refused the WebSocket handshake."""
    return HTTP_STATUSES.get(status) or HTTP_STATUS_CLASSES.get(status // 100, _F)


def reconnect_close_codes() -> frozenset[int]:
    """The close codes this table reconnects after (the reconnect policy's default)."""
    return frozenset(code for code, d in CLOSE_CODES.items() if d is Disposition.RECONNECT)


def reconnect_error_codes() -> frozenset[str]:
    """The error codes this table reconnects after (the reconnect policy's default)."""
    return frozenset(code for code, d in ERROR_CODES.items() if d is Disposition.RECONNECT)


def reconnect_http_statuses() -> frozenset[int]:
    """The handshake statuses this table reconnects after (the reconnect policy's default)."""
    statuses = range(100, 600)
    return frozenset(s for s in statuses if classify_status(s) is Disposition.RECONNECT)
