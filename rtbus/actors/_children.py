"""The children of one supervisor: who they are, in what order, and how one starts and stops.

This is the mechanism; ``_supervisor`` is the policy (what an exit means, what to restart).

Invariants:

* ``members`` are the supervised children, in start order (initial children in spec order,
  dynamic children in the order they became ready). Restart groups, reverse-order stops and
  snapshots all read this order.
* A dynamic child is *reserved* while it starts: its id is taken, but it is not a member until it
  has signalled ready, so a sibling's restart never touches a child that is still starting, and
  many dynamic children can start at once (a session's start waits on its upstream).
* ``stop`` is a stop request, then cancellation after the child's ``shutdown`` seconds; it
  returns only once the child's task has ended, and emits the exit it observed.
* ``stop_all`` cancels reserved starts, then stops members in reverse order; the supervisor
  then waits for ``wait_starts_settled`` so no start outlives it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from rtbus._backoff import Backoff

from ._actor import ChildSpec
from ._child import Child, ChildInfo, ChildState, Incarnation, Outcome, run_incarnation
from ._events import ActorExited, ActorFailed, ActorStarted, EventObserver
from ._exceptions import DuplicateChild, UnknownChild
from ._strategy import AFFECTED, Strategy

__all__ = ["ChildSet"]

Report = Callable[[Child, Incarnation], None]


class ChildSet:
    """The ordered children of one supervisor and the mechanics of starting and stopping them."""

    def __init__(
        self, path: tuple[str, ...], nursery: trio.Nursery, observer: EventObserver, report: Report
    ) -> None:
        self._path = path
        self._name = "/".join(path)
        self._nursery = nursery
        self._observer = observer
        self._report = report
        self._members: dict[str, Child] = {}
        self._reserved: dict[str, Child] = {}
        self._settled = trio.Event()

    # Membership.

    def reserve(self, spec: ChildSpec[object], backoff: Backoff) -> Child:
        """Take ``spec.id`` for a child about to start; raises ``DuplicateChild``."""
        if spec.id in self._members or spec.id in self._reserved:
            raise DuplicateChild(spec.id)
        child = self._reserved[spec.id] = Child.from_spec(spec, backoff)
        return child

    def admit(self, child: Child) -> None:
        """Make a ready reserved child a member."""
        del self._reserved[child.id]
        self._members[child.id] = child
        incarnation = child.current
        # Its exit may have been reported, and ignored, before it was a member.
        if incarnation is not None and incarnation.exited.is_set():
            self._report(child, incarnation)

    def release(self, child: Child) -> None:
        """Forget a reservation (admitted or not) and wake ``wait_starts_settled``."""
        if self._reserved.get(child.id) is child:
            del self._reserved[child.id]
        self._settled.set()
        self._settled = trio.Event()

    def remove(self, child: Child) -> None:
        del self._members[child.id]

    def find(self, id: str) -> Child:
        try:
            return self._members[id]
        except KeyError:
            raise UnknownChild(id) from None

    def is_current(self, child: Child, incarnation: Incarnation) -> bool:
        """Whether a report about ``incarnation`` is news: the supervisor has not acted on it."""
        return (
            self._members.get(child.id) is child
            and child.current is incarnation
            and child.state is ChildState.RUNNING
        )

    def group(self, strategy: Strategy, failed: Child) -> list[Child]:
        """The members that go down with ``failed`` under ``strategy``, in start order."""
        members = list(self._members.values())
        return [members[i] for i in AFFECTED[strategy](len(members), members.index(failed))]

    def due(self, now: float) -> list[Child]:
        """Members waiting to restart whose time has come, in start order."""
        return [c for c in self._restarting() if c.restart_at <= now]

    def next_restart_at(self) -> float:
        return min((c.restart_at for c in self._restarting()), default=math.inf)

    def _restarting(self) -> list[Child]:
        return [c for c in self._members.values() if c.state is ChildState.RESTARTING]

    # Introspection.

    def infos(self) -> tuple[ChildInfo, ...]:
        return tuple(child.info() for child in self._members.values())

    def count(self, state: ChildState) -> int:
        members = sum(child.state is state for child in self._members.values())
        return members + (len(self._reserved) if state is ChildState.STARTING else 0)

    # Starting and stopping.

    async def start(self, child: Child) -> None:
        """Start the next incarnation and wait until it is ready; raises ``ChildStartFailed``."""
        incarnation = child.begin(self._path)
        child.started_at = trio.current_time()
        child.handle = await self._nursery.start(run_incarnation, child, incarnation, self._report)
        child.state, child.started_at = ChildState.RUNNING, trio.current_time()
        self._emit(ActorStarted(self._name, child.id, trio.current_time(), incarnation.number))

    async def stop(self, child: Child) -> None:
        """Ask a running child to stop; cancel it after its grace period."""
        incarnation = child.current
        assert incarnation is not None
        child.state = ChildState.STOPPING
        incarnation.ctx.request_stop()
        with trio.move_on_after(child.spec.shutdown):
            await incarnation.exited.wait()
        if not incarnation.exited.is_set():
            incarnation.scope.cancel()
            await incarnation.exited.wait()
        assert incarnation.outcome is not None
        self.emit_exit(child, incarnation.outcome)

    async def stop_all(self, *, concurrently: bool = False) -> None:
        """Cancel reserved starts, then stop every running member: in reverse start order, or
        all at once when the members are peers (so a drain takes one grace period, not one per
        child)."""
        for child in self._reserved.values():
            if child.current is not None:
                child.current.scope.cancel()
        running = [c for c in reversed(self._members.values()) if c.state is ChildState.RUNNING]
        if concurrently:
            async with trio.open_nursery() as nursery:
                for child in running:
                    nursery.start_soon(self.stop, child)
        else:
            for child in running:
                await self.stop(child)
        self._members.clear()

    async def wait_starts_settled(self) -> None:
        """Wait until no reserved child is still starting."""
        while self._reserved:
            await self._settled.wait()

    # Events.

    def emit_exit(self, child: Child, outcome: Outcome) -> None:
        at = trio.current_time()
        if isinstance(outcome, Exception):
            self._emit(ActorFailed(self._name, child.id, at, exception=outcome))
        else:
            self._emit(ActorExited(self._name, child.id, at, reason=outcome))

    def _emit(self, event: ActorStarted | ActorExited | ActorFailed) -> None:
        self._observer(event)
