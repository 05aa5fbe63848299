"""Exponential backoff with jitter, and a counter that resets it after a stable run (sans-IO).

One implementation for every retried thing: the transport's reconnects and the actors'
restarts. It imports nothing from rtbus, so the actors layer stays free of the protocol layer;
bad settings raise ``ValueError`` naming the attribute.

Invariants:

* Attempts count from 1: the first retry after a failure is attempt 1 and waits ``base``.
* ``Backoff.delay(attempt, rng)`` is pure: the same attempt and the same ``rng`` state give the
  same delay, drawing exactly once from ``rng``. It never reads a clock and never sleeps; the
  caller does both.
* Without jitter the delay for attempt ``n`` is ``min(max_delay, base * factor**(n - 1))``
  (``Backoff.nominal``). Jitter only ever shortens it, by at most ``jitter`` of itself, so
  ``nominal * (1 - jitter) <= delay <= nominal <= max_delay`` always holds and many clients that
  failed together spread their retries out instead of stampeding. ``nominal`` never shrinks as
  the attempt grows.
* ``BackoffState`` counts consecutive retries. A run that lasted ``reset_after`` seconds or
  longer counts as stable: the retry after it is attempt 1 again. It takes how long the run
  lasted from the caller (``0.0`` for one that never came up), so it is tested without a clock.
"""

from __future__ import annotations

import math
import random

import attrs

__all__ = ["Backoff", "BackoffState"]


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number of seconds >= 0, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"{attribute.name} must be a finite number >= 1, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    # Written so that NaN fails too; math.inf is allowed and means "never stable".
    if not value > 0:
        raise ValueError(f"{attribute.name} must be a number of seconds > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """How long to wait before retry ``attempt`` (1 for the first): exponential, capped, jittered.

    ``jitter`` is the fraction of each delay that is random: 0 is deterministic, 1 is "full
    jitter" (anywhere between 0 and the nominal delay). ``base`` may be 0 for immediate retries.
    ``reset_after`` is how long a run must last to count as stable, which restarts the sequence
    (see :class:`BackoffState`).
    """

    base: float = attrs.field(default=0.5, validator=_seconds)
    factor: float = attrs.field(default=2.0, validator=_at_least_one)
    max_delay: float = attrs.field(default=30.0, validator=_seconds)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    reset_after: float = attrs.field(default=60.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.base:
            raise ValueError(
                f"max_delay must be at least base ({self.base}s), got {self.max_delay}"
            )

    def nominal(self, attempt: int) -> float:
        """The delay before retry ``attempt`` without jitter: its upper bound."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        if self.base == 0:
            # Not 0 * factor**n: that overflows, or is 0 * inf, for a large attempt.
            return 0.0
        try:
            # float(): an int factor would build a huge exact int for a huge attempt.
            return min(self.max_delay, self.base * float(self.factor) ** (attempt - 1))
        except OverflowError:
            # factor**attempt past float range: long since capped.
            return self.max_delay

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry ``attempt``; draws once from ``rng``."""
        return self.nominal(attempt) * (1.0 - self.jitter * rng.random())


@attrs.define
class BackoffState:
    """Where one retried thing (a connection, a child actor) is on its backoff curve.

    Call :meth:`next_retry` each time a run ends and is to be retried; ``attempt`` is the
    retries since the last stable run (0 before the first).
    """

    backoff: Backoff
    attempt: int = attrs.field(default=0, init=False)

    def next_retry(self, ran_for: float, rng: random.Random) -> tuple[int, float]:
        """After a run that lasted ``ran_for`` seconds: ``(attempt, delay)`` of the next retry."""
        if ran_for >= self.backoff.reset_after:
            self.attempt = 0
        self.attempt += 1
        return self.attempt, self.backoff.delay(self.attempt, rng)
