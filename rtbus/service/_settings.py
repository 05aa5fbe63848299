"""The service's settings: what ``rtbus.toml`` says, as frozen values.

Each class is one table of the file; ``_settings_load`` turns the TOML (and the environment)
into them, and the docs (docs/config.md) describe the same tables. Every field has a default,
so an empty file -- or no file at all -- is the embedded default: the simulator as upstream,
HTTP on 127.0.0.1:9464, and a small demo workload.

Invariants:

* Values are checked when they are made: a wrong one raises ``ConfigError`` naming the field,
  which the loader prefixes with the table's dotted path.
* Secrets (``upstream.api_key``, ``upstream.ad_token``, ``http.token``,
  ``bus.redis.password``, ``calls.webhook_secret``) never appear in a repr;
  ``Settings.secrets()`` lists them for the log redactor.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from rtbus._backoff import Backoff
from rtbus.actors import RestartIntensity
from rtbus.bus import BusLimits
from rtbus.protocol import AzureConfig, ConfigError, OpenAIConfig, RealtimeConfig
from rtbus.redis import RedisConfig
from rtbus.session import RecordBound, SessionSpec
from rtbus.sim import SimOptions

from ._call_routes import CallsSettings
from ._http import HttpConfig
from ._placement_config import PlacementConfig
from ._service import PER_CHILD_INTENSITY, RECONCILE_BACKOFF, ServiceConfig

__all__ = [
    "BusSettings",
    "DemoSettings",
    "LogSettings",
    "ServiceSettings",
    "SessionDefaults",
    "Settings",
    "SimUpstream",
    "StartupSession",
    "UpstreamSettings",
]

LogFormat = Literal["logfmt", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

#: The key the embedded simulator demands: a fixed demo value, never a real one.
DEMO_KEY = "sk-rtbus-demo"
_MAX_GC_THRESHOLD = 2**31 - 1  # gc.set_threshold takes a C int


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(attribute.name, f"must be a positive number, got {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(attribute.name, f"must be a number >= 0, got {value!r}")


def _gc_threshold(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= _MAX_GC_THRESHOLD:
        raise ConfigError(
            attribute.name, f"must be an integer 0..{_MAX_GC_THRESHOLD}, got {value!r}"
        )


def _optional_not_negative(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None:
        _not_negative(_, attribute, value)


def _text(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise ConfigError(attribute.name, "must not be empty")


def _limits_default(name: str) -> Any:
    return getattr(attrs.fields(BusLimits), name).default


def _spec_default(name: str) -> Any:
    # SessionSpec owns the defaults; the settings repeat none of them.
    return getattr(attrs.fields(SessionSpec), name).default


def _checked_session(value: Mapping[str, Any] | None) -> None:
    """Check a ``session`` table now, so a bad one fails the config check, not a connect.

    Raises ``ConfigError`` naming the key under ``session`` (``session.audio.output.voice``).
    """
    if value is not None:
        SessionSpec(session=value)


@attrs.frozen(kw_only=True)
class SimUpstream:
    """The embedded simulator as upstream (the default): no key, no network, no cost.

    ``speed`` paces its audio (1.0 is real time); ``response_audio_seconds`` is how much audio
    each response says; ``port`` is where it listens on 127.0.0.1 (0: a free port). Beside
    the demo sessions its phone network places ``call_rate`` calls a second to the service's
    own webhook (0: none); each caller speaks ``caller_turns`` times, then hangs up.
    """

    speed: float = attrs.field(default=1.0, validator=_positive)
    response_audio_seconds: float = attrs.field(default=2.0, validator=_not_negative)
    port: int = attrs.field(
        default=0,
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(65535)),
    )
    call_rate: float = attrs.field(default=0.1, validator=_not_negative)
    caller_turns: int = attrs.field(default=3, validator=_not_negative)

    def sim_options(self, webhook_secret: str | None = None) -> SimOptions:
        """The options the embedded simulator runs with; it demands the fixed demo key and
        signs its webhooks with ``webhook_secret`` (``None``: a fresh one)."""
        return SimOptions(
            api_key=DEMO_KEY,
            speed=self.speed,
            response_audio_seconds=self.response_audio_seconds,
            caller_turns=self.caller_turns,
            webhook_secret=webhook_secret,
        )


UpstreamSettings = SimUpstream | OpenAIConfig | AzureConfig
#: ``upstream.kind`` -> the table's class; the loader dispatches on it.
UPSTREAM_KINDS: Mapping[str, type[UpstreamSettings]] = {
    "sim": SimUpstream,
    "openai": OpenAIConfig,
    "azure": AzureConfig,
}


@attrs.frozen(kw_only=True)
class LogSettings:
    """How the service logs: one structured line per record, on stderr."""

    format: LogFormat = "logfmt"
    level: LogLevel = "info"


@attrs.frozen(kw_only=True)
class ServiceSettings:
    """How the supervision tree behaves.

    ``drain_seconds`` is the grace every session gets to finish its response and close with
    1000 when the service stops (SIGTERM); ``worker_shutdown`` the grace workers get after.
    ``status_seconds`` is how often one status line is logged (0: never).
    ``gc_threshold`` is how many net allocations of tracked objects the process makes between
    collections of the youngest generation (``rtbus.service.young_gc_threshold``; 0 leaves
    Python's 700).
    ``session_intensity`` and ``worker_intensity`` are the restart budget of each session and
    each worker; ``reconcile_backoff`` the delay before a configured session that failed for
    good is opened again (see ``ServiceConfig``).
    """

    drain_seconds: float = attrs.field(default=10.0, validator=_not_negative)
    worker_shutdown: float = attrs.field(default=10.0, validator=_not_negative)
    status_seconds: float = attrs.field(default=60.0, validator=_not_negative)
    gc_threshold: int = attrs.field(default=20_000, validator=_gc_threshold)
    session_intensity: RestartIntensity = PER_CHILD_INTENSITY
    session_backoff: Backoff = attrs.field(factory=Backoff)
    worker_intensity: RestartIntensity = PER_CHILD_INTENSITY
    worker_backoff: Backoff = attrs.field(factory=Backoff)
    reconcile_backoff: Backoff = RECONCILE_BACKOFF


@attrs.frozen(kw_only=True)
class SessionDefaults:
    """What every session starts from (``[session_defaults]``); see ``SessionSpec``.

    ``session`` is the ``session.update`` body applied on every connect, checked here.
    """

    model: str = attrs.field(default=_spec_default("model"), validator=_text)
    session: Mapping[str, Any] = attrs.field(factory=dict)
    ready_timeout: float = attrs.field(default=_spec_default("ready_timeout"), validator=_positive)
    recycle_after: float = attrs.field(default=_spec_default("recycle_after"), validator=_positive)
    recycle_grace: float = attrs.field(default=_spec_default("recycle_grace"), validator=_positive)
    sequence_responses: bool = _spec_default("sequence_responses")
    send_queue_size: int = attrs.field(default=_spec_default("send_queue_size"))
    resume: bool = _spec_default("resume")
    record_max_items: int = attrs.field(default=RecordBound().max_items)
    record_max_bytes: int = attrs.field(default=RecordBound().max_bytes)

    def __attrs_post_init__(self) -> None:
        for key in ("record_max_items", "record_max_bytes"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be at least 1, got {getattr(self, key)}")
        if self.send_queue_size < 1:
            raise ConfigError("send_queue_size", f"must be at least 1, got {self.send_queue_size}")
        _checked_session(self.session)

    def spec(self) -> SessionSpec:
        """The ``SessionSpec`` these defaults describe."""
        return SessionSpec(
            model=self.model,
            session=self.session,
            ready_timeout=self.ready_timeout,
            recycle_after=self.recycle_after,
            recycle_grace=self.recycle_grace,
            sequence_responses=self.sequence_responses,
            send_queue_size=self.send_queue_size,
            resume=self.resume,
            record=RecordBound(max_items=self.record_max_items, max_bytes=self.record_max_bytes),
        )


@attrs.frozen(kw_only=True)
class StartupSession:
    """A session opened when the service starts (``[[sessions]]``); ``/readyz`` waits for it.

    ``model`` and ``session`` replace the defaults' when given.
    """

    id: str = attrs.field(validator=_text)
    model: str | None = attrs.field(default=None, validator=_text)
    session: Mapping[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        _checked_session(self.session)


def _sessions(sessions: Iterable[StartupSession]) -> tuple[StartupSession, ...]:
    return tuple(sessions)


@attrs.frozen(kw_only=True)
class DemoSettings:
    """The demo workload: sessions holding voice turns with synthetic user speech.

    ``sessions`` left unset means 3 on the simulator with no ``[[sessions]]``, else none.
    """

    sessions: int | None = attrs.field(default=None, validator=_optional_not_negative)
    turn_seconds: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen(kw_only=True)
class BusSettings:
    """Where the bus reaches past this process, and how long slow subscribers may hold it up
    (``[bus]``).

    With ``[bus.redis]`` every session's events are also published to Redis Streams, for
    consumer groups on other machines (``rtbus.redis``; docs/redis.md).
    ``block_timeout_seconds`` bounds how long a gateway client's or the Redis bridge's
    ``block`` subscription may keep a publisher waiting before it is cut loose;
    ``publisher_blocked_warn_seconds`` is how long a publisher may wait before ``/readyz``
    says so (``BusLimits``, which owns the defaults).
    """

    redis: RedisConfig | None = None
    block_timeout_seconds: float = attrs.field(
        default=_limits_default("remote_block_timeout"), validator=_positive
    )
    publisher_blocked_warn_seconds: float = attrs.field(
        default=_limits_default("blocked_warn_seconds"), validator=_positive
    )

    def limits(self) -> BusLimits:
        return BusLimits(
            remote_block_timeout=self.block_timeout_seconds,
            blocked_warn_seconds=self.publisher_blocked_warn_seconds,
        )


def cross_table_problems(
    placement: bool, redis: bool, session_ids: Iterable[object]
) -> list[ConfigError]:
    """What is wrong across tables: placement without Redis, a session id used twice.

    Also run by the loader on the raw file, so ``config check`` reports these beside the
    problems that keep the tables from being made at all."""
    problems = []
    if placement and not redis:
        problems.append(
            ConfigError("placement", "placing sessions across services needs [bus.redis]")
        )
    first: dict[object, int] = {}
    for index, id in enumerate(session_ids):
        if isinstance(id, str) and id in first:
            where = f"sessions[{first[id]}]"
            problems.append(ConfigError(f"sessions[{index}].id", f"{id!r} is also {where}'s id"))
        first.setdefault(id, index)
    return problems


@attrs.frozen(kw_only=True)
class Settings:
    """Everything ``rtbus serve`` runs from; ``load_settings`` makes one from a TOML file."""

    upstream: UpstreamSettings = attrs.field(factory=SimUpstream)
    http: HttpConfig = attrs.field(factory=HttpConfig)
    log: LogSettings = attrs.field(factory=LogSettings)
    service: ServiceSettings = attrs.field(factory=ServiceSettings)
    session_defaults: SessionDefaults = attrs.field(factory=SessionDefaults)
    sessions: tuple[StartupSession, ...] = attrs.field(default=(), converter=_sessions)
    demo: DemoSettings = attrs.field(factory=DemoSettings)
    bus: BusSettings = attrs.field(factory=BusSettings)
    placement: PlacementConfig | None = None
    calls: CallsSettings = attrs.field(factory=CallsSettings)

    def __attrs_post_init__(self) -> None:
        ids = [session.id for session in self.sessions]
        problems = cross_table_problems(self.placement is not None, self.bus.redis is not None, ids)
        if problems:
            raise problems[0]

    @property
    def node(self) -> str:
        """This service's name among others sharing Redis: ``placement.node``, else the host's
        name."""
        return self.placement.node if self.placement is not None else socket.gethostname()

    @property
    def upstream_kind(self) -> str:
        """``"sim"``, ``"openai"`` or ``"azure"``."""
        return next(k for k, cls in UPSTREAM_KINDS.items() if isinstance(self.upstream, cls))

    @property
    def demo_sessions(self) -> int:
        """How many demo sessions to run, with the unset default resolved."""
        if self.demo.sessions is not None:
            return self.demo.sessions
        return 3 if isinstance(self.upstream, SimUpstream) and not self.sessions else 0

    def session_spec(self, session: StartupSession) -> SessionSpec:
        """The spec a startup session runs with: the defaults, with its own overrides."""
        changes: dict[str, Any] = {}
        if session.model is not None:
            changes["model"] = session.model
        if session.session is not None:
            changes["session"] = session.session
        return attrs.evolve(self.session_defaults.spec(), **changes)

    def service_config(self, upstream: RealtimeConfig | None = None) -> ServiceConfig:
        """The ``ServiceConfig`` to open the service with.

        ``upstream`` is where the sessions connect; on the simulator it is only known once
        the simulator listens, so it is required then.
        """
        target = upstream if upstream is not None else self.upstream
        if isinstance(target, SimUpstream):
            raise ValueError("the simulator's address is needed: pass upstream=...")
        service = self.service
        return ServiceConfig(
            upstream=target,
            session_defaults=self.session_defaults.spec(),
            session_intensity=service.session_intensity,
            session_backoff=service.session_backoff,
            worker_intensity=service.worker_intensity,
            worker_backoff=service.worker_backoff,
            reconcile_backoff=service.reconcile_backoff,
            session_shutdown=service.drain_seconds,
            worker_shutdown=service.worker_shutdown,
            bus_limits=self.bus.limits(),
        )

    def secrets(self) -> tuple[str, ...]:
        """Every secret value the settings hold, for the log redactor."""
        candidates = (
            getattr(self.upstream, "api_key", None),
            getattr(self.upstream, "ad_token", None),
            self.http.token,
            self.bus.redis.password if self.bus.redis is not None else None,
            self.calls.webhook_secret,
        )
        return tuple(s for s in candidates if s)
