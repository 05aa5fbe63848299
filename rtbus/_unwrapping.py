"""Finding the exception that matters inside the ones around it.

Nurseries (ours, trio-websocket's, coredis's task groups) wrap whatever fails in them in an
exception group, often a group of one; the error path and the supervisors wrap a failure in
their own exception with the specific one as ``__cause__``. Every layer that reads or
re-raises such failures walks them with these helpers, so the rules are written once:

* A group's *leaves* are the exceptions it holds at any depth, in order.
* The *sole* exception of a group is its one leaf that is not ``trio.Cancelled`` (a cancelled
  sibling is a consequence of the failure, not a second one); if every leaf is
  ``trio.Cancelled``, the first of them. A group with two or more real failures has none: it
  stays a group.
* A re-raised leaf keeps its own ``__cause__`` and ``__context__``: it is raised as if the
  group had never been there.

It imports nothing from rtbus, so any layer from the transport up can use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import trio

__all__ = ["cause_chain", "leaves", "reraise", "sole_exception", "unwrap_lone_exception"]


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions ``exc`` holds at any depth, in order; ``exc`` itself if not a group."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception worth raising from ``group``, or ``None`` if there are several."""
    every = list(leaves(group))
    real = [exc for exc in every if not isinstance(exc, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    return every[0] if not real else None


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc``, taken out of a group, with the context it had."""
    # Raising inside the ``except`` would make the group the context of an exception that
    # was inside it; keep the context the exception had.
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


@contextlib.contextmanager
def unwrap_lone_exception() -> Iterator[None]:
    """Re-raise the sole exception of a group raised in the body; a group of several
    failures stays a group. For nurseries whose callers should see their own exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        sole = sole_exception(group)
        if sole is None:
            raise
        reraise(sole)


def cause_chain(failure: BaseException) -> Iterator[BaseException]:
    """``failure``, then what caused it (``__cause__``), and so on; each exception once."""
    seen: set[int] = set()
    exc: BaseException | None = failure
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__
