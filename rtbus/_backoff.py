"""Exponential backoff with jitter, and a tracker that resets it after a stable period (sans-IO).

Invariants:

* ``Backoff.delay(attempt, rng)`` is pure: the same attempt and the same ``rng`` state give the
  same delay. It never reads a clock and never sleeps; the caller does both.
* Without jitter the delay for attempt ``n`` (0-based) is ``min(max_delay, base * factor**n)``.
  Jitter takes away up to that fraction of it, so ``0 <= delay <= max_delay`` always holds and
  many clients that failed together spread their retries out instead of stampeding.
* ``BackoffState`` counts consecutive failures. A run that stayed up ``reset_after`` seconds
  or longer before failing counts as stable: the next delay starts again from attempt 0.
  It takes ``now`` as a float from the caller (``trio.current_time()`` in production, a
  literal in tests), so it is tested without any clock.

Used by the transport's reconnect policy and by actor supervisors.
"""

from __future__ import annotations

import math
import random

import attrs

from .protocol._errors import ConfigError

__all__ = ["Backoff", "BackoffState"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(attribute.name, f"must be a positive number of seconds, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 1:
        raise ConfigError(attribute.name, f"must be at least 1, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(attribute.name, f"must be between 0 and 1, got {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(attribute.name, f"must be zero or more seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """How long to wait before retry ``attempt``: exponential, capped, with jitter.

    ``jitter`` is the fraction of each delay that is random: 0 is deterministic, 1 is "full
    jitter" (anywhere between 0 and the capped delay). ``reset_after`` is how long a run must
    stay up to count as stable, which restarts the sequence (see :class:`BackoffState`).
    """

    base: float = attrs.field(default=0.5, validator=_positive)
    factor: float = attrs.field(default=2.0, validator=_at_least_one)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    reset_after: float = attrs.field(default=60.0, validator=_not_negative)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.base:
            raise ConfigError("max_delay", f"must be at least base ({self.base}s)")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry)."""
        if attempt < 0:
            raise ValueError(f"attempt must be 0 or more, got {attempt}")
        return self.ceiling(attempt) * (1 - self.jitter * rng.random())

    def ceiling(self, attempt: int) -> float:
        """The delay for ``attempt`` before jitter: ``min(max_delay, base * factor**attempt)``."""
        try:
            return min(self.max_delay, self.base * self.factor**attempt)
        except OverflowError:
            # factor**attempt past float range: long since capped.
            return self.max_delay


@attrs.define
class BackoffState:
    """Consecutive failures of one retried thing, reset after a stable run.

    Call :meth:`started` when a run (a connection, a child actor) comes up and :meth:`failed`
    when it ends in failure; ``failed`` returns how long to wait before the next start.
    """

    backoff: Backoff
    rng: random.Random = attrs.field(factory=random.Random)
    attempt: int = 0
    """Failures since the last stable run; the next delay is for this attempt."""
    _started_at: float | None = attrs.field(default=None, init=False)

    def started(self, now: float) -> None:
        """A run came up at ``now``."""
        self._started_at = now

    def failed(self, now: float) -> float:
        """A run failed at ``now``: the seconds to wait before starting the next one."""
        if self._started_at is not None and now - self._started_at >= self.backoff.reset_after:
            self.attempt = 0
        self._started_at = None
        delay = self.backoff.delay(self.attempt, self.rng)
        self.attempt += 1
        return delay
