"""Lifecycle events: what a session publishes about itself, beside the server's events.

They travel the bus like server events, in the session's sequence, under ``rtbus.session.*``
types, so a subscriber sees where the conversation upstream was replaced (``reconnected``)
and where frames were lost (``bad_frame``).

``reason`` is text for people; ``cause`` (on ``disconnected``, ``reconnected`` and ``failed``)
is the same failure as a label from a small fixed vocabulary (see ``_cause``), for metrics and
alerts that must not key on free text.
"""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

__all__ = [
    "LIFECYCLE_TYPES",
    "SessionBadFrame",
    "SessionClosed",
    "SessionDisconnected",
    "SessionFailed",
    "SessionReady",
    "SessionReconnected",
]


@attrs.frozen(kw_only=True)
class SessionReady:
    """The session is connected and its config applied, for the first time."""

    type: ClassVar[str] = "rtbus.session.ready"
    model: str
    upstream_session_id: str


@attrs.frozen(kw_only=True)
class SessionDisconnected:
    """The connection was lost; ``retry_in`` seconds until the next attempt."""

    type: ClassVar[str] = "rtbus.session.disconnected"
    reason: str
    attempt: int
    retry_in: float
    cause: str = "other"


@attrs.frozen(kw_only=True)
class SessionReconnected:
    """Connected again with the config re-applied: the conversation upstream is NEW.

    Items, responses and audio buffers from before are gone upstream; ``reason`` says why
    and ``cause`` labels it (``"recycled"`` when rtbus replaced the session before the
    upstream's time limit).
    """

    type: ClassVar[str] = "rtbus.session.reconnected"
    reason: str
    attempt: int
    upstream_session_id: str
    cause: str = "other"


@attrs.frozen(kw_only=True)
class SessionBadFrame:
    """The server sent a frame rtbus could not read; the session goes on."""

    type: ClassVar[str] = "rtbus.session.bad_frame"
    message: str


@attrs.frozen(kw_only=True)
class SessionFailed:
    """The session failed and will not reconnect; ``reason`` says why."""

    type: ClassVar[str] = "rtbus.session.failed"
    reason: str
    cause: str = "other"


@attrs.frozen(kw_only=True)
class SessionClosed:
    """The session ended normally."""

    type: ClassVar[str] = "rtbus.session.closed"
    reason: str


LIFECYCLE_TYPES: Final = frozenset(
    event.type
    for event in (
        SessionReady,
        SessionDisconnected,
        SessionReconnected,
        SessionBadFrame,
        SessionFailed,
        SessionClosed,
    )
)
"""Every ``rtbus.session.*`` type a session publishes."""
