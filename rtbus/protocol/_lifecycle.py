"""Lifecycle events: what a session publishes about itself, beside the server's events.

rtbus's own events, as plain values of the protocol layer, so that every path an event takes
out of the process decodes them into the same classes (``rtbus.bus``'s lifecycle codec).

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
    "SESSION_EVENTS",
    "SessionEvent",
    "SessionBadFrame",
    "SessionClosed",
    "SessionDisconnected",
    "SessionFailed",
    "SessionReady",
    "SessionEventRefused",
    "SessionReconnected",
    "SessionRecycled",
    "SessionResumed",
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
    """Connected again with the config re-applied, to a NEW upstream session.

    The conversation record is restored into it next (``rtbus.session.resumed`` follows);
    responses and audio buffers from before are gone upstream. ``reason`` says why and
    ``cause`` labels it.
    """

    type: ClassVar[str] = "rtbus.session.reconnected"
    reason: str
    attempt: int
    upstream_session_id: str
    cause: str = "other"


@attrs.frozen(kw_only=True)
class SessionResumed:
    """The conversation record was restored into a new upstream session; queued client
    events go out after this.

    ``items_restored`` went back as they were (audio as its transcript); ``items_dropped``
    were left out by the record's bound over the session's life (``summarized`` when a
    summary item stands in for them); ``items_untranscribed`` are user audio items with no
    transcript (turn input transcription on to keep them); ``items_refused`` the upstream
    refused. ``waited_seconds`` runs from the connection being lost (or the recycle
    starting) to now: how long the caller waited. ``interrupted_response_id`` names the
    response the loss cut off, kept in the record as ``incomplete``.
    """

    type: ClassVar[str] = "rtbus.session.resumed"
    cause: str
    items_restored: int
    items_dropped: int
    items_untranscribed: int
    items_refused: int
    summarized: bool
    previous_upstream_session_id: str
    upstream_session_id: str
    waited_seconds: float
    interrupted_response_id: str | None = None


@attrs.frozen(kw_only=True)
class SessionRecycled:
    """rtbus replaced the upstream session before its time limit, make-before-break: the next
    one was opened and given the conversation while this one finished its response, then the
    session switched at a turn boundary. ``switch_seconds`` is the pause at the switch."""

    type: ClassVar[str] = "rtbus.session.recycled"
    previous_upstream_session_id: str
    upstream_session_id: str
    items_restored: int
    switch_seconds: float


@attrs.frozen(kw_only=True)
class SessionEventRefused:
    """The upstream refused a client event: its ``event_id``, who sent it (``sender``: the
    control API, a gateway connection, a worker; empty when unknown) and the server's error.
    Published right after the server's ``error`` event."""

    type: ClassVar[str] = "rtbus.session.event_refused"
    event_id: str
    sender: str
    code: str | None
    message: str
    param: str | None


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


SessionEvent = (
    SessionReady
    | SessionDisconnected
    | SessionReconnected
    | SessionResumed
    | SessionRecycled
    | SessionEventRefused
    | SessionBadFrame
    | SessionFailed
    | SessionClosed
)
"""Any ``rtbus.session.*`` event."""

SESSION_EVENTS: Final[tuple[type[SessionEvent], ...]] = (
    SessionReady,
    SessionDisconnected,
    SessionReconnected,
    SessionResumed,
    SessionRecycled,
    SessionEventRefused,
    SessionBadFrame,
    SessionFailed,
    SessionClosed,
)
"""Every ``rtbus.session.*`` event class a session publishes."""

LIFECYCLE_TYPES: Final = frozenset(event.type for event in SESSION_EVENTS)
"""Every ``rtbus.session.*`` type a session publishes."""
