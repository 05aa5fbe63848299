"""The exceptions of rtbus.actors, named for whose fault they are.

This layer sits below the rest of rtbus and must not import it, so its root is its own:

* ``ChildStartFailed`` -- the child's fault: it raised, or returned, before it signalled ready.
  The child's exception is the ``__cause__``.
* ``RestartIntensityExceeded`` -- the children's fault, collectively: they needed more restarts
  than the supervisor allows, so the supervisor fails and leaves the decision to its parent.
  The last child exception (if the last exit was one) is the ``__cause__``.
* ``DuplicateChild`` / ``UnknownChild`` -- the caller's fault: a child id that is already taken,
  or that names no child.

``Fatal`` is not raised here: an actor raises it to say a restart cannot help.
"""

from __future__ import annotations

__all__ = [
    "ChildStartFailed",
    "DuplicateChild",
    "Fatal",
    "RestartIntensityExceeded",
    "SupervisionError",
    "UnknownChild",
]


class SupervisionError(Exception):
    """The root of the exceptions rtbus.actors raises on purpose."""


class Fatal(Exception):
    """Raised by an actor (``from`` the cause) when restarting it cannot help.

    The exit is a failure (reported as ``ActorFailed``), but a transient child is not
    restarted after it, as OTP does not restart one that exits with ``{shutdown, Reason}``.
    A permanent child is restarted all the same: it must run, and its supervisor's intensity
    decides how long that is tried.
    """


class ChildStartFailed(SupervisionError):
    """Raised by a start when the child failed or returned before it signalled ready."""

    def __init__(self, child: str, problem: str) -> None:
        super().__init__(child, problem)
        self.child = child
        self.problem = problem

    def __str__(self) -> str:
        return f"child {self.child!r} {self.problem}"


class RestartIntensityExceeded(SupervisionError):
    """Raised out of a supervisor that needed more than ``max_restarts`` in ``period``."""

    def __init__(self, supervisor: str, child: str, max_restarts: int, period: float) -> None:
        super().__init__(supervisor, child, max_restarts, period)
        self.supervisor = supervisor
        self.child = child
        self.max_restarts = max_restarts
        self.period = period

    def __str__(self) -> str:
        return (
            f"supervisor {self.supervisor!r} gave up: more than {self.max_restarts} restarts "
            f"in {self.period:g}s (last exit: child {self.child!r})"
        )


class DuplicateChild(SupervisionError, ValueError):
    """Raised by ``start_child`` when a child with that id already exists."""

    def __init__(self, child: str) -> None:
        super().__init__(child)
        self.child = child

    def __str__(self) -> str:
        return f"a child with id {self.child!r} already exists"


class UnknownChild(SupervisionError, LookupError):
    """Raised when an id names no child of the supervisor."""

    def __init__(self, child: str) -> None:
        super().__init__(child)
        self.child = child

    def __str__(self) -> str:
        return f"no child with id {self.child!r}"
