"""What a subscription does when its buffer is full."""

from __future__ import annotations

import enum

from ._errors import BusArgumentError

__all__ = ["OverflowPolicy", "parse_policy"]


class OverflowPolicy(enum.StrEnum):
    """A subscription's declared behaviour when an envelope arrives and its buffer is full.

    * ``BLOCK`` -- the publisher waits until there is room: nothing is lost, the slow
      subscriber back-pressures the session that publishes.
    * ``DROP_OLDEST`` -- the oldest queued envelope is discarded to make room.
    * ``DROP_NEWEST`` -- the arriving envelope is discarded.
    * ``DISCONNECT`` -- the subscription is closed; the subscriber's next read raises
      ``SubscriberOverflowError``.

    Drops are counted in the subscription's statistics (``dropped`` and ``lag``).
    """

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    DISCONNECT = "disconnect"


_CHOICES = ", ".join(repr(p.value) for p in OverflowPolicy)


def parse_policy(overflow: OverflowPolicy | str) -> OverflowPolicy:
    """The policy ``overflow`` names (an ``OverflowPolicy`` or its string value)."""
    try:
        return OverflowPolicy(overflow)
    except ValueError:
        problem = f"must be one of {_CHOICES}, got {overflow!r}"
        raise BusArgumentError("overflow", problem) from None
