"""Call lifecycle events: what the service publishes about each call, beside its session's.

Plain values of the protocol layer, as rtbus's other lifecycle events are, so that every path
an event takes out of the process (the gateway, Redis, the log) can decode them into these
same classes. They travel the bus like the session lifecycle events (``rtbus.session.*``),
under ``rtbus.call.*`` types. The service publishes them under one sequence, ``calls`` (as
supervision events go under their supervisor's path), so a call that never became a session
still has its story told in order; each names its ``call_id``, and once the call has a
session, ``session_id`` (the call session's id, whose own events carry its sequence).

A call's story is one of:

    incoming -> accepted -> ended            (the usual: either side hung up)
    incoming -> accepted -> referred -> ended
    incoming -> rejected                     (by its route, with a SIP status)
    incoming -> ended                        (the accept failed: ``by`` says whose fault)

``ended.by`` is a small fixed vocabulary (``ENDED_BY``): ``caller`` (the far side hung up: the
upstream closed the call's connection normally), ``upstream`` (the upstream lost or refused
the call), ``rtbus`` (a hang-up or refer asked through the control surface, a drain, or a
call session that could not start).
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import attrs

__all__ = [
    "CALL_EVENTS",
    "CALL_LIFECYCLE_TYPES",
    "ENDED_BY",
    "CallAccepted",
    "CallEnded",
    "CallIncoming",
    "CallReferred",
    "CallEvent",
    "CallRejected",
    "EndedBy",
]

EndedBy = Literal["caller", "upstream", "rtbus"]
#: Who can end a call, as ``CallEnded.by`` says it.
ENDED_BY: Final[tuple[EndedBy, ...]] = ("caller", "upstream", "rtbus")


@attrs.frozen(kw_only=True)
class CallIncoming:
    """A SIP call rang (``realtime.call.incoming``); ``route`` is the route it matched.
    ``caller`` and ``callee`` are the INVITE's ``From`` and ``To`` (caller metadata, untrusted)."""

    type: ClassVar[str] = "rtbus.call.incoming"
    call_id: str
    caller: str | None
    callee: str | None
    route: str


@attrs.frozen(kw_only=True)
class CallAccepted:
    """The call was accepted (or, from a browser, created) and its session attached.
    ``accept_seconds`` runs from the webhook's arrival (or the browser's offer) to the
    upstream's answer."""

    type: ClassVar[str] = "rtbus.call.accepted"
    call_id: str
    session_id: str
    route: str
    accept_seconds: float


@attrs.frozen(kw_only=True)
class CallRejected:
    """The call was declined by its route; the caller hears SIP ``status_code``."""

    type: ClassVar[str] = "rtbus.call.rejected"
    call_id: str
    route: str
    status_code: int


@attrs.frozen(kw_only=True)
class CallReferred:
    """The call was transferred to ``target_uri`` (``tel:`` or ``sip:``); it ends next."""

    type: ClassVar[str] = "rtbus.call.referred"
    call_id: str
    session_id: str
    target_uri: str


@attrs.frozen(kw_only=True)
class CallEnded:
    """The call is over; ``by`` says who ended it (see the module), ``reason`` why, for
    people. ``session_id`` is empty when the call never had a session."""

    type: ClassVar[str] = "rtbus.call.ended"
    call_id: str
    session_id: str
    by: EndedBy
    reason: str
    seconds: float


CallEvent = CallIncoming | CallAccepted | CallRejected | CallReferred | CallEnded
"""Any ``rtbus.call.*`` event."""
CALL_EVENTS: Final = (CallIncoming, CallAccepted, CallRejected, CallReferred, CallEnded)
"""Every call lifecycle class (for a lifecycle codec's table)."""
CALL_LIFECYCLE_TYPES: Final = frozenset(event.type for event in CALL_EVENTS)
"""Every ``rtbus.call.*`` type the service publishes."""
