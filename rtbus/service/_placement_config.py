"""Placement's settings, errors and statistics.

Every setting is checked when a ``PlacementConfig`` is made; a wrong one raises
``ConfigError`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from rtbus.protocol import ConfigError, RtbusError

from ._placement_wire import Outcome, check_node_id

__all__ = [
    "COUNTS",
    "PlacementConfig",
    "PlacementError",
    "PlacementRefused",
    "PlacementStatistics",
    "PlacementTimeout",
]

#: Every count statistics report, so a reader never meets a missing one.
COUNTS: Final = (
    "requested",
    "timeouts",
    "opened",
    *(f"refused.{outcome.value}" for outcome in Outcome if outcome is not Outcome.OPENED),
    "reclaimed",
    "taken_over",
    "withdrawn",
    "malformed",
    "lease_lost",
)


def _node(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    try:
        check_node_id(value)
    except ValueError as exc:
        raise ConfigError(attribute.name, str(exc)) from None


def _capacity(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(attribute.name, f"must be an int of at least 0, got {value!r}")


def _seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):  # type: ignore[arg-type,operator]
        raise ConfigError(attribute.name, f"must be a positive number of seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class PlacementConfig:
    """How one node takes part in placement.

    * ``node`` -- this service's id in the cluster, unique among live processes (a second
      process with the same id cannot take the lease, and takes no requests).
    * ``max_sessions`` -- the room: the node takes requests while it runs fewer sessions
      (0: it only sends requests, never takes them).
    * ``request_timeout`` -- how long a caller waits for some node to open its session.
    * ``reclaim_idle`` -- how long a request may sit with a silent node before another takes
      it over; shorter than ``request_timeout``, or a reclaim comes too late to help.
    * ``lease_seconds`` -- how long a node counts as alive after it last renewed its lease
      (every third of it); past that, its claims may be taken over.
    * ``poll_seconds`` -- how long a read blocks, and how often a full node looks for room.
    * ``readiness_check`` -- the name of the check plugged into the service's readiness.
    """

    node: str = attrs.field(validator=_node)
    max_sessions: int = attrs.field(default=100, validator=_capacity)
    request_timeout: float = attrs.field(default=30.0, validator=_seconds)
    reclaim_idle: float = attrs.field(default=10.0, validator=_seconds)
    lease_seconds: float = attrs.field(default=15.0, validator=_seconds)
    poll_seconds: float = attrs.field(default=1.0, validator=_seconds)
    readiness_check: str = "placement"

    def __attrs_post_init__(self) -> None:
        if self.reclaim_idle >= self.request_timeout:
            raise ConfigError(
                "reclaim_idle",
                f"must be shorter than request_timeout ({self.request_timeout:g}s), "
                f"got {self.reclaim_idle:g}s",
            )


class PlacementError(RtbusError):
    """The root of placement's own errors (Redis errors are the link's)."""


class PlacementTimeout(PlacementError):
    """Raised when no node opened the session within ``timeout`` seconds: every node is
    full, down or cut off from Redis. The request is withdrawn; retrying later may work."""

    def __init__(self, session_id: str, timeout: float) -> None:
        super().__init__(
            f"no node opened session {session_id!r} within {timeout:g}s "
            "(all nodes full or unreachable)",
            session_id,
            timeout,
        )
        self.session_id = session_id
        self.timeout = timeout

    def __str__(self) -> str:
        return str(self.args[0])


class PlacementRefused(PlacementError):
    """Raised when the node that took the request could not open the session.

    ``outcome`` says how (``start_failed``, ``invalid_request``, ``not_running``), ``node``
    which node answered, ``reason`` why (the upstream's secrets scrubbed out).
    """

    def __init__(self, session_id: str, outcome: Outcome, node: str, reason: str) -> None:
        super().__init__(
            f"node {node!r} could not open session {session_id!r} ({outcome.value}): {reason}",
            session_id,
            outcome,
            node,
            reason,
        )
        self.session_id = session_id
        self.outcome = outcome
        self.node = node
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class PlacementStatistics:
    """A snapshot of one node's placement.

    ``counts``: ``requested`` (sent by this node), ``timeouts``, ``opened`` (taken and
    opened here), ``refused.<outcome>``, ``reclaimed`` (taken over from a silent node),
    ``taken_over`` (claims of dead nodes), ``withdrawn`` (requests gone before anyone took
    them), ``malformed``, ``lease_lost``.
    """

    node: str
    max_sessions: int
    room: int
    opening: int
    lease_held: bool
    redis_up: bool
    counts: Mapping[str, int]
