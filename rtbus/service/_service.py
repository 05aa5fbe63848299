"""The service: the supervision tree that runs sessions and workers around one bus.

    root (one_for_one)
    ├── system    (one_for_one, static: the service's own workers, e.g. ``rtbus-log``)
    ├── workers   (one_for_one, dynamic: the subscriber actors ``add_worker`` makes)
    └── sessions  (one_for_one, dynamic: one transient actor per Realtime session)

Invariants:

* Failures stay where they happen. Every session and every user worker has a restart budget
  of its own (``session_intensity``, ``worker_intensity``: ``ChildSpec.intensity``), so the
  sessions and workers supervisors never give up because of one child: past its budget that
  child alone fails for good (``rtbus.actor.gave_up``, counted), and is abandoned: a session
  is dropped (its waiting senders fail), a worker's subscription is closed and the envelopes
  it had not handled are counted as lost. Only the service's own parts (the system workers,
  the supervisors) share budgets, so only their failures can take the service down.
* No user worker shares a supervisor with the log worker: none can take it down. Metrics
  are no worker at all: the bus's tap (``ServiceMetrics.observer``) measures every envelope
  inline as it is published and as it is taken, so no subscriber wakes per event to count.
* System workers start first and stop last, then user workers, then sessions: nothing a
  draining session publishes lacks its worker.
* Supervision events (``rtbus.actor.*``) are published on the bus under their supervisor's
  path (``root/sessions``; ``event.child`` names the actor), so they never mix with a
  session's own sequence.

Closing the service is a graceful drain: sessions take no more client events, let their
running response finish within their shutdown grace, and close their WebSocket with 1000;
then workers finish what they hold; then the bus closes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from rtbus.actors import (
    ActorContext,
    Backoff,
    ChildSpec,
    DuplicateChild,
    RestartIntensity,
    SupervisionEvent,
    Supervisor,
    SupervisorSpec,
    SupervisorStatistics,
    UnknownChild,
    serve_supervisor,
)
from rtbus.bus import Bus, BusLimits, OverflowPolicy, Subscription, Worker, WorkerHandler
from rtbus.metrics import ServiceMetrics
from rtbus.protocol import AzureConfig, ClientEvent, EventOutcome, OpenAIConfig, RealtimeConfig
from rtbus.session import (
    RefusalHandler,
    Session,
    SessionCounts,
    SessionSpec,
    SessionStatistics,
)

from ._placement_wire import PlacedSession
from ._readiness import Readiness, ReadinessCheck, ReadinessChecks, supervision_problem
from ._reconciler import SessionReconciler

if TYPE_CHECKING:
    from ._placement import Placement
    from ._switchboard import Switchboard

__all__ = [
    "DrainSummary",
    "PER_CHILD_INTENSITY",
    "RECONCILE_BACKOFF",
    "Service",
    "ServiceConfig",
    "SystemWorker",
    "open_service",
]

_LIFECYCLE_BUFFER = 1024
# The reason label of rtbus_worker_envelopes_lost_total for a worker given up on.
_GAVE_UP = "gave_up"

#: The default restart budget of one session or one worker.
PER_CHILD_INTENSITY = RestartIntensity(max_restarts=5, period=60.0)
#: The default delay curve before a configured session that failed for good is opened again.
RECONCILE_BACKOFF = Backoff(base=1.0, factor=2.0, max_delay=60.0, jitter=0.2, reset_after=60.0)


@attrs.frozen(kw_only=True)
class ServiceConfig:
    """What the service connects to and how it supervises.

    ``session_defaults`` is the spec ``open_session`` starts from; ``session_shutdown`` the
    grace a session gets to drain when the service stops; ``bus_limits`` how long slow
    subscribers may hold the sessions' publishing up. ``session_intensity`` and
    ``worker_intensity`` are the restart budget of *each* session and *each* worker (past it,
    that one fails for good); the backoffs are the delays between its restarts.
    ``reconcile_backoff`` is the delay before a configured session that failed for good is
    opened again (see ``reconcile_sessions``).
    """

    upstream: RealtimeConfig
    session_defaults: SessionSpec = attrs.field(factory=SessionSpec)
    session_intensity: RestartIntensity = PER_CHILD_INTENSITY
    session_backoff: Backoff = attrs.field(factory=Backoff)
    worker_intensity: RestartIntensity = PER_CHILD_INTENSITY
    worker_backoff: Backoff = attrs.field(factory=Backoff)
    reconcile_backoff: Backoff = RECONCILE_BACKOFF
    session_shutdown: float = 10.0
    worker_shutdown: float = 10.0
    bus_limits: BusLimits = attrs.field(factory=BusLimits)


@attrs.frozen(kw_only=True)
class DrainSummary:
    """What a drain did: the sessions it closed, whether the responses running when it began
    finished (within the grace) or were cut, the workers it stopped, the envelopes the bus
    dropped meanwhile, and how long it took."""

    sessions_closed: int
    responses_finished: int
    responses_cut: int
    workers_stopped: int
    envelopes_dropped: int
    seconds: float


@attrs.frozen
class SystemWorker:
    """A worker that is part of the service itself (the lifecycle log): a static child of
    ``root/system``, apart from user workers. It shares the system
    supervisor's budget, so its failing for good is the service's failure."""

    id: str
    handler: WorkerHandler
    types: str | tuple[str, ...] = "*"


class Service:
    """A running rtbus service: open sessions, add workers, subscribe on ``bus``."""

    def __init__(self, config: ServiceConfig, system_workers: Sequence[SystemWorker] = ()) -> None:
        self.config = config
        self.metrics = ServiceMetrics(self)
        self.bus = bus = Bus(config.bus_limits, tap=self.metrics.observer)
        self._root: Supervisor | None = None
        self._sessions: dict[str, Session] = {}
        # Set, and replaced, each time a session is dropped: what ``wait_session_gone`` waits on.
        self._session_dropped = trio.Event()
        self._workers: dict[str, Worker] = {}
        self._worker_losses: Counter[str] = Counter()
        self._lifecycle_in, self._lifecycle_out = trio.open_memory_channel[SupervisionEvent](
            _LIFECYCLE_BUFFER
        )
        self.lifecycle_dropped = 0
        self._ended_counts = SessionCounts()
        self._supervision_counts: Counter[tuple[str, str]] = Counter()
        self._system_workers = [Worker(w.id, bus, w.handler, types=w.types) for w in system_workers]
        self._readiness = ReadinessChecks()
        self._readiness.add("bus", bus.readiness_problem)  # a publisher blocked too long
        self._reconciler: SessionReconciler | None = None
        self._draining = False
        self.drain_summary: DrainSummary | None = None
        # Set while ``open_placement`` runs: sessions may then open on other nodes.
        self.placement: Placement | None = None
        # Set while ``run_switchboard`` runs: calls are routed and held.
        self.switchboard: Switchboard | None = None

    @property
    def sessions(self) -> Mapping[str, Session]:
        """The sessions the service runs now, by id."""
        alive = {info.id for info in self._supervisor("sessions").which_children()}
        return MappingProxyType({k: v for k, v in self._sessions.items() if k in alive})

    async def open_session(
        self,
        *,
        model: str | None = None,
        session: Mapping[str, Any] | None = None,
        id: str | None = None,
        spec: SessionSpec | None = None,
    ) -> Session:
        """Start a supervised session; returns once it is connected and its config applied.

        ``spec`` overrides the service's session defaults; ``model`` and ``session`` override
        the spec's. Raises ``ChildStartFailed`` (with the reason as its cause) if the session
        could not become ready, ``DuplicateChild`` if ``id`` is taken.
        """
        base = spec or self.config.session_defaults
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model"] = model
        if session is not None:
            changes["session"] = session
        spec = attrs.evolve(base, **changes)
        handle = Session(id or _new_id("sess"), spec, self.config.upstream, self.bus)
        if handle.id in self._sessions:
            # Checked here too: the registry below must never lose the session holding the id.
            raise DuplicateChild(handle.id)
        child = ChildSpec(
            handle.id,
            functools.partial(self._run_session, handle),
            restart="transient",
            shutdown=self.config.session_shutdown,
            intensity=self.config.session_intensity,
            backoff=self.config.session_backoff,
            abandon=functools.partial(self._abandon_session, handle),
        )
        self._sessions[handle.id] = handle
        try:
            await self._supervisor("sessions").start_child(child)
        except BaseException:
            self._drop_session(handle.id)  # a fatal start has dropped it already
            raise
        return handle

    async def _run_session(
        self, session: Session, ctx: ActorContext, *, task_status: trio.TaskStatus[Session]
    ) -> None:
        try:
            await session.run(ctx, task_status=task_status)
        finally:
            if session.ended:
                self._drop_session(session.id)

    async def place_session(
        self,
        *,
        model: str | None = None,
        session: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> PlacedSession:
        """Open a session on whichever node has room when the service runs a placement (see
        ``_placement``); otherwise here, as ``open_session`` does.

        Raises what ``open_session`` raises; placed, also ``PlacementTimeout``,
        ``PlacementRefused`` and ``RedisUnavailableError`` (see ``Placement.open_session``).
        """
        if self.placement is not None:
            return await self.placement.open_session(model=model, session=session, id=id)
        handle = await self.open_session(model=model, session=session, id=id)
        return PlacedSession(handle.id, None, handle)

    async def close_session(self, id: str) -> None:
        """Stop a session gracefully (its running response finishes, then close 1000)."""
        await self._supervisor("sessions").terminate_child(id)
        self._drop_session(id)

    def _drop_session(self, id: str) -> None:
        """Forget a session that is over; its counts live on in the ended sessions' total."""
        session = self._sessions.pop(id, None)
        if session is not None:
            self._ended_counts += session.statistics().counts
            self._session_dropped.set()
            self._session_dropped = trio.Event()

    def _abandon_session(self, session: Session) -> int:
        """Its supervisor gave up on it: it is over for good (``ChildSpec.abandon``)."""
        unsent = session.abandon()
        self._drop_session(session.id)
        return unsent

    async def wait_session_gone(self, id: str) -> None:
        """Wait until the service holds no session ``id``: it closed, failed for good, or
        was never opened."""
        while id in self._sessions:
            await self._session_dropped.wait()

    async def reconcile_sessions(
        self,
        desired: Mapping[str, SessionSpec],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep the sessions ``desired`` names open until cancelled (nursery start protocol):
        one that is gone (failed for good, or closed) is opened again with backoff, and
        readiness names it meanwhile. Sessions not in ``desired`` are never touched."""
        reconciler = SessionReconciler(
            self.open_session, self.wait_session_gone, desired, self.config.reconcile_backoff
        )
        self._reconciler = reconciler
        try:
            await reconciler.run(task_status=task_status)
        finally:
            self._reconciler = None

    async def add_worker(
        self,
        handler: WorkerHandler,
        *,
        types: str | Iterable[str] = "*",
        sessions: str | Iterable[str] = "*",
        maxsize: int = 256,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        id: str | None = None,
    ) -> Worker:
        """Run ``handler`` on every matching envelope, as a supervised (permanent) actor.

        A handler that raises is a supervised failure; the envelope it was handling is handed
        to the restarted worker first, so under ``block`` nothing is lost. Past its own restart
        budget (``worker_intensity``) the worker is given up on: its subscription closes, and
        what it had not handled is counted (``rtbus_worker_envelopes_lost_total``) and
        published (``rtbus.actor.gave_up``'s ``abandoned``).
        """
        worker = Worker(
            id or _new_id("worker"),
            self.bus,
            handler,
            types=types,
            sessions=sessions,
            maxsize=maxsize,
            overflow=overflow,
        )
        child = ChildSpec(
            worker.id,
            worker.run,
            shutdown=self.config.worker_shutdown,
            intensity=self.config.worker_intensity,
            backoff=self.config.worker_backoff,
            abandon=functools.partial(self._abandon_worker, worker),
        )
        try:
            await self._supervisor("workers").start_child(child)
        except BaseException:
            await worker.aclose()
            raise
        self._workers[worker.id] = worker
        return worker

    def _abandon_worker(self, worker: Worker) -> int:
        """Its supervisor gave up on it (``ChildSpec.abandon``): a subscription nobody reads
        would stall every publisher under ``block``, so it closes, and its loss is counted."""
        lost = worker.abandon()
        self._workers.pop(worker.id, None)
        self._worker_losses[_GAVE_UP] += lost
        return lost

    @property
    def draining(self) -> bool:
        """Whether the service has begun to drain (``aclose``); it never takes work again."""
        return self._draining

    def readiness(self) -> Readiness:
        """Whether the service should be sent work now, check by check (see ``_readiness``)."""
        service = "draining" if self._draining else "ok"
        checks = {"service": service, "supervision": supervision_problem(self._root)}
        reconciler = self._reconciler
        retrying = reconciler.problem if reconciler is not None else _not_retrying
        checks |= self._readiness.sessions(self._live_sessions(), retrying)
        return Readiness.of(checks | self._readiness.extra())

    def require_sessions(self, ids: Iterable[str]) -> None:
        """Count these sessions in readiness: it says no until each of them is ready."""
        self._readiness.require(ids)

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Plug in a readiness check: ``check()`` returns ``None`` when all is well, else a
        short reason. Raises ``ValueError`` if ``name`` is taken."""
        self._readiness.add(name, check)

    def _live_sessions(self) -> Mapping[str, Session]:
        try:
            return self.sessions
        except (trio.ClosedResourceError, UnknownChild):
            return {}  # the tree is down, which the supervision check reports

    async def aclose(self) -> None:
        """Drain and stop: sessions, then workers, then the bus. Idempotent; what the drain
        did is ``drain_summary`` afterwards."""
        if self._draining:
            await self.bus.aclose()
            return
        self._draining = True
        started = trio.current_time()
        sessions = list(self._sessions.values())
        responding = [s for s in sessions if s.statistics().responses_active]
        workers = len(self._workers) + len(self._system_workers)
        dropped = _dropped(self.bus)
        if self._root is not None:
            await self._root.aclose()
        await self.bus.aclose()
        cut = sum(session.interrupted_response is not None for session in responding)
        self.drain_summary = DrainSummary(
            sessions_closed=len(sessions),
            responses_finished=len(responding) - cut,
            responses_cut=cut,
            workers_stopped=workers,
            envelopes_dropped=_dropped(self.bus) - dropped,
            seconds=trio.current_time() - started,
        )

    def _supervisor(self, id: str) -> Supervisor:
        if self._root is None:
            raise trio.ClosedResourceError("the service is not running")
        handle = self._root.child(id).handle
        if not isinstance(handle, Supervisor):
            raise trio.ClosedResourceError(f"the {id} supervisor is restarting")
        return handle

    def _tree(self) -> SupervisorSpec:
        cfg, observe = self.config, self._observe
        # Static children: they come back if their supervisor does.
        system = SupervisorSpec(
            [
                ChildSpec(worker.id, worker.run, shutdown=cfg.worker_shutdown)
                for worker in self._system_workers
            ],
            backoff=cfg.worker_backoff,
            on_event=observe,
        )
        # Every child has a budget of its own: these two never give up (see the module).
        workers = SupervisorSpec(on_event=observe)
        # Sessions are peers: a drain stops them all at once, bounded by one grace period.
        sessions = SupervisorSpec(on_event=observe, stop_concurrently=True)
        return SupervisorSpec(
            [
                system.as_child("system"),
                workers.as_child("workers"),
                sessions.as_child("sessions", shutdown=math.inf),
            ],
            on_event=observe,
        )

    # -- what the metrics read (rtbus.metrics.MetricsSource) ---------------------------------

    def session_statistics(self) -> list[SessionStatistics]:
        """A snapshot of every session the service holds, whatever its state."""
        return [session.statistics() for session in self._sessions.values()]

    def ended_session_counts(self) -> SessionCounts:
        """The counts of every session that has ended, added up."""
        return self._ended_counts

    def supervisor_statistics(self) -> list[SupervisorStatistics]:
        """A snapshot of the root and of each supervisor under it that is running now."""
        if self._root is None:
            return []
        stats = [self._root.statistics()]
        for id in ("system", "workers", "sessions"):
            # Missing while it restarts, or once the tree is down.
            with contextlib.suppress(trio.ClosedResourceError, UnknownChild):
                stats.append(self._supervisor(id).statistics())
        return stats

    def supervision_counts(self) -> Mapping[tuple[str, str], int]:
        """Supervision events so far, by (supervisor path, event type)."""
        return MappingProxyType(self._supervision_counts)

    def worker_losses(self) -> Mapping[str, int]:
        """Envelopes workers never handled because they were given up on, by reason."""
        return MappingProxyType(self._worker_losses)

    def _observe(self, event: SupervisionEvent) -> None:
        # Called synchronously by supervisors; publishing may block, so a task does it.
        self._supervision_counts[event.supervisor, event.type] += 1
        try:
            self._lifecycle_in.send_nowait(event)
        except trio.WouldBlock:
            self.lifecycle_dropped += 1

    async def _publish_lifecycle(self) -> None:
        # Under the supervisor's path: a bounded set of sequences, where one per actor would
        # leave a counter behind for every session that ever ran.
        async for event in self._lifecycle_out:
            try:
                await self.bus.publish(event.supervisor, event.type, event, received_at=event.at)
            except trio.ClosedResourceError:
                return  # the service has drained; nobody is left to tell

    # -- the gateway client's API, in process (rtbus.connect's RemoteBus has the same) -------

    def subscribe(
        self,
        *,
        sessions: str | Iterable[str] = "*",
        types: str | Iterable[str] = "*",
        maxsize: int = 256,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = None,
    ) -> Subscription:
        """A subscription on the service's bus (``self.bus.subscribe``), as
        ``RemoteBus.subscribe``."""
        return self.bus.subscribe(
            sessions=sessions,
            types=types,
            maxsize=maxsize,
            overflow=overflow,
            block_timeout=block_timeout,
        )

    async def send(
        self,
        session_id: str,
        event: ClientEvent | Mapping[str, Any],
        *,
        on_refused: RefusalHandler | None = None,
    ) -> str:
        """Send a client event to a session; returns its ``event_id`` once it went out
        upstream, as ``RemoteBus.send``: the caller is the event's sender, so a refusal never
        fails the session (it reaches ``on_refused`` and the bus). Raises ``UnknownChild``
        for a session the service does not run (the gateway's ``unknown_session``) and what
        ``Session.send`` raises."""
        session = self._running_session(session_id)
        return await session.send(event, sender=self._IN_PROCESS, on_refused=on_refused)

    async def submit(
        self, session_id: str, event: ClientEvent | Mapping[str, Any], *, within: float
    ) -> EventOutcome:
        """Send a client event and wait up to ``within`` seconds for its outcome, as
        ``RemoteBus.submit``; raises what ``send`` raises."""
        session = self._running_session(session_id)
        return await session.submit(event, sender=self._IN_PROCESS, within=within)

    def _running_session(self, id: str) -> Session:
        session = self.sessions.get(id)
        if session is None:
            raise UnknownChild(id)
        return session

    #: Who ``send`` and ``submit`` name as the sender of the events they send.
    _IN_PROCESS: Final = "in-process"


@asynccontextmanager
async def open_service(
    config: ServiceConfig | RealtimeConfig, *, system_workers: Sequence[SystemWorker] = ()
) -> AsyncIterator[Service]:
    """Run a service for the body of the ``async with``; leaving it drains and stops it.

    ``system_workers`` run under ``root/system``, apart from user workers (see the module).
    """
    if isinstance(config, OpenAIConfig | AzureConfig):
        config = ServiceConfig(upstream=config)
    service = Service(config, system_workers)
    with service.metrics.gc.watching():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service._publish_lifecycle)
            service._root = await nursery.start(serve_supervisor, service._tree())
            try:
                yield service
            finally:
                with trio.CancelScope(shield=True):
                    await service.aclose()
                nursery.cancel_scope.cancel()


def _dropped(bus: Bus) -> int:
    return sum(bus.statistics().dropped.values())


def _not_retrying(id: str) -> None:
    return None


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"
