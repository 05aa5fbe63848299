"""Readiness: whether the service should be sent work now and, when it should not, why.

``/readyz`` serves it; an orchestrator stops routing to the process while it says no. It is
ready when every check says ``"ok"``:

* ``service`` -- running, not draining (a drain is for good: the process is on its way out);
* ``supervision`` -- the root and its three supervisors run in their first incarnation: one
  that gave up and was restarted has lost its dynamic children, so the service is not what it
  was (sessions and workers given up on one by one never make their supervisor give up);
* ``session <id>`` -- each *required* session (the configured ones) is ``ready``; otherwise the
  check names its state (``connecting``, ``reconnecting``...), or, when it is gone, what the
  reconciler says (``failed, retrying in 8s``) or ``absent``;
* any check a later component plugs in (the Redis bridge: ``redis``).

A plugged-in check returns ``None`` when all is well and a short reason when it is not. It is
called at every probe, so it must be cheap and must not block; one that raises counts as
failing, under its exception's type name only (its message could carry anything).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

import attrs

from rtbus.actors import ChildState, Supervisor, UnknownChild
from rtbus.session import Session, SessionState

__all__ = ["OK", "Readiness", "ReadinessCheck", "ReadinessChecks", "supervision_problem"]

OK = "ok"
ReadinessCheck = Callable[[], str | None]
#: Why a required session is gone, if something knows (the reconciler): id -> reason or None.
AbsentReason = Callable[[str], str | None]

_SUPERVISORS = ("system", "workers", "sessions")
_BUILT_IN = ("service", "supervision")
_SESSION_PREFIX = "session "


@attrs.frozen
class Readiness:
    """A snapshot: ``ready`` when every check in ``checks`` (name -> ``"ok"`` or what is wrong)
    passes."""

    ready: bool
    checks: Mapping[str, str]

    @classmethod
    def of(cls, checks: Mapping[str, str]) -> Readiness:
        frozen = MappingProxyType(dict(checks))
        return cls(all(value == OK for value in frozen.values()), frozen)


class ReadinessChecks:
    """What readiness asks beyond the tree: the required sessions and the plugged-in checks."""

    def __init__(self) -> None:
        # dicts, not sets: checks are reported in the order they were declared.
        self._required: dict[str, None] = {}
        self._extra: dict[str, ReadinessCheck] = {}

    def require(self, ids: Iterable[str]) -> None:
        """Mark sessions required; raises ``TypeError``/``ValueError`` and marks none on bad
        input."""
        if isinstance(ids, str):
            raise TypeError("require_sessions takes an iterable of session ids, not one string")
        wanted = list(ids)
        for id in wanted:
            if not isinstance(id, str) or not id:
                raise ValueError(f"a session id must be a non-empty string, got {id!r}")
        self._required.update(dict.fromkeys(wanted))

    def add(self, name: str, check: ReadinessCheck) -> None:
        """Plug in a check; raises ``ValueError`` for a taken or reserved name."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a readiness check needs a non-empty name, got {name!r}")
        if name in _BUILT_IN or name.startswith(_SESSION_PREFIX) or name in self._extra:
            raise ValueError(f"the readiness check name {name!r} is taken")
        if not callable(check):
            raise TypeError(f"the readiness check {name!r} is not callable")
        self._extra[name] = check

    def sessions(self, live: Mapping[str, Session], absent: AbsentReason) -> dict[str, str]:
        return {
            _SESSION_PREFIX + id: _session_state(live.get(id)) or absent(id) or "absent"
            for id in self._required
        }

    def extra(self) -> dict[str, str]:
        return {name: _run(check) for name, check in self._extra.items()}


def supervision_problem(root: Supervisor | None) -> str:
    """``"ok"``, or which part of the tree is down and how."""
    if root is None:
        return "root is not running"
    for id in _SUPERVISORS:
        try:
            info = root.child(id)
        except UnknownChild:
            return "root is not running"
        if info.state is not ChildState.RUNNING:
            return f"root/{id} is {info.state.value}"
        if info.incarnation > 1:
            return f"root/{id} gave up and was restarted"
    return OK


def _session_state(session: Session | None) -> str | None:
    if session is None:
        return None
    return OK if session.state is SessionState.READY else session.state.value


def _run(check: ReadinessCheck) -> str:
    try:
        problem = check()
    except Exception as exc:
        return f"the check raised {type(exc).__name__}"
    return OK if problem is None else str(problem)
