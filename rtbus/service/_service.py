"""The service: the supervision tree that runs sessions and workers around one bus.

    root (one_for_one)
    ├── workers   (one_for_one, dynamic: subscriber actors made from handlers)
    └── sessions  (one_for_one, dynamic: one transient actor per Realtime session)

Workers start before sessions and stop after them, so no event a session publishes while it
drains lacks its worker. Supervision events (``rtbus.actor.*``) are published on the bus
under their supervisor's path (``root/sessions``; ``event.child`` names the actor), so they
never mix with a session's own sequence. Closing the service is a graceful drain: sessions
take no more client events, let their running response finish within their shutdown grace,
and close their WebSocket with 1000; then workers finish what they hold; then the bus closes.
"""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any

import attrs
import trio

from rtbus.actors import (
    ActorContext,
    Backoff,
    ChildSpec,
    RestartIntensity,
    SupervisionEvent,
    Supervisor,
    SupervisorGaveUp,
    SupervisorSpec,
    serve_supervisor,
)
from rtbus.bus import Bus, OverflowPolicy, Worker
from rtbus.bus._worker import WorkerHandler
from rtbus.protocol import AzureConfig, OpenAIConfig, RealtimeConfig
from rtbus.session import Session, SessionSpec

__all__ = ["Service", "ServiceConfig", "open_service"]

_LIFECYCLE_BUFFER = 1024
_WORKERS = "root/workers"


@attrs.frozen(kw_only=True)
class ServiceConfig:
    """What the service connects to and how it supervises.

    ``session_defaults`` is the spec ``open_session`` starts from; ``session_shutdown`` the
    grace a session gets to drain when the service stops.
    """

    upstream: RealtimeConfig
    session_defaults: SessionSpec = attrs.field(factory=SessionSpec)
    session_intensity: RestartIntensity = attrs.field(factory=RestartIntensity)
    session_backoff: Backoff = attrs.field(factory=Backoff)
    worker_intensity: RestartIntensity = attrs.field(factory=RestartIntensity)
    worker_backoff: Backoff = attrs.field(factory=Backoff)
    session_shutdown: float = 10.0
    worker_shutdown: float = 10.0


class Service:
    """A running rtbus service: open sessions, add workers, subscribe on ``bus``."""

    def __init__(self, config: ServiceConfig, bus: Bus) -> None:
        self.config = config
        self.bus = bus
        self._root: Supervisor | None = None
        self._sessions: dict[str, Session] = {}
        self._workers: dict[str, Worker] = {}
        self._lifecycle_in, self._lifecycle_out = trio.open_memory_channel[SupervisionEvent](
            _LIFECYCLE_BUFFER
        )
        self.lifecycle_dropped = 0

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
        start = functools.partial(self._run_session, handle)
        child = ChildSpec(
            handle.id, start, restart="transient", shutdown=self.config.session_shutdown
        )
        self._sessions[handle.id] = handle
        try:
            await self._supervisor("sessions").start_child(child)
        except BaseException:
            self._sessions.pop(handle.id, None)  # a fatal start has removed it already
            raise
        return handle

    async def _run_session(
        self, session: Session, ctx: ActorContext, *, task_status: trio.TaskStatus[Session]
    ) -> None:
        try:
            await session.run(ctx, task_status=task_status)
        finally:
            if session.ended:
                self._sessions.pop(session.id, None)

    async def close_session(self, id: str) -> None:
        """Stop a session gracefully (its running response finishes, then close 1000)."""
        await self._supervisor("sessions").terminate_child(id)
        self._sessions.pop(id, None)

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
        to the restarted worker first, so under ``block`` nothing is lost.
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
        child = ChildSpec(worker.id, worker.run, shutdown=self.config.worker_shutdown)
        try:
            await self._supervisor("workers").start_child(child)
        except BaseException:
            await worker.aclose()
            raise
        self._workers[worker.id] = worker
        return worker

    async def aclose(self) -> None:
        """Drain and stop: sessions, then workers, then the bus. Idempotent."""
        if self._root is not None:
            await self._root.aclose()
        await self.bus.aclose()

    def _supervisor(self, id: str) -> Supervisor:
        if self._root is None:
            raise trio.ClosedResourceError("the service is not running")
        handle = self._root.child(id).handle
        if not isinstance(handle, Supervisor):
            raise trio.ClosedResourceError(f"the {id} supervisor is restarting")
        return handle

    def _tree(self) -> SupervisorSpec:
        cfg, observe = self.config, self._observe
        workers = SupervisorSpec(
            intensity=cfg.worker_intensity, backoff=cfg.worker_backoff, on_event=observe
        )
        # Sessions are peers: a drain stops them all at once, bounded by one grace period.
        sessions = SupervisorSpec(
            intensity=cfg.session_intensity,
            backoff=cfg.session_backoff,
            on_event=observe,
            stop_concurrently=True,
        )
        return SupervisorSpec(
            [workers.as_child("workers"), sessions.as_child("sessions", shutdown=math.inf)],
            on_event=observe,
        )

    def _observe(self, event: SupervisionEvent) -> None:
        # Called synchronously by supervisors; publishing may block, so a task does it.
        if isinstance(event, SupervisorGaveUp) and event.supervisor == _WORKERS:
            self._forget_workers()
        try:
            self._lifecycle_in.send_nowait(event)
        except trio.WouldBlock:
            self.lifecycle_dropped += 1

    def _forget_workers(self) -> None:
        """The workers supervisor gave up: its dynamic children will not come back, and a
        subscription nobody reads would stall every publisher under ``block``."""
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    async def _publish_lifecycle(self) -> None:
        # Under the supervisor's path: a bounded set of sequences, where one per actor would
        # leave a counter behind for every session that ever ran.
        async for event in self._lifecycle_out:
            try:
                await self.bus.publish(event.supervisor, event.type, event, received_at=event.at)
            except trio.ClosedResourceError:
                return  # the service has drained; nobody is left to tell


@asynccontextmanager
async def open_service(config: ServiceConfig | RealtimeConfig) -> AsyncIterator[Service]:
    """Run a service for the body of the ``async with``; leaving it drains and stops it."""
    if isinstance(config, OpenAIConfig | AzureConfig):
        config = ServiceConfig(upstream=config)
    service = Service(config, Bus())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service._publish_lifecycle)
        service._root = await nursery.start(serve_supervisor, service._tree())
        try:
            yield service
        finally:
            with trio.CancelScope(shield=True):
                await service.aclose()
            nursery.cancel_scope.cancel()


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"
