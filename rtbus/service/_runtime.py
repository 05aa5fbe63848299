"""What ``rtbus serve`` runs: the upstream, the service, its HTTP surface, its sessions.

    run_service(settings)
    ├── the embedded simulator      (upstream kind "sim"; stops after the drain; beside the
    │                                demo its phone network calls the service's own webhook)
    ├── the HTTP surface            (stops last: /readyz says "draining" meanwhile)
    ├── the Redis bridge            ([bus.redis]; flushes what the drain published, then stops)
    └── the service                 (open_service: the supervision tree and the bus)
        ├── the lifecycle log       (a system worker: one line per rtbus.session.* /
        │                            rtbus.actor.*, apart from user workers)
        ├── placement               ([placement]: takes sessions from the control stream)
        ├── the switchboard         ([calls]: webhooks routed, calls accepted, call sessions)
        ├── the configured sessions (required: /readyz waits for them)
        ├── the reconciler          (reopens a configured session that failed for good)
        └── the demo workload

Cancelling ``run_service`` is the graceful drain: the demo and intake stop at once, every
session gets ``service.drain_seconds`` to finish its response and close with 1000, workers
finish what they hold, and only then do the HTTP surface and the simulator stop. So the
caller's cancellation never reaches the tree directly (it would cut sessions off
mid-response): the tree runs shielded, and a watcher turns the cancellation into the drain.
A drain therefore takes up to ``drain_seconds`` plus ``worker_shutdown``.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

import attrs
import trio

from rtbus import sim
from rtbus._unwrapping import unwrap_lone_exception
from rtbus.bus import Envelope, lifecycle_fields
from rtbus.protocol import OpenAIConfig, RealtimeConfig, RtbusError
from rtbus.redis import RedisBridge, run_bridge

from ._demo import run_demo
from ._gc import young_gc_threshold
from ._http import HttpAddress, serve_http
from ._http_calls import WEBHOOK_PATH
from ._placement import run_placement
from ._service import Service, SystemWorker, open_service
from ._settings import DEMO_KEY, Settings, SimUpstream, StartupSession
from ._switchboard import run_switchboard

__all__ = ["RunningService", "SessionsNotStarted", "run_service"]

_log = logging.getLogger("rtbus.service")
_SIM_HOST = "127.0.0.1"
# How long the Redis bridge may take, after the drain, to publish what the drain published.
_FLUSH_SECONDS = 5.0
# Everything else a lifecycle event says is routine: info.
_LEVELS: Mapping[str, int] = {
    "rtbus.session.disconnected": logging.WARNING,
    "rtbus.session.bad_frame": logging.WARNING,
    "rtbus.session.failed": logging.ERROR,
    "rtbus.actor.failed": logging.WARNING,
    "rtbus.actor.restarted": logging.WARNING,
    "rtbus.actor.gave_up": logging.ERROR,
    "rtbus.actor.supervisor_gave_up": logging.ERROR,
}
_LIFECYCLE_TYPES = ("rtbus.session.*", "rtbus.actor.*", "rtbus.call.*")
# What a lifecycle line calls the sequence its event came on (calls name their own call).
_SEQUENCE_FIELDS: Mapping[str, str | None] = {"rtbus.actor.": "supervisor", "rtbus.call.": None}
_LOOPBACK: Mapping[str, str] = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class SessionsNotStarted(RtbusError):
    """Raised by ``run_service`` when configured sessions could not start; ``ids`` names
    them (each one's reason is logged)."""

    def __init__(self, ids: tuple[str, ...]) -> None:
        super().__init__(ids)
        self.ids = ids

    def __str__(self) -> str:
        return "configured sessions could not start: " + ", ".join(self.ids)


@attrs.frozen
class RunningService:
    """What ``run_service`` reports once it serves: the service and its HTTP address."""

    service: Service
    http: HttpAddress


async def run_service(
    settings: Settings, *, task_status: trio.TaskStatus[RunningService] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the service ``settings`` describe until cancelled, then drain it (see the module).

    Reports a ``RunningService`` once HTTP serves and the configured sessions are ready.
    Raises ``SessionsNotStarted`` if one of them could not start (after draining the rest);
    a single failure is raised as itself, several as an exception group.
    """
    body = trio.CancelScope()  # what runs until the drain: cancelling it starts the drain
    # The nurseries in here are ours: one failure is raised as itself, not nested groups.
    with young_gc_threshold(settings.service.gc_threshold), unwrap_lone_exception():
        async with trio.open_nursery() as watcher:
            watcher.start_soon(_drain_when_cancelled, body)
            # The caller's cancellation must not reach the sessions: they would be cut off
            # mid-response. It reaches the watcher, which starts the drain instead.
            with trio.CancelScope(shield=True):
                await _run(settings, body, task_status)
            watcher.cancel_scope.cancel()


async def _drain_when_cancelled(body: trio.CancelScope) -> None:
    try:
        await trio.sleep_forever()
    finally:
        body.cancel()


async def _run(
    settings: Settings, body: trio.CancelScope, task_status: trio.TaskStatus[RunningService]
) -> None:
    async with trio.open_nursery() as infra:
        upstream, simulator = await _upstream(infra, settings)
        service: Service | None = None
        bridge: list[RedisBridge] = []
        try:
            async with trio.open_nursery() as bridges:
                config = settings.service_config(upstream)
                async with open_service(config, system_workers=[_LOG_WORKER]) as service:
                    bridge = await _start_bridge(service, settings, bridges)
                    with body:
                        try:
                            await _serve(service, settings, infra, simulator, task_status)
                        finally:
                            seconds = settings.service.drain_seconds
                            _log.info("draining", extra=_fields(seconds=seconds))
                # The bus has closed: the bridge flushes what the drain published, bounded.
                bridges.cancel_scope.deadline = trio.current_time() + _FLUSH_SECONDS
        finally:
            _log.info("drained", extra=_fields(**_drained(service, bridge)))
        infra.cancel_scope.cancel()  # HTTP and the simulator stop last


async def _serve(
    service: Service,
    settings: Settings,
    infra: trio.Nursery,
    simulator: sim.SimServer | None,
    task_status: trio.TaskStatus[RunningService],
) -> None:
    http: HttpAddress = await infra.start(serve_http, service, settings.http)
    _log.info("serving", extra=_fields(**_banner(settings, http)))
    if settings.service.status_seconds:
        infra.start_soon(_log_status, service, settings.service.status_seconds)
    service.require_sessions(s.id for s in settings.sessions)
    async with trio.open_nursery() as intake:
        if settings.placement is not None and settings.bus.redis is not None:
            await intake.start(run_placement, service, settings.bus.redis, settings.placement)
        secret = simulator.webhook_secret if simulator is not None else settings.calls.secret()
        await intake.start(
            functools.partial(run_switchboard, service, settings.calls, secret=secret)
        )
        _place_demo_calls(intake, settings, simulator, http)
        await _open_startup_sessions(service, settings)
        desired = {s.id: settings.session_spec(s) for s in settings.sessions}
        await intake.start(service.reconcile_sessions, desired)
        task_status.started(RunningService(service, http))
        await run_demo(service, settings.demo_sessions, settings.demo.turn_seconds)
        await trio.sleep_forever()


async def _start_bridge(
    service: Service, settings: Settings, nursery: trio.Nursery
) -> list[RedisBridge]:
    redis = settings.bus.redis
    if redis is None:
        return []
    registry = service.metrics.registry
    start = functools.partial(run_bridge, node=settings.node, registry=registry)
    bridge: RedisBridge = await nursery.start(start, service.bus, redis)
    service.add_readiness_check("redis", bridge.readiness_problem)
    _log.info("publishing to redis", extra=_fields(url=redis.url, node=settings.node))
    return [bridge]


def _banner(settings: Settings, http: HttpAddress) -> dict[str, object]:
    """What the service is, in the line that says it serves: never a secret, only whether a
    token guards it."""
    return {
        "version": _version(),
        "url": http.url,
        "upstream": settings.upstream_kind,
        "sessions": len(settings.sessions),
        "demo_sessions": settings.demo_sessions,
        "token": "on" if settings.http.token else "off",
        "redis": "on" if settings.bus.redis is not None else "off",
    }


def _version() -> str:
    try:
        return version("rtbus")
    except PackageNotFoundError:
        return "unknown"


async def _log_status(service: Service, every: float) -> None:
    """One line of status every ``every`` seconds: what an operator glances at."""
    previous = service.bus.statistics().published
    while True:
        await trio.sleep(every)
        published = service.bus.statistics().published
        _log.info("status", extra=_fields(**_status(service, (published - previous) / every)))
        previous = published


def _status(service: Service, events_per_second: float) -> dict[str, object]:
    sessions = service.session_statistics()
    states = Counter(session.state.value for session in sessions)
    counts = sum((session.counts for session in sessions), service.ended_session_counts())
    bus = service.bus.statistics()
    return {
        **{f"sessions_{state}": n for state, n in sorted(states.items())},
        "events_per_second": round(events_per_second, 1),
        "errors": sum(counts.server_errors.values()),
        "reconnects": sum(counts.reconnects.values()),
        "dropped": sum(bus.dropped.values()),
        "subscriptions": bus.subscriptions,
    }


def _drained(service: Service | None, bridge: list[RedisBridge]) -> dict[str, object]:
    """The drain's summary line: what it closed, finished, cut, stopped, flushed, dropped."""
    summary = None if service is None else service.drain_summary
    if summary is None:
        return {}
    fields: dict[str, object] = {
        "sessions": summary.sessions_closed,
        "responses_finished": summary.responses_finished,
        "responses_cut": summary.responses_cut,
        "workers": summary.workers_stopped,
        "dropped": summary.envelopes_dropped,
        "seconds": round(summary.seconds, 2),
    }
    for each in bridge:
        stats = each.statistics()
        fields["redis_published"] = sum(stats.published.values())
        fields["redis_dropped"] = sum(stats.dropped.values())
    return fields


async def _upstream(
    infra: trio.Nursery, settings: Settings
) -> tuple[RealtimeConfig, sim.SimServer | None]:
    if not isinstance(settings.upstream, SimUpstream):
        return settings.upstream, None
    # Signed with [calls] webhook_secret when set, else a fresh one the service is told of.
    options = settings.upstream.sim_options(settings.calls.webhook_secret)
    port = settings.upstream.port
    server: sim.SimServer = await infra.start(sim.serve_sim, _SIM_HOST, port, options)
    _log.info("simulator started", extra=_fields(url=server.url))
    return OpenAIConfig(api_key=DEMO_KEY, base_url=server.url), server


def _place_demo_calls(
    nursery: trio.Nursery, settings: Settings, simulator: sim.SimServer | None, http: HttpAddress
) -> None:
    """Beside the demo sessions, the simulator's phone network calls our own webhook."""
    rate = settings.upstream.call_rate if isinstance(settings.upstream, SimUpstream) else 0.0
    if simulator is None or not rate or not settings.demo_sessions:
        return
    host = _LOOPBACK.get(http.host, http.host)
    url = HttpAddress(host, http.port).url + WEBHOOK_PATH
    nursery.start_soon(_ring_steadily, simulator, url, rate)
    _log.info("demo calls", extra=_fields(per_second=rate, webhook=url))


async def _ring_steadily(simulator: sim.SimServer, webhook_url: str, rate: float) -> None:
    # A steady arrival: the first call after one interval, not the moment the service starts.
    phone = simulator.phone(webhook_url)
    await trio.sleep(1.0 / rate)
    await phone.run(rate)


async def _open_startup_sessions(service: Service, settings: Settings) -> None:
    failed: list[str] = []
    async with trio.open_nursery() as nursery:
        for session in settings.sessions:
            open_one = functools.partial(_open_startup_session, service, settings, session, failed)
            nursery.start_soon(open_one)
    if failed:
        raise SessionsNotStarted(tuple(failed))


async def _open_startup_session(
    service: Service, settings: Settings, session: StartupSession, failed: list[str]
) -> None:
    try:
        await service.open_session(id=session.id, spec=settings.session_spec(session))
    except Exception as exc:
        failed.append(session.id)
        reason = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
        _log.error("session could not start", extra=_fields(session=session.id, reason=reason))


def _log_lifecycle(envelope: Envelope) -> None:
    """One structured line per session lifecycle or supervision event."""
    prefix = envelope.type[: envelope.type.index(".", len("rtbus.")) + 1]
    where = _SEQUENCE_FIELDS.get(prefix, "session")
    named = {} if where is None else {where: envelope.session_id}
    fields = {**named, **_event_fields(envelope.event)}
    _log.log(_LEVELS.get(envelope.type, logging.INFO), envelope.type, extra=_fields(**fields))


_LOG_WORKER = SystemWorker("rtbus-log", _log_lifecycle, types=_LIFECYCLE_TYPES)


def _event_fields(event: object) -> dict[str, object]:
    """A lifecycle event's fields as the one codec writes them (an exception by its class
    name), less its type (the line's message) and its time (the trio clock)."""
    if not attrs.has(type(event)):
        return {}
    fields = lifecycle_fields(event)  # type: ignore[arg-type]
    return {name: value for name, value in fields.items() if name not in {"type", "at"}}


def _fields(**fields: object) -> dict[str, dict[str, object]]:
    """``extra=`` for a structured line: the formatters print ``fields`` key by key."""
    return {"fields": fields}
