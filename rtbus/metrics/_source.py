"""What the metrics read: a small protocol the service satisfies.

Metrics sit below the service in the layers, so they never import it; the service hands
itself over as a ``MetricsSource``. Every member is read at scrape time, must be cheap, and
must not raise while the service starts, restarts a supervisor or drains.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from rtbus.actors import SupervisorStatistics
from rtbus.bus import Bus
from rtbus.session import SessionCounts, SessionStatistics

__all__ = ["MetricsSource"]


class MetricsSource(Protocol):
    """The parts of a running service its metrics read."""

    @property
    def bus(self) -> Bus:
        """The bus every session publishes to."""

    def session_statistics(self) -> Iterable[SessionStatistics]:
        """A snapshot of every session the service holds now (any state)."""

    def ended_session_counts(self) -> SessionCounts:
        """The counts of every session that has ended, added up: with the live sessions'
        counts they make totals that never go down."""

    def supervisor_statistics(self) -> Iterable[SupervisorStatistics]:
        """A snapshot of each supervisor running now (none while the tree is down)."""

    def supervision_counts(self) -> Mapping[tuple[str, str], int]:
        """Supervision events so far, by (supervisor path, event type)."""

    def worker_losses(self) -> Mapping[str, int]:
        """Envelopes workers never handled because they were given up on, by reason."""
