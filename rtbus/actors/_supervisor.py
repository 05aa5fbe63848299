"""Supervisors: OTP supervision on trio nurseries.

A supervisor is an actor (``fn(ctx, *, task_status)``) that starts its children in its own
nursery, watches them, and restarts them by the tables in ``_strategy``. Its parent sees it as
one child: it is ready once all its initial children are ready, it stops by stopping them, and
it fails (``RestartIntensityExceeded``) when they need more restarts than it allows (see the
last invariant for children that have budgets of their own).

Invariants:

* One task, the supervisor's own, makes restart decisions; child tasks only report their exits
  on an unbounded channel (at most one report per incarnation, plus one re-report on admission,
  so it is bounded by the number of children). Every decision and every change of membership
  happens under ``_lock``, one whole step at a time.
* The supervisor never sleeps while holding the lock: backoff delays are deadlines
  (``Child.restart_at``) the loop waits for alongside exit reports.
* Initial children start in spec order, each ready before the next. Dynamic children start
  concurrently, outside the lock (see ``_children``). Stops go in reverse start order, or all
  at once with ``stop_concurrently``.
* Cancellation from outside (the tree is being cancelled) is not a failure: child tasks do not
  report it, and the loop that would act on reports is cancelled with them.
* Errors are raised only after the supervisor's nursery has closed, so a parent sees the
  supervisor's own exception, not an ExceptionGroup around it.
* A restart is counted against exactly one budget: the failed child's own
  (``ChildSpec.intensity``) if it has one, else the supervisor's. Past its own budget a child
  is given up on alone (removed, ``abandon`` called once, ``ActorGaveUp`` emitted) and the
  supervisor goes on; only past the supervisor's budget does the supervisor itself fail. So
  children with budgets of their own can never make their supervisor give up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import TypeVar, cast

import attrs
import trio

from rtbus._backoff import Backoff

from ._actor import ActorContext, ChildSpec, RestartType
from ._child import Child, ChildInfo, ChildState, Incarnation, Outcome
from ._children import ChildSet
from ._events import (
    ActorFailed,
    ActorGaveUp,
    ActorRestarted,
    EventObserver,
    SupervisorGaveUp,
    ignore_event,
)
from ._exceptions import ChildStartFailed, DuplicateChild, Fatal, RestartIntensityExceeded
from ._restart import RestartIntensity, RestartWindow
from ._strategy import RESTART_ON, RESTARTED_WITH_SIBLING, STRATEGIES, ExitOutcome, Strategy

__all__ = ["Supervisor", "SupervisorSpec", "SupervisorStatistics", "serve_supervisor"]

H = TypeVar("H")


def _child_specs(children: Iterable[ChildSpec[object]]) -> tuple[ChildSpec[object], ...]:
    specs = tuple(children)
    ids = [spec.id for spec in specs]
    for child_id in ids:
        if ids.count(child_id) > 1:
            raise DuplicateChild(child_id)
    return specs


@attrs.frozen
class SupervisorSpec:
    """What a supervisor supervises, and how.

    ``rng`` is the jitter source for backoff; pass ``random.Random(seed)`` for reproducible
    restart times. ``on_event`` receives every supervision event (see ``_events``).
    ``stop_concurrently`` is for peers with no start-order dependency (OTP's
    ``simple_one_for_one``, e.g. sessions): the supervisor stops them all at once, each with
    its own grace period, instead of one after another in reverse start order.
    """

    children: tuple[ChildSpec[object], ...] = attrs.field(default=(), converter=_child_specs)
    strategy: Strategy = attrs.field(
        default="one_for_one", validator=attrs.validators.in_(STRATEGIES)
    )
    intensity: RestartIntensity = attrs.field(factory=RestartIntensity)
    backoff: Backoff = attrs.field(factory=Backoff)
    on_event: EventObserver = ignore_event
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)
    stop_concurrently: bool = False

    def as_child(
        self, id: str, *, restart: RestartType = "permanent", shutdown: float = math.inf
    ) -> ChildSpec[Supervisor]:
        """This supervisor as a child of another (OTP's default shutdown for one: infinity)."""
        return ChildSpec(id, _NestedSupervisor(self), restart=restart, shutdown=shutdown)


@attrs.frozen
class SupervisorStatistics:
    """A snapshot of a supervisor: children by state, restarts, restarts it still allows."""

    supervisor: str
    starting: int
    running: int
    stopping: int
    restarting: int
    restarts_total: int
    remaining_intensity: int


class Supervisor(trio.abc.AsyncResource):
    """A running supervisor: the handle its start hands out. Made by ``serve_supervisor`` or
    by a parent through ``SupervisorSpec.as_child``."""

    def __init__(self, spec: SupervisorSpec, ctx: ActorContext, nursery: trio.Nursery) -> None:
        self._spec = spec
        self._ctx = ctx
        self._children = ChildSet(ctx.path, nursery, spec.on_event, self._report)
        self._lock = trio.Lock()
        self._window = RestartWindow(spec.intensity)
        self._restarts_total = 0
        self._reports, self._report_queue = trio.open_memory_channel[tuple[Child, Incarnation]](
            math.inf
        )
        self._gave_up: RestartIntensityExceeded | None = None
        self._done = trio.Event()

    @property
    def name(self) -> str:
        """The supervisor's path in the tree, e.g. ``"root/sessions"``."""
        return self._ctx.name

    async def start_child(self, spec: ChildSpec[H]) -> H:
        """Add and start a child; returns its handle once it signalled ready.

        Raises ``ChildStartFailed`` if it fails or returns before that (it is then not added),
        ``DuplicateChild`` if the id is taken, ``trio.ClosedResourceError`` once stopping.
        Many starts may be in flight at once; a child becomes a member when it is ready.
        """
        async with self._lock:
            self._check_open()
            child = self._children.reserve(spec, self._spec.backoff)
        try:
            await self._start_reserved(child)
        finally:
            self._children.release(child)
        return cast("H", child.handle)

    async def terminate_child(self, id: str) -> None:
        """Stop a child (stop request, then cancel after its grace period) and remove it.

        Raises ``UnknownChild`` if no member has that id (one still starting is not a member).
        """
        async with self._lock:
            child = self._children.find(id)
            if child.state is ChildState.RUNNING:
                await self._children.stop(child)
            self._children.remove(child)

    def which_children(self) -> tuple[ChildInfo, ...]:
        """Snapshots of the members, in start order."""
        return self._children.infos()

    def child(self, id: str) -> ChildInfo:
        """A snapshot of one member; raises ``UnknownChild``."""
        return self._children.find(id).info()

    def statistics(self) -> SupervisorStatistics:
        """Children by state, restarts so far, and how many more the intensity allows now."""
        return SupervisorStatistics(
            supervisor=self.name,
            starting=self._children.count(ChildState.STARTING),
            running=self._children.count(ChildState.RUNNING),
            stopping=self._children.count(ChildState.STOPPING),
            restarting=self._children.count(ChildState.RESTARTING),
            restarts_total=self._restarts_total,
            remaining_intensity=self._window.remaining(trio.current_time()),
        )

    async def aclose(self) -> None:
        """Stop every child in reverse start order, each with its grace period, and wait for
        the supervisor to end. Idempotent.

        On a nested supervisor this ends it as a normal exit, and its parent decides (a
        permanent child is restarted): to remove one, use the parent's ``terminate_child``.
        """
        self._ctx.request_stop()
        await self._done.wait()

    @property
    def _closing(self) -> bool:
        return self._ctx.stop_requested or self._gave_up is not None or self._done.is_set()

    def _check_open(self) -> None:
        if self._closing:
            raise trio.ClosedResourceError(f"supervisor {self.name!r} is stopping")

    async def _start_reserved(self, child: Child) -> None:
        try:
            await self._children.start(child)
        except ChildStartFailed as exc:
            if self._closing:
                raise trio.ClosedResourceError(f"supervisor {self.name!r} stopped") from exc
            raise
        async with self._lock:
            if self._closing:
                await self._children.stop(child)
                raise trio.ClosedResourceError(f"supervisor {self.name!r} stopped")
            self._children.admit(child)

    # The supervisor's own task.

    async def _serve(self, task_status: trio.TaskStatus[Supervisor]) -> BaseException | None:
        for spec in self._spec.children:
            child = self._children.reserve(spec, self._spec.backoff)
            try:
                await self._children.start(child)
            except ChildStartFailed as exc:
                self._children.release(child)
                await self._children.stop_all(concurrently=self._spec.stop_concurrently)
                return exc
            self._children.admit(child)
        task_status.started(self)
        await self._supervise()
        return self._gave_up

    async def _supervise(self) -> None:
        while not self._closing:
            report = await self._next_report()
            async with self._lock:
                if report is not None:
                    await self._on_report(*report)
                elif not self._closing:
                    await self._restart_due()
        async with self._lock:
            await self._children.stop_all(concurrently=self._spec.stop_concurrently)
        await self._children.wait_starts_settled()

    async def _next_report(self) -> tuple[Child, Incarnation] | None:
        """The next exit report; None when a restart is due or a stop was requested."""
        deadline = self._children.next_restart_at()
        with trio.move_on_at(deadline), self._ctx.cancel_on_stop():
            return await self._report_queue.receive()
        return None

    def _report(self, child: Child, incarnation: Incarnation) -> None:
        self._reports.send_nowait((child, incarnation))

    async def _on_report(self, child: Child, incarnation: Incarnation) -> None:
        # Exits the supervisor caused, or already acted on, are stale.
        if not self._children.is_current(child, incarnation):
            return
        assert incarnation.outcome is not None
        self._children.emit_exit(child, incarnation.outcome)
        await self._after_exit(child, incarnation.outcome)

    async def _after_exit(self, child: Child, outcome: Outcome) -> None:
        if _exit_outcome(outcome) not in RESTART_ON[child.spec.restart]:
            self._children.remove(child)
            return
        child.state = ChildState.RESTARTING
        now = trio.current_time()
        if not (child.window or self._window).admit(now):
            refuse = self._give_up if child.window is None else self._give_up_on
            refuse(child, outcome)
            return
        self._restarts_total += 1
        pending = child.backoff.next_retry(now - child.started_at, self._spec.rng)
        await self._take_down(child, pending)

    async def _take_down(self, failed: Child, pending: tuple[int, float]) -> None:
        """Stop the failed child's group and schedule it to come back after the delay."""
        group = self._children.group(self._spec.strategy, failed)
        for sibling in reversed(group):
            if sibling.state is ChildState.RUNNING:
                await self._children.stop(sibling)
        restart_at = trio.current_time() + pending[1]
        for member in group:
            if member is failed or RESTARTED_WITH_SIBLING[member.spec.restart]:
                member.go_down(restart_at, pending)
            else:
                self._children.remove(member)

    async def _restart_due(self) -> None:
        for child in self._children.due(trio.current_time()):
            attempt, delay = child.pending
            self._emit(ActorRestarted(*self._origin(child), attempt=attempt, delay=delay))
            try:
                await self._children.start(child)
            except ChildStartFailed as exc:
                self._emit(ActorFailed(*self._origin(child), exception=exc))
                # The loop picks up whatever else is due on its next turn.
                await self._after_exit(child, exc)
                return

    def _give_up_on(self, child: Child, outcome: Outcome) -> None:
        """The child is past its own budget: it alone fails for good."""
        limit = child.spec.intensity
        assert limit is not None
        self._children.remove(child)
        exception = outcome if isinstance(outcome, Exception) else None
        event = ActorGaveUp(
            *self._origin(child),
            max_restarts=limit.max_restarts,
            period=limit.period,
            abandoned=child.spec.abandon(),
            exception=exception,
        )
        self._emit(event)

    def _give_up(self, child: Child, outcome: Outcome) -> None:
        limit = self._spec.intensity
        self._emit(
            SupervisorGaveUp(
                *self._origin(child), max_restarts=limit.max_restarts, period=limit.period
            )
        )
        self._gave_up = RestartIntensityExceeded(
            self.name, child.id, limit.max_restarts, limit.period
        )
        if isinstance(outcome, Exception):
            self._gave_up.__cause__ = outcome

    def _emit(self, event: ActorRestarted | ActorFailed | ActorGaveUp | SupervisorGaveUp) -> None:
        self._spec.on_event(event)

    def _origin(self, child: Child) -> tuple[str, str, float]:
        return self.name, child.id, trio.current_time()


def _exit_outcome(outcome: Outcome) -> ExitOutcome:
    if not isinstance(outcome, Exception):
        return "normal"
    # A child that failed for good before it was ready again arrives as ChildStartFailed.
    fatal = isinstance(outcome, Fatal) or isinstance(outcome.__cause__, Fatal)
    return "fatal" if fatal else "failed"


async def _run_supervisor(
    spec: SupervisorSpec, ctx: ActorContext, task_status: trio.TaskStatus[Supervisor]
) -> None:
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(spec, ctx, nursery)
        try:
            failure = await supervisor._serve(task_status)
        finally:
            supervisor._done.set()
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def serve_supervisor(
    spec: SupervisorSpec,
    *,
    name: str = "root",
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a top-level supervisor (nursery start protocol; the handle is a ``Supervisor``).

    Returns after ``aclose()``. Raises ``ChildStartFailed`` (before ready) if an initial child
    fails to start, and ``RestartIntensityExceeded`` if it gives up.
    """
    await _run_supervisor(spec, ActorContext((name,)), task_status)


@attrs.frozen
class _NestedSupervisor:
    spec: SupervisorSpec

    async def __call__(
        self, ctx: ActorContext, /, *, task_status: trio.TaskStatus[Supervisor]
    ) -> None:
        await _run_supervisor(self.spec, ctx, task_status)
