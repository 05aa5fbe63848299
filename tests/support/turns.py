"""Watching a reader's schedule points: how many times trio resumes the reading task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

from rtbus import _turns


class Resumed(trio.abc.Instrument):
    """Counts the steps trio gives one task: each after the first follows a yield of it."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task, self.count = task, 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1


@contextmanager
def resumes() -> Iterator[Resumed]:
    """How many times the calling task yields (and is resumed) within the ``with``."""
    resumed = Resumed(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(resumed)
    try:
        yield resumed
    finally:
        trio.lowlevel.remove_instrument(resumed)


def slice_of(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Readers yield once they have run ``seconds`` (``rtbus._turns.SLICE``)."""
    monkeypatch.setattr(_turns, "SLICE", seconds)
