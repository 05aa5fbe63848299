"""The bus's own lifecycle events, published on the bus under ``BUS_SESSION``.

They go out under one pseudo-session, never under a session's id: a bounded set of sequence
counters, and a subscriber can take them all with ``sessions="rtbus/bus"`` or
``types="rtbus.bus.*"``.
"""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from ._overflow import OverflowPolicy

__all__ = ["BUS_SESSION", "SubscriberDisconnected"]

BUS_SESSION: Final = "rtbus/bus"
"""The ``session_id`` of the envelopes the bus publishes about itself."""


@attrs.frozen(kw_only=True)
class SubscriberDisconnected:
    """A subscription was cut loose because its subscriber kept a publisher waiting.

    ``subscription`` describes it (filters, policy, maxsize); ``reason`` is ``too_slow``;
    ``blocked`` is how long the publisher that gave up had waited (``block_timeout`` or a
    hair more); ``dropped`` how many envelopes the subscriber will never see; ``at`` the trio
    clock when it was cut.
    """

    type: ClassVar[str] = "rtbus.bus.subscriber_disconnected"
    subscription: str
    policy: OverflowPolicy
    reason: str
    maxsize: int
    block_timeout: float
    blocked: float
    dropped: int
    at: float
