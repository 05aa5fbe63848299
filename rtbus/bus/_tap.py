"""``BusTap``: what measures the bus as it works, inline (the service's metrics observer).

A tap is called synchronously: ``published`` for every envelope as it is stamped, ``taken``
for every envelope a subscriber takes for good, with the time it did. It must be cheap (a
dict lookup and a histogram bucket: a few hundred nanoseconds) and must never raise or
block: it runs inside a publish and inside a read. This replaces a subscriber that woke once
per event only to count it.
"""

from __future__ import annotations

from typing import Protocol

from ._envelope import Envelope

__all__ = ["BusTap"]


class BusTap(Protocol):
    """Told about every envelope the bus publishes and every one a subscriber takes."""

    def published(self, envelope: Envelope) -> None:
        """``envelope`` was stamped and is about to reach its subscriptions."""

    def taken(self, envelope: Envelope, now: float) -> None:
        """A subscriber took ``envelope`` for good at ``now`` (trio's clock)."""
