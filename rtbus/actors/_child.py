"""A supervisor's record of one child, and the task that runs one incarnation of it.

Invariants:

* A child is in exactly one ``ChildState``. A member's state changes only under its
  supervisor's lock; a dynamic child still starting belongs to the task starting it.
  STARTING: its function runs and has not signalled ready. RUNNING: it signalled ready and the
  supervisor has not acted on its exit yet (its task may already have ended, with the report
  queued). STOPPING: the supervisor asked it to stop and waits for its task. RESTARTING: it is
  down, with no handle, and comes back at ``restart_at``.
* Each start makes a new ``Incarnation`` with its own context, cancel scope and exit event, so a
  late report from an old incarnation is recognised and ignored.
* An exit before readiness is raised to whoever is starting the child, as ``ChildStartFailed``;
  an exit after readiness is stored on the incarnation and reported, never raised: the
  supervisor, not the nursery, decides what a child's failure means. Cancellation that the
  supervisor did not ask for (the tree is being cancelled) propagates and is never reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar, cast, overload

import attrs
import trio

from rtbus._backoff import Backoff, BackoffState

from ._actor import ActorContext, ChildSpec, RestartType
from ._events import ExitReason
from ._exceptions import ChildStartFailed
from ._restart import RestartWindow

__all__ = ["Child", "ChildInfo", "ChildState", "Incarnation", "Outcome", "run_incarnation"]

H = TypeVar("H")

#: How an incarnation ended: an exception after readiness, or a reason it returned.
Outcome = Exception | ExitReason


class ChildState(Enum):
    """Where a child is in its life under a supervisor."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    RESTARTING = "restarting"


@attrs.frozen
class ChildInfo:
    """A snapshot of one child: its id, state, restart type, incarnation and ready handle."""

    id: str
    state: ChildState
    restart: RestartType
    incarnation: int
    handle: object


@attrs.define(eq=False)
class Incarnation:
    """One run of a child's function."""

    ctx: ActorContext
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    exited: trio.Event = attrs.field(factory=trio.Event)
    outcome: Outcome | None = None

    @property
    def number(self) -> int:
        return self.ctx.incarnation


@attrs.define(eq=False)
class Child:
    """The supervisor's mutable record of one child, across its incarnations."""

    spec: ChildSpec[object]
    backoff: BackoffState
    state: ChildState = ChildState.STARTING
    current: Incarnation | None = None
    handle: object = None
    started_at: float = 0.0
    restart_at: float = math.inf
    #: (attempt, delay) of the restart this child is waiting for.
    pending: tuple[int, float] = (0, 0.0)
    #: Its own restart budget, if its spec gives it one; else the supervisor's counts.
    window: RestartWindow | None = None

    @classmethod
    def from_spec(cls, spec: ChildSpec[object], backoff: Backoff) -> Child:
        window = None if spec.intensity is None else RestartWindow(spec.intensity)
        return cls(spec, BackoffState(spec.backoff or backoff), window=window)

    @property
    def id(self) -> str:
        return self.spec.id

    def begin(self, parent: tuple[str, ...]) -> Incarnation:
        """Make the next incarnation and enter STARTING."""
        number = self.current.number + 1 if self.current else 1
        self.current = Incarnation(ActorContext((*parent, self.id), incarnation=number))
        self.state, self.handle = ChildState.STARTING, None
        return self.current

    def go_down(self, restart_at: float, pending: tuple[int, float]) -> None:
        """Wait, with no live handle, for the restart at ``restart_at``."""
        self.state, self.handle = ChildState.RESTARTING, None
        self.restart_at, self.pending = restart_at, pending

    def info(self) -> ChildInfo:
        number = self.current.number if self.current else 0
        return ChildInfo(self.id, self.state, self.spec.restart, number, self.handle)


class _Readiness(trio.TaskStatus[H], Generic[H]):
    """Forwards ``started()`` to trio and remembers that it happened."""

    def __init__(self, status: trio.TaskStatus[H]) -> None:
        self._status = status
        self.signalled = False

    @overload
    def started(self: _Readiness[None]) -> None: ...

    @overload
    def started(self, value: H) -> None: ...

    def started(self, value: H | None = None) -> None:
        self._status.started(cast("H", value))
        self.signalled = True


async def run_incarnation(
    child: Child,
    incarnation: Incarnation,
    report: Callable[[Child, Incarnation], None],
    *,
    task_status: trio.TaskStatus[object],
) -> None:
    """Run one incarnation of ``child``; after readiness, report its end instead of raising."""
    ready = _Readiness(task_status)
    try:
        with incarnation.scope:
            await child.spec.start(incarnation.ctx, task_status=ready)
    except Exception as exc:
        if not ready.signalled:
            raise ChildStartFailed(child.id, "failed before it signalled ready") from exc
        incarnation.outcome = exc
    else:
        if not ready.signalled:
            raise ChildStartFailed(child.id, _NOT_READY[incarnation.scope.cancelled_caught])
        incarnation.outcome = _reason(incarnation)
    finally:
        incarnation.exited.set()
    report(child, incarnation)


_NOT_READY = {
    False: "returned before it signalled ready",
    # Its supervisor stopped while it was starting.
    True: "was cancelled before it signalled ready",
}


def _reason(incarnation: Incarnation) -> ExitReason:
    if incarnation.scope.cancelled_caught:
        return ExitReason.KILLED
    if incarnation.ctx.stop_requested:
        return ExitReason.SHUTDOWN
    return ExitReason.NORMAL
