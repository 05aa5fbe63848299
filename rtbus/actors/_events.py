"""Supervision events: what a supervisor tells its observer about its children.

Events are frozen, slotted value classes on one base, with a class-level ``type`` string in the
``rtbus.actor.*`` namespace so the service can publish them on the bus and count them in metrics
without this layer knowing either exists. ``supervisor`` is the supervisor's path in the tree
(``"root/sessions"``), ``child`` the child's id, ``at`` the trio clock reading when it happened.

A supervisor calls its observer synchronously from its own task: the observer must neither raise
nor block (hand the event to a channel with ``send_nowait`` if it needs to do I/O).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import ClassVar

import attrs

__all__ = [
    "ActorExited",
    "ActorGaveUp",
    "ActorFailed",
    "ActorRestarted",
    "ActorStarted",
    "EventObserver",
    "ExitReason",
    "SupervisionEvent",
    "SupervisorGaveUp",
    "ignore_event",
]


class ExitReason(Enum):
    """Why an actor's task ended without an exception."""

    #: It returned on its own.
    NORMAL = "normal"
    #: It returned after its supervisor asked it to stop.
    SHUTDOWN = "shutdown"
    #: It outlived its shutdown grace period and was cancelled.
    KILLED = "killed"


@attrs.frozen
class SupervisionEvent:
    """Base of every supervision event."""

    type: ClassVar[str]
    supervisor: str
    child: str
    at: float


@attrs.frozen
class ActorStarted(SupervisionEvent):
    """A child signalled ready; ``incarnation`` counts its starts, from 1."""

    type: ClassVar[str] = "rtbus.actor.started"
    incarnation: int


@attrs.frozen
class ActorExited(SupervisionEvent):
    """A child's task ended without an exception."""

    type: ClassVar[str] = "rtbus.actor.exited"
    reason: ExitReason


@attrs.frozen
class ActorFailed(SupervisionEvent):
    """A child's task raised ``exception`` (after it had signalled ready)."""

    type: ClassVar[str] = "rtbus.actor.failed"
    exception: BaseException = attrs.field(eq=False)


@attrs.frozen
class ActorRestarted(SupervisionEvent):
    """A child is being started again, ``delay`` seconds after the exit that caused it.

    ``attempt`` is the consecutive restart number of the child whose exit caused the restart
    (siblings restarted with it under one_for_all / rest_for_one carry the same numbers).
    """

    type: ClassVar[str] = "rtbus.actor.restarted"
    attempt: int
    delay: float


@attrs.frozen
class ActorGaveUp(SupervisionEvent):
    """The supervisor gave up on ``child``: it exceeded its own restart budget
    (``ChildSpec.intensity``), so it was removed for good. Its siblings and the supervisor go
    on; ``abandoned`` is how many messages it left unhandled (what its ``abandon`` returned),
    ``exception`` its last failure (None if its last exit was a normal one)."""

    type: ClassVar[str] = "rtbus.actor.gave_up"
    max_restarts: int
    period: float
    abandoned: int
    exception: BaseException | None = attrs.field(eq=False)


@attrs.frozen
class SupervisorGaveUp(SupervisionEvent):
    """The supervisor exceeded its own restart intensity on ``child``'s exit and is failing:
    its parent decides what happens next."""

    type: ClassVar[str] = "rtbus.actor.supervisor_gave_up"
    max_restarts: int
    period: float


EventObserver = Callable[[SupervisionEvent], None]


def ignore_event(event: SupervisionEvent) -> None:
    """The default observer: supervision events go nowhere."""
