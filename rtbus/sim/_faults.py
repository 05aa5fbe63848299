"""Faults the simulator injects into a connection, and when.

A ``Fault`` is a value: what goes wrong (``FaultKind``) and when (after the N-th event the
server sent, or T seconds after the connection opened). Faults come from ``SimOptions.faults``
(every connection), from ``sim_fault`` query parameters (one connection; see ``Fault.parse``
for the grammar), or at random with ``SimOptions.fault_rate`` and a seed.

``FaultSchedule`` is the sans-IO part: the shell reports each event it sent and gets back the
faults now due; timed faults are handed to the shell to arm as timers. A fault with neither
trigger fires right after ``session.created`` (``after_events=1``).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from rtbus.protocol import ConfigError

__all__ = ["Fault", "FaultKind", "FaultSchedule", "random_fault"]


class FaultKind(enum.Enum):
    """What goes wrong. The docstring of ``rtbus.sim`` describes each on the wire."""

    CLOSE = "close"
    DROP = "drop"
    STALL = "stall"
    MALFORMED = "malformed"
    NO_TYPE = "notype"
    OVERSIZED = "oversized"
    ERROR = "error"
    EXPIRE = "expire"


#: Faults after which the connection is over (the others inject one frame and carry on).
TERMINAL = frozenset({FaultKind.CLOSE, FaultKind.DROP, FaultKind.STALL, FaultKind.EXPIRE})

#: What the positional argument of a spec means for each kind (``close:1011``).
_POSITIONAL = {
    FaultKind.CLOSE: "code",
    FaultKind.ERROR: "error_code",
    FaultKind.OVERSIZED: "size",
    FaultKind.STALL: "for_seconds",
}


@attrs.frozen
class Fault:
    """One injected fault: its kind, its trigger and the parameters its kind uses.

    ``code``/``reason`` are the close frame of ``close``; ``error_code`` is the code of an
    ``error`` fault's event (``server_error`` is sent with ``type: server_error``); ``size`` is
    the byte length of an ``oversized`` frame; ``for_seconds`` is how long a ``stall`` holds the
    connection before dropping it (``None``: until the server stops).
    """

    kind: FaultKind
    after_events: int | None = attrs.field(default=None)
    after_seconds: float | None = None
    code: int = 1011
    reason: str = "simulated fault"
    error_code: str = "server_error"
    size: int = 2 * 1024 * 1024
    for_seconds: float | None = None

    @after_events.validator
    def _positive(self, _attribute: object, value: int | None) -> None:
        if value is not None and value < 1:
            raise ConfigError("sim_fault", f"after_events must be at least 1, got {value}")

    @property
    def terminal(self) -> bool:
        """Whether the connection ends with this fault."""
        return self.kind in TERMINAL

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Read ``kind[:arg][:key=value]...``, e.g. ``close:1011:after_events=5``.

        Keys: ``after_events``, ``after_seconds``, ``code``, ``reason``, ``error_code``,
        ``size``, ``for_seconds``. The positional ``arg`` is the close code (``close``), the
        error code (``error``), the size (``oversized``) or the duration (``stall``).
        Raises ``ConfigError`` (key ``sim_fault``) for anything else.
        """
        head, *rest = spec.split(":")
        kind = _kind(head)
        given: dict[str, str] = {}
        for token in rest:
            key, sep, value = token.partition("=")
            if not sep:
                key, value = _POSITIONAL.get(kind, ""), token
            if key not in _KEYS:
                raise ConfigError("sim_fault", f"unknown parameter {token!r} in {spec!r}")
            given[key] = value
        read = _Reader(given, spec)
        default = cls(kind)
        return cls(
            kind,
            after_events=read("after_events", int, default.after_events),
            after_seconds=read("after_seconds", float, default.after_seconds),
            code=read("code", int, default.code),
            reason=read("reason", str, default.reason),
            error_code=read("error_code", str, default.error_code),
            size=read("size", int, default.size),
            for_seconds=read("for_seconds", float, default.for_seconds),
        )


_KEYS = frozenset(
    {"after_events", "after_seconds", "code", "reason", "error_code", "size", "for_seconds"}
)

_T = TypeVar("_T")


@attrs.frozen
class _Reader:
    """Reads one spec's ``key=value`` parameters, converting each or naming the bad one."""

    given: dict[str, str]
    spec: str

    def __call__(self, key: str, convert: Callable[[str], _T], default: _T) -> _T:
        if key not in self.given:
            return default
        try:
            return convert(self.given[key])
        except ValueError:
            raise ConfigError("sim_fault", f"bad value for {key} in {self.spec!r}") from None


def _kind(name: str) -> FaultKind:
    try:
        return FaultKind(name)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ConfigError("sim_fault", f"unknown fault {name!r}; known: {known}") from None


_RANDOM_CLOSE_CODES = (1001, 1011, 1012, 1013)


def random_fault(rng: random.Random) -> Fault:
    """A fault chosen at random (for ``fault_rate``): any kind, after 1 to 100 events."""
    kind = rng.choice(list(FaultKind))
    return Fault(
        kind,
        after_events=rng.randint(1, 100),
        code=rng.choice(_RANDOM_CLOSE_CODES),
        for_seconds=rng.uniform(1, 30),
    )


@attrs.define
class FaultSchedule:
    """Which faults are due as a connection sends events."""

    _by_count: dict[int, list[Fault]] = attrs.field(factory=dict)
    timed: list[Fault] = attrs.field(factory=list)

    @classmethod
    def of(cls, faults: Iterable[Fault]) -> FaultSchedule:
        """A schedule for ``faults``."""
        schedule = cls()
        for fault in faults:
            if fault.after_seconds is not None:
                schedule.timed.append(fault)
            else:
                count = fault.after_events or 1
                schedule._by_count.setdefault(count, []).append(fault)
        return schedule

    def after_event(self, count: int) -> list[Fault]:
        """The faults due once the ``count``-th event has been sent (each fires once)."""
        return self._by_count.pop(count, [])
