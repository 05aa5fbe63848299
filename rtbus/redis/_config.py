"""How the Redis Streams bridge reaches Redis and lays out its streams (``[bus.redis]``).

Invariants:

* Every value is checked when a ``RedisConfig`` is made; a wrong one raises ``ConfigError``
  naming the field, and the message never repeats the URL or the password.
* The password lives in ``password`` only: a URL that carries one is refused, so the URL can be
  shown in logs as it is. The ``repr`` shows ``'***'`` for a set password.
* ``streams`` maps stream names to type globs in order: the first stream whose globs match an
  event's type takes it. Events no stream matches are not bridged.
* Every key shares the hash tag in ``prefix`` (``{rtbus}``), so a consumer reading several
  streams, and the dead-letter move, stay in one Redis Cluster slot.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import SplitResult, urlsplit

import attrs

from rtbus._backoff import Backoff
from rtbus.bus import BusArgumentError, OverflowPolicy, parse_policy, parse_types
from rtbus.protocol import ConfigError

__all__ = ["DEFAULT_STREAMS", "MAX_BATCH_SIZE", "MAX_LINGER_SECONDS", "RedisConfig", "TrimStrategy"]

_SCHEMES = {"redis": False, "rediss": True}  # scheme -> TLS
_NAME = re.compile(r"[A-Za-z0-9_.-]+")

MAX_BATCH_SIZE = 10_000
"""The most entries per write: one script call holds Redis about 0.2 s for that many."""
MAX_LINGER_SECONDS = 1.0
"""The longest a write may wait for a fuller batch: past it, shutdown's flush cuts it off."""
_HASH_TAG = re.compile(r"\{[^{}]+\}")

DEFAULT_STREAMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # Audio is ~90% of the bytes: its own stream, so a group that wants none skips it.
        # (Input-audio appends are client events: they never reach the bus.)
        "audio": ("response.output_audio.delta",),
        "events": ("*",),
    }
)


class TrimStrategy(enum.StrEnum):
    """How a stream is kept bounded at every ``XADD``.

    * ``MAXLEN`` -- keep about ``maxlen`` entries (``MAXLEN ~``).
    * ``MINID`` -- keep about ``retention_seconds`` of entries (``MINID ~``, Redis >= 6.2).
    """

    MAXLEN = "maxlen"
    MINID = "minid"


def _redacted(value: str | None) -> str:
    return "None" if value is None else "'***'"


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(attribute.name, f"must be an int of at least 1, got {value!r}")


def _positive_seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > 0):  # type: ignore[arg-type,operator]
        raise ConfigError(attribute.name, f"must be a positive number of seconds, got {value!r}")


def _seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value >= 0):  # type: ignore[arg-type,operator]
        raise ConfigError(attribute.name, f"must be a number of seconds, 0 or more, got {value!r}")


