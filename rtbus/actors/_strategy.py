"""Restart decisions as tables: which exits restart a child, and which siblings go with it.

Invariants:

* A child is restarted after its own exit only if the exit's outcome is in
  ``RESTART_ON[restart type]``: permanent after any exit, transient only after an exception
  that is not ``Fatal``, temporary never. A child not restarted is removed and its siblings
  are left alone.
* When a child is restarted, ``AFFECTED[strategy]`` picks the group that goes down and comes back
  with it, as positions in start order: only itself (one_for_one), every child (one_for_all),
  itself and every child started after it (rest_for_one). The failed child is always in the group.
* A sibling in the group is stopped (in reverse start order) and then restarted with the group
  if ``RESTARTED_WITH_SIBLING[its restart type]``; a temporary sibling is stopped and removed.
* One restart decision counts once, however large the group: against the failed child's own
  budget if its spec gives it one, else against the supervisor's intensity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from ._actor import RestartType

__all__ = ["AFFECTED", "RESTARTED_WITH_SIBLING", "RESTART_ON", "ExitOutcome", "Strategy"]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")

#: How a child's task ended, as far as the restart decision cares.
ExitOutcome = Literal["normal", "failed", "fatal"]

RESTART_ON: Mapping[RestartType, frozenset[ExitOutcome]] = {
    "permanent": frozenset({"normal", "failed", "fatal"}),
    "transient": frozenset({"failed"}),
    "temporary": frozenset(),
}

RESTARTED_WITH_SIBLING: Mapping[RestartType, bool] = {
    "permanent": True,
    "transient": True,
    "temporary": False,
}


def _one_for_one(count: int, failed: int) -> range:
    return range(failed, failed + 1)


def _one_for_all(count: int, failed: int) -> range:
    return range(count)


def _rest_for_one(count: int, failed: int) -> range:
    return range(failed, count)


#: strategy -> (number of children, position of the failed one) -> positions of the group.
AFFECTED: Mapping[Strategy, Callable[[int, int], range]] = {
    "one_for_one": _one_for_one,
    "one_for_all": _one_for_all,
    "rest_for_one": _rest_for_one,
}
