"""Restart intensity and restart backoff: pure logic, no clock, no trio.

Both take ``now`` as a float from the caller (the supervisor passes ``trio.current_time()``), so
they are tested synchronously and with hypothesis, and give exact answers on a virtual clock.

Invariants:

* ``RestartWindow``: at most ``max_restarts`` restarts are granted in any span of ``period``
  seconds. A restart at time ``t`` counts while ``now - t < period``. The first restart refused
  is the (R+1)th inside the period; after a refusal the window keeps refusing until old restarts
  age out, but the supervisor never asks again (it has given up).
* ``Backoff.delay(attempt)`` is ``min(max, base * factor ** (attempt - 1))`` shrunk by a jitter
  of at most ``jitter`` of itself. Jitter only ever shortens the nominal delay, so the
  documented ``max`` is a true ceiling and two children failing together still spread apart.
* ``RestartBackoff``: the attempt counter grows by one per restart and falls back to 1 (the base
  delay) when the incarnation that just ended ran for at least ``reset_after`` seconds.
"""

from __future__ import annotations

import math
import random
from collections import deque

import attrs
from attrs import validators as v

__all__ = ["Backoff", "RestartBackoff", "RestartIntensity", "RestartWindow"]


@attrs.frozen
class RestartIntensity:
    """At most ``max_restarts`` restarts in ``period`` seconds; one more and the supervisor
    gives up (OTP's MaxR / MaxT)."""

    max_restarts: int = attrs.field(default=3, validator=v.ge(0))
    period: float = attrs.field(default=5.0, validator=v.gt(0.0))


class RestartWindow:
    """Counts a supervisor's restarts against its ``RestartIntensity``."""

    __slots__ = ("_intensity", "_restarts", "restarts_total")

    def __init__(self, intensity: RestartIntensity) -> None:
        self._intensity = intensity
        self._restarts: deque[float] = deque()
        self.restarts_total = 0

    def admit(self, now: float) -> bool:
        """Record a restart at ``now`` if the intensity allows it; False means give up."""
        self._expire(now)
        if len(self._restarts) >= self._intensity.max_restarts:
            return False
        self._restarts.append(now)
        self.restarts_total += 1
        return True

    def remaining(self, now: float) -> int:
        """How many more restarts would be granted at ``now``."""
        self._expire(now)
        return self._intensity.max_restarts - len(self._restarts)

    def _expire(self, now: float) -> None:
        while self._restarts and now - self._restarts[0] >= self._intensity.period:
            self._restarts.popleft()


def _finite_non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter between restarts of a child.

    ``jitter`` is a fraction in [0, 1]: a delay is drawn from ``[nominal * (1 - jitter),
    nominal]``. ``reset_after`` is how long an incarnation must run to count as stable, after
    which the next restart starts again from ``base``.
    """

    base: float = attrs.field(default=0.5, validator=_finite_non_negative)
    factor: float = attrs.field(default=2.0, validator=v.ge(1.0))
    max: float = attrs.field(default=30.0, validator=_finite_non_negative)
    jitter: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.le(1.0)])
    reset_after: float = attrs.field(default=60.0, validator=v.gt(0.0))

    def nominal(self, attempt: int) -> float:
        """The delay before restart ``attempt`` (1-based) without jitter."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        if self.base == 0:
            return 0.0
        try:
            # float(): an int factor would build a huge exact int for a huge attempt.
            nominal = self.base * float(self.factor) ** (attempt - 1)
        except OverflowError:
            return self.max
        return min(self.max, nominal)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The jittered delay before restart ``attempt``; draws once from ``rng``."""
        return self.nominal(attempt) * (1.0 - self.jitter * rng.random())


class RestartBackoff:
    """One child's position on its backoff curve."""

    __slots__ = ("_backoff", "attempt")

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self.attempt = 0

    def next(self, ran_for: float, rng: random.Random) -> tuple[int, float]:
        """Advance after an incarnation that ran ``ran_for`` seconds: (attempt, delay)."""
        if ran_for >= self._backoff.reset_after:
            self.attempt = 0
        self.attempt += 1
        return self.attempt, self._backoff.delay(self.attempt, rng)
