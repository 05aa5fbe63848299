"""One connection to Redis: a coredis client entered once and shared by a process's tasks.

Invariants:

* Every command goes through ``RedisLink.call``, the one place coredis errors are mapped
  (``_ERROR_MAP``) into ``RedisUnavailableError`` (retry later) or ``RedisCommandError`` (the
  setup is wrong), counted per operation, and redacted. Nothing else catches coredis errors.
* ``up`` is what the last command found: it turns false on an unavailable error and true on
  the next success. ``wait_until_up`` pings on the shared backoff curve (``rtbus._backoff``)
  until Redis answers; a refusal (a wrong password) is raised, not retried.
* The server's version (and its ``run_id``) is read once, at the first successful ping; a
  server older than ``MINIMUM_VERSION`` raises ``RedisVersionError``. Commands newer than
  that are used only where ``has(feature)`` says the server knows them.
* coredis runs on trio through anyio and its client is an async context manager with a task
  group inside: ``open_link`` enters it in the caller's task (the parent of every task that
  shares it) and takes a lone exception back out of the group it was wrapped in, so callers
  see ``RedisUnavailableError`` and their own exceptions, not an ``ExceptionGroup``.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import attrs
import coredis
import coredis.connection
import coredis.exceptions
import coredis.retry
import trio

from rtbus._backoff import BackoffState
from rtbus._unwrapping import unwrap_lone_exception
from rtbus.protocol import redact

from ._config import RedisConfig
from ._errors import (
    GroupMissingError,
    RedisCommandError,
    RedisError,
    RedisUnavailableError,
    RedisVersionError,
)

__all__ = [
    "FEATURES",
    "MINIMUM_VERSION",
    "LinkStatistics",
    "RedisLink",
    "open_link",
]

_log = logging.getLogger("rtbus.redis")

T = TypeVar("T")
Client = coredis.Redis[bytes]
Version = tuple[int, ...]

MINIMUM_VERSION: Version = (6, 2)
#: Behaviour that depends on the server version -> the first version that has it.
FEATURES: Mapping[str, Version] = MappingProxyType(
    {
        # 7.0: XAUTOCLAIM lists the ids it found deleted (trimmed before they were
        # acknowledged) and drops them from the pending list. 6.2 hands back a bare nil per
        # deleted entry, with no id, and keeps it pending: a consumer there could not say
        # what it lost, so consumer groups need 7.0 (publishing needs only 6.2).
        "xautoclaim_deleted_ids": (7, 0),
    }
)

_ErrorFactory = Callable[[str, str], RedisError]
# Checked in order: the first class the exception is an instance of decides.
_ERROR_MAP: tuple[tuple[type[BaseException], _ErrorFactory], ...] = (
    (coredis.exceptions.ConnectionError, RedisUnavailableError),
    (trio.TooSlowError, RedisUnavailableError),
    (TimeoutError, RedisUnavailableError),
    (OSError, RedisUnavailableError),
    (coredis.exceptions.StreamConsumerGroupError, GroupMissingError),
    (coredis.exceptions.RedisError, RedisCommandError),
)


@attrs.frozen
class LinkStatistics:
    """A snapshot of one link: whether Redis answers, the server's version, errors by
    operation, and how many times it came back after being down."""

    up: bool
    server_version: str | None
    errors: Mapping[str, int]
    reconnects: int


class RedisLink:
    """A shared coredis client with error mapping, up/down tracking and reconnect backoff.

    Made by ``open_link``; use ``call`` for every command.
    """

    def __init__(self, client: Client, config: RedisConfig, errors: Counter[str]) -> None:
        self._client = client
        self._config = config
        self._errors = errors
        self._secrets = config.secrets()
        self._backoff = BackoffState(config.backoff)
        self._rng = random.Random()
        self._version: Version | None = None
        self._version_text: str | None = None
        self._run_id: bytes | None = None
        self._up = False
        self._reconnects = 0
        self._down_since: float | None = trio.current_time()  # down until it first answers
        self._down_logged = False

    def __repr__(self) -> str:
        return f"<RedisLink {self._config.location} up={self._up}>"

    @property
    def up(self) -> bool:
        """Whether the last command reached Redis."""
        return self._up

    @property
    def down_since(self) -> float | None:
        """The trio time Redis was last found down, or ``None`` while it is up."""
        return self._down_since

    @property
    def first_run_id(self) -> bytes | None:
        """The ``run_id`` of the server as found at the first connect: what a ledger compares
        with, so a restart between that connect and its first check still counts."""
        return self._run_id

    @property
    def config(self) -> RedisConfig:
        return self._config

    def has(self, feature: str) -> bool:
        """Whether the server (as found at the first connect) has ``feature`` (``FEATURES``)."""
        return self._version is not None and self._version >= FEATURES[feature]

    def statistics(self) -> LinkStatistics:
        return LinkStatistics(
            up=self._up,
            server_version=self._version_text,
            errors=MappingProxyType(dict(self._errors)),
            reconnects=self._reconnects,
        )

    async def call(
        self, operation: str, command: Callable[[Client], Awaitable[T]], *, wait: float = 0.0
    ) -> T:
        """Run ``command`` on the client, bounded by the command timeout plus ``wait`` (the
        time a blocking command may wait on purpose); coredis errors come out mapped."""
        try:
            with trio.fail_after(self._config.command_timeout + wait):
                result = await command(self._client)
        except BaseException as exc:
            mapped = self._map(operation, exc)
            if mapped is None:
                raise
            raise mapped from None
        self._mark_up()
        return result

    async def wait_until_up(self) -> None:
        """Return once Redis answers a ping, retrying on the backoff curve while it does not.

        Raises ``RedisCommandError`` when Redis refuses (a wrong password) and
        ``RedisVersionError`` when it is too old: waiting would not help.
        """
        while True:
            try:
                await self.call("ping", _ping)
                if self._version is None:
                    await self._read_version()
                return
            except RedisUnavailableError:
                _, delay = self._backoff.next_retry(0.0, self._rng)
                await trio.sleep(delay)

    async def pause(self) -> None:
        """Wait before retrying after an unavailable error, then until Redis answers."""
        _, delay = self._backoff.next_retry(0.0, self._rng)
        await trio.sleep(delay)
        await self.wait_until_up()

    async def _read_version(self) -> None:
        info = await self.call("info", _server_info)
        text = _text(info.get("redis_version", ""))
        version = _parse_version(text)
        if version < MINIMUM_VERSION:
            raise RedisVersionError(text, ".".join(map(str, MINIMUM_VERSION)))
        self._version, self._version_text = version, text
        run_id = info.get("run_id")
        self._run_id = None if run_id is None else _text(run_id).encode()

    def _map(self, operation: str, exc: BaseException) -> RedisError | None:
        for kind, factory in _ERROR_MAP:
            if isinstance(exc, kind):
                self._errors[operation] += 1
                detail = redact(_describe(exc), self._secrets)
                error = factory(operation, detail)
                if isinstance(error, RedisUnavailableError):
                    self._mark_down(error)
                return error
        return None

    def _mark_up(self) -> None:
        if self._up:
            return
        self._up = True
        if self._down_since is not None and self._version is not None:
            self._reconnects += 1
            away = trio.current_time() - self._down_since
            _log.warning("redis at %s answers again after %.1fs", self._config.location, away)
        self._down_since = None
        self._down_logged = False
        self._backoff.attempt = 0

    def _mark_down(self, error: RedisError) -> None:
        if not self._down_logged:  # once per outage, not once per retry
            _log.warning("redis at %s is unreachable: %s", self._config.location, error)
            self._down_logged = True
        if self._up:
            self._up = False
            self._down_since = trio.current_time()


@contextlib.asynccontextmanager
async def open_link(
    config: RedisConfig, *, errors: Counter[str] | None = None
) -> AsyncIterator[RedisLink]:
    """Enter a coredis client for ``config`` in this task; yield the link sharing it.

    It does not wait for Redis: call ``wait_until_up`` for that. ``errors`` is the counter
    the link adds failed operations to (a metrics collector's, so counts outlive the link).
    """
    client: Client = coredis.Redis(
        **config.client_options(),
        decode_responses=False,
        # A pooled connection found stale after a Redis restart is retried once at once;
        # anything longer is RedisLink's backoff.
        retry_policy=coredis.retry.ConstantRetryPolicy(
            (coredis.exceptions.ConnectionError,), retries=1, delay=0.0
        ),
    )
    client.connection_pool.connection_class = _TCPConnection
    with unwrap_lone_exception():
        async with client:
            yield RedisLink(client, config, Counter() if errors is None else errors)


class _TCPConnection(coredis.connection.TCPConnection):
    """coredis's TCP connection, minus a leak: when the socket never opens (Redis is down),
    coredis leaves the connection's six memory streams open -- they are closed only by the
    ``async with`` that follows a successful connect -- and each failed attempt ends in
    ``ResourceWarning``s when they are collected. Close them where the attempt fails."""

    async def _connect(self) -> Any:
        try:
            return await super()._connect()
        except BaseException:
            for name in _CONNECTION_STREAMS:
                stream = getattr(self, name, None)
                if stream is not None:
                    stream.close()
            raise


_CONNECTION_STREAMS = tuple(
    f"_{kind}_buffer_{end}"
    for kind in ("write", "push_message", "streamed_message")
    for end in ("in", "out")
)


async def _ping(client: Client) -> object:
    return await client.ping()


async def _server_info(client: Client) -> Mapping[str, Any]:
    return await client.info("server")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_version(text: str) -> Version:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "no answer before the command timeout"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