def _at_most(
    limit: float, check: Callable[[object, attrs.Attribute[Any], object], None], why: str
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """``check``, then at most ``limit`` (``why`` says what a larger value would do)."""

    def checked(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(instance, attribute, value)
        if value > limit:  # type: ignore[operator]
            raise ConfigError(attribute.name, f"must be at most {limit:g}: {why}, got {value!r}")

    return checked


def _name(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        problem = f"must be letters, digits, '_', '.' or '-', got {value!r}"
        raise ConfigError(attribute.name, problem)


def _check_prefix(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _HASH_TAG.search(value) or re.search(r"\s", value):
        problem = f"must hold a non-empty hash tag such as '{{rtbus}}' and no spaces, got {value!r}"
        raise ConfigError(attribute.name, problem)


def _check_url(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # The URL is never echoed: a password pasted into it must not reach a log.
    if not isinstance(value, str):
        raise ConfigError("url", f"must be a str, got {type(value).__name__}")
    parts = urlsplit(value)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ConfigError("url", "must be a redis:// or rediss:// URL with a host")
    if parts.password is not None:
        raise ConfigError("url", "must not carry a password: set `password` instead")
    _port_of(parts)
    _db_of(parts)


def _port_of(parts: SplitResult) -> int:
    try:
        return parts.port or 6379
    except ValueError:
        raise ConfigError("url", "has a port that is not a number from 0 to 65535") from None


def _db_of(parts: SplitResult) -> int:
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError("url", "path must be a database number, as in redis://host:6379/0")
    return int(path or 0)


def _to_streams(value: object) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("streams", "must be a non-empty table of stream name -> type globs")
    return MappingProxyType({name: _globs(name, globs) for name, globs in value.items()})


def _globs(name: object, globs: object) -> tuple[str, ...]:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            "streams", f"a stream name must be letters, digits, '_', '.' or '-', got {name!r}"
        )
    patterns = (globs,) if isinstance(globs, str) else globs
    if not isinstance(patterns, Iterable):
        raise ConfigError(f"streams.{name}", "must be a type glob or a list of them")
    found = tuple(patterns)
    try:
        parse_types(found)
    except BusArgumentError as exc:
        raise ConfigError(f"streams.{name}", exc.problem) from None
    return found


def _to_policy(value: object) -> OverflowPolicy:
    try:
        policy = parse_policy(value)  # type: ignore[arg-type]
    except BusArgumentError as exc:
        raise ConfigError("overflow", exc.problem) from None
    if policy is OverflowPolicy.DISCONNECT:
        # A bridge that fell behind must keep publishing, not stop.
        raise ConfigError("overflow", "must be 'drop_oldest', 'drop_newest' or 'block'")
    return policy


def _to_trim(value: object) -> TrimStrategy:
    try:
        return TrimStrategy(str(value))
    except ValueError:
        raise ConfigError("trim", f"must be 'maxlen' or 'minid', got {value!r}") from None


@attrs.frozen(kw_only=True)
class RedisConfig:
    """Where Redis is and how rtbus uses it; every field has a working default.

    * ``url`` -- ``redis://[user@]host[:port][/db]`` (``rediss://`` for TLS); no password.
    * ``password`` -- a secret: redacted in ``repr`` and never put into a message.
    * ``prefix`` -- the start of every key; keep a hash tag in it (``{rtbus}``).
    * ``streams`` -- stream name -> type globs, first match wins (see ``DEFAULT_STREAMS``).
    * ``trim`` with ``maxlen`` or ``retention_seconds`` -- how streams stay bounded.
    * ``buffer_size`` and ``overflow`` -- the publishing bridge's bounded buffer and what it
      does when Redis cannot keep up or is down (drops are counted).
    * ``batch_size`` -- the most entries per write (one script call, which holds Redis for
      ~13-20 us an entry) and per consumer read and acknowledgement batch; at most
      ``MAX_BATCH_SIZE``, so a write stays well inside ``command_timeout`` (one that timed out
      would be written again whole, and time out again).
    * ``linger_seconds`` -- how long a write that is not a full batch waits for more,
      counted from its oldest event's ``received_at`` (and never longer from when the bridge
      took it): fewer, larger writes at moderate rates, for at most that much latency; 0
      writes at once; at most ``MAX_LINGER_SECONDS``.
    * ``reclaim_idle_seconds`` -- how long an entry may sit unacknowledged with a consumer
      before another takes it over: it must exceed the slowest handler.
    * ``max_deliveries`` -- deliveries before an entry goes to ``dead_letter_stream``.
    * ``connect_timeout`` / ``command_timeout`` -- past these Redis counts as down.
    * ``monitor_interval`` -- how often stream lengths and pending counts are read for metrics.
    * ``backoff`` -- the retry curve while Redis is down.
    """

    url: str = attrs.field(default="redis://127.0.0.1:6379/0", validator=_check_url)
    password: str | None = attrs.field(default=None, repr=_redacted)
    prefix: str = attrs.field(default="{rtbus}", validator=_check_prefix)
    streams: Mapping[str, tuple[str, ...]] = attrs.field(
        default=DEFAULT_STREAMS, converter=_to_streams
    )
    trim: TrimStrategy = attrs.field(default=TrimStrategy.MAXLEN, converter=_to_trim)
    maxlen: int = attrs.field(default=100_000, validator=_positive_int)
    retention_seconds: float = attrs.field(default=3600.0, validator=_positive_seconds)
    buffer_size: int = attrs.field(default=10_000, validator=_positive_int)
    overflow: OverflowPolicy = attrs.field(default=OverflowPolicy.DROP_OLDEST, converter=_to_policy)
    batch_size: int = attrs.field(
        default=256,
        validator=_at_most(MAX_BATCH_SIZE, _positive_int, "a write holds Redis ~20 us an entry"),
    )
    linger_seconds: float = attrs.field(
        default=0.001,
        validator=_at_most(MAX_LINGER_SECONDS, _seconds, "it is latency added to every event"),
    )
    reclaim_idle_seconds: float = attrs.field(default=30.0, validator=_positive_seconds)
    max_deliveries: int = attrs.field(default=5, validator=_positive_int)
    dead_letter_stream: str = attrs.field(default="dead-letter", validator=_name)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive_seconds)
    command_timeout: float = attrs.field(default=5.0, validator=_positive_seconds)
    monitor_interval: float = attrs.field(default=5.0, validator=_positive_seconds)
    backoff: Backoff = attrs.field(factory=lambda: Backoff(base=0.1, max_delay=5.0))

    def __attrs_post_init__(self) -> None:
        if self.password is not None and not self.password:
            raise ConfigError("password", "must not be empty: leave it unset for no password")

    @property
    def location(self) -> str:
        """The URL without user info: safe for logs and ``/readyz``."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{_port_of(parts)}/{_db_of(parts)}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``coredis.Redis`` (host, port, db, user, password, TLS)."""
        parts = urlsplit(self.url)
        return {
            "host": parts.hostname,
            "port": _port_of(parts),
            "db": _db_of(parts),
            "username": parts.username or None,
            "password": self.password,
            "ssl": _SCHEMES[parts.scheme],
            "connect_timeout": self.connect_timeout,
        }

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the password, when set."""
        return (self.password,) if self.password else ()
