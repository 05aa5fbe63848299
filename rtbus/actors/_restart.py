"""Restart intensity: pure logic, no clock, no trio.

``RestartWindow`` takes ``now`` as a float from the caller (the supervisor passes
``trio.current_time()``), so it is tested synchronously and with hypothesis, and gives exact
answers on a virtual clock. The backoff between restarts is ``rtbus._backoff``, shared with the
transport's reconnects.

Invariants:

* ``RestartWindow``: at most ``max_restarts`` restarts are granted in any span of ``period``
  seconds. A restart at time ``t`` counts while ``now - t < period``. The first restart refused
  is the (R+1)th inside the period; after a refusal the window keeps refusing until old restarts
  age out, but the supervisor never asks again (it has given up).
"""

from __future__ import annotations

from collections import deque

import attrs
from attrs import validators as v

__all__ = ["RestartIntensity", "RestartWindow"]


@attrs.frozen
class RestartIntensity:
    """At most ``max_restarts`` restarts in ``period`` seconds (OTP's MaxR / MaxT); one more
    and the supervisor gives up: on itself (``SupervisorSpec.intensity``), or on that one
    child (``ChildSpec.intensity``)."""

    max_restarts: int = attrs.field(default=3, validator=v.ge(0))
    period: float = attrs.field(default=5.0, validator=v.gt(0.0))


class RestartWindow:
    """Counts restarts against one ``RestartIntensity``: a supervisor's, or a child's own."""

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
