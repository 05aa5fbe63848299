"""The envelope: one published event, stamped once and shared by every subscriber."""

from __future__ import annotations

import attrs

__all__ = ["Envelope"]


def _raw_repr(raw: bytes | None) -> str:
    # Frames can be large audio deltas; a repr should say how big, not dump them.
    return "None" if raw is None else f"<{len(raw)} bytes>"


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
    event: object
    received_at: float
    raw: bytes | None = attrs.field(default=None, repr=_raw_repr)
