"""``ReconnectPolicy``: which failures a session reconnects after, how long it waits, how often.

Sans-IO: the policy and ``ReconnectAttempts`` decide, the session actor sleeps and connects.
They never read a clock; the actor passes ``now``.

Which failures are retried is a table keyed by exception class, looked up along the failure's
MRO and then along its ``__cause__`` chain (the error path hands on a ``RealtimeError`` caused
by the specific one):

====================================  ===========================================
``ConnectionClosedError``             its close code is in ``retry_close_codes``
``ConnectionRejectedError``           its HTTP status is in ``retry_http_statuses``
``ConnectError`` (timeouts included)  always: the network or the server is down
``KeepaliveTimeoutError``             always: the path to the server died
``RealtimeError`` from an error event its code is in ``retry_error_codes``
anything else                         never
====================================  ===========================================
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar, cast

import attrs

from rtbus._backoff import Backoff, BackoffState
from rtbus._unwrapping import cause_chain
from rtbus.protocol import (
    ConfigError,
    ConnectionClosedError,
    RealtimeError,
    reconnect_close_codes,
    reconnect_error_codes,
    reconnect_http_statuses,
)

from ._exceptions import ConnectError, ConnectionRejectedError, KeepaliveTimeoutError
from ._target import ConnectTarget

__all__ = ["ReconnectAttempts", "ReconnectPolicy", "TargetHook"]

TargetHook = Callable[[int], ConnectTarget | Awaitable[ConnectTarget]]
"""Called with the attempt number (1 for the first reconnect) before each reconnect."""


def _max_attempts(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError("max_attempts", f"must be None or an integer >= 0, got {value!r}")


def _stable_after(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError("stable_after", f"must be a positive number of seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """When a session reconnects, how long it waits, how often it tries.

    ``max_attempts`` counts consecutive reconnects (``None``: forever). A connection that got
    as far as ready and lived ``stable_after`` seconds (or ``backoff.reset_after``, whichever
    is shorter) was a working one: the count and the backoff start again after it, so a
    session that drops once an hour never climbs to the longest delay or to its
    ``max_attempts``. ``before_attempt`` may return a different target (a refreshed token)
    before each reconnect.
    """

    # The defaults are the RECONNECT rows of the one classifier table (protocol._disposition).
    retry_close_codes: frozenset[int] = attrs.field(factory=reconnect_close_codes)
    retry_error_codes: frozenset[str] = attrs.field(factory=reconnect_error_codes)
    retry_http_statuses: frozenset[int] = attrs.field(factory=reconnect_http_statuses)
    backoff: Backoff = attrs.field(factory=Backoff)
    max_attempts: int | None = attrs.field(default=None, validator=_max_attempts)
    before_attempt: TargetHook | None = None
    stable_after: float = attrs.field(default=10.0, validator=_stable_after)

    def retries(self, failure: BaseException) -> bool:
        """Whether a session that ended with ``failure`` should reconnect."""
        for exc in cause_chain(failure):
            verdict = _verdict(self, exc)
            if verdict is not None:
                return verdict
        return False

    def attempts(self, rng: random.Random | None = None) -> ReconnectAttempts:
        """A fresh tracker of consecutive reconnects under this policy."""
        return ReconnectAttempts(self, rng or random.Random())

    async def target(self, attempt: int, default: ConnectTarget) -> ConnectTarget:
        """The target of reconnect ``attempt``: the hook's, or ``default`` without one."""
        if self.before_attempt is None:
            return default
        result = self.before_attempt(attempt)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, ConnectTarget):
            raise TypeError(f"before_attempt must return a ConnectTarget, got {result!r}")
        return result


@attrs.define
class ReconnectAttempts:
    """Consecutive reconnects of one session: call :meth:`connected` and :meth:`failed`."""

    policy: ReconnectPolicy
    rng: random.Random
    _backoff: BackoffState = attrs.field(init=False)
    _connected_at: float | None = attrs.field(default=None, init=False)

    @_backoff.default
    def _backoff_for_policy(self) -> BackoffState:
        return BackoffState(self.policy.backoff)

    @property
    def attempt(self) -> int:
        """Reconnects made since the last stable connection."""
        return self._backoff.attempt

    def connected(self, now: float) -> None:
        """A connection came up at ``now``."""
        self._connected_at = now

    def failed(self, failure: BaseException, now: float) -> float | None:
        """Seconds to wait before reconnecting after ``failure`` at ``now``; ``None``: give up."""
        if not self.policy.retries(failure):
            return None
        up_for = self._up_for(now)
        if up_for >= self.policy.stable_after:
            up_for = math.inf  # a working connection: start again from the first delay
        attempt, delay = self._backoff.next_retry(up_for, self.rng)
        limit = self.policy.max_attempts
        return None if limit is not None and attempt > limit else delay

    def _up_for(self, now: float) -> float:
        # A connect that failed never came up: 0 seconds, never stable.
        connected_at, self._connected_at = self._connected_at, None
        return 0.0 if connected_at is None else now - connected_at


def _closed(policy: ReconnectPolicy, exc: ConnectionClosedError) -> bool:
    return exc.code in policy.retry_close_codes


def _rejected(policy: ReconnectPolicy, exc: ConnectionRejectedError) -> bool:
    return exc.status in policy.retry_http_statuses


def _always(policy: ReconnectPolicy, exc: BaseException) -> bool:
    return True


def _server_error(policy: ReconnectPolicy, exc: RealtimeError) -> bool | None:
    # No server error object: a wrapper from the error path; its cause decides.
    if exc.error is None:
        return None
    return exc.error.code in policy.retry_error_codes


_Rule = Callable[[ReconnectPolicy, BaseException], bool | None]
X = TypeVar("X", bound=BaseException)


def _rule(
    cls: type[X], rule: Callable[[ReconnectPolicy, X], bool | None]
) -> tuple[type[BaseException], _Rule]:
    return cls, cast(_Rule, rule)


_RULES: Final = dict(
    [
        _rule(ConnectionClosedError, _closed),
        _rule(ConnectionRejectedError, _rejected),
        _rule(ConnectError, _always),
        _rule(KeepaliveTimeoutError, _always),
        _rule(RealtimeError, _server_error),
    ]
)


def _verdict(policy: ReconnectPolicy, exc: BaseException) -> bool | None:
    for cls in type(exc).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule(policy, exc)
    return None
