"""What ``rtbus top`` shows: a service's sessions and bus, from two samples of its control API
(sans-IO: the samples come in as parsed JSON and metrics text, a rich renderable goes out).

Rates are differences between consecutive samples over the time between them, so the first
sample of a run has none. A session's last error is the error code whose count grew most
recently (the statistics count errors by code; they keep no history), or, on the first
sample, its most frequent one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["BusRow", "Sample", "TopView", "bus_rows"]

_POLICIES = ("block", "drop_oldest", "drop_newest", "disconnect")
_STATE_STYLES: Mapping[str, str] = {
    "ready": "green",
    "connecting": "yellow",
    "reconnecting": "bold yellow",
    "closing": "dim",
    "closed": "dim",
    "failed": "bold red",
}


@attrs.frozen
class BusRow:
    """The bus's subscriptions under one overflow policy (the metrics keep no finer label)."""

    policy: str
    subscriptions: int
    queued: int
    fill_max: float
    dropped: int


@attrs.frozen
class Sample:
    """One reading of the service: each session's statistics, the bus, when it was taken."""

    at: float
    sessions: tuple[Mapping[str, Any], ...]
    bus: tuple[BusRow, ...] = ()
    gateway_connections: int = 0
    publishers_waiting: int = 0
    #: ``/readyz``'s checks: name -> ``"ok"`` or what is wrong.
    readiness: Mapping[str, str] = attrs.field(factory=dict)


def bus_rows(metrics_text: str) -> tuple[tuple[BusRow, ...], int, int]:
    """The bus rows, gateway connections and publishers waiting in ``/metrics`` text."""
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            values[sample.name, sample.labels.get("policy", "")] = sample.value
    rows = tuple(
        BusRow(
            policy,
            int(values.get(("rtbus_bus_subscriptions", policy), 0)),
            int(values.get(("rtbus_bus_queue_depth", policy), 0)),
            values.get(("rtbus_bus_queue_fill_ratio_max", policy), 0.0),
            int(values.get(("rtbus_bus_dropped_total", policy), 0)),
        )
        for policy in _POLICIES
    )
    gateway = int(values.get(("rtbus_gateway_connections", ""), 0))
    waiting = int(values.get(("rtbus_bus_publishers_waiting", ""), 0))
    return rows, gateway, waiting


@attrs.define
class TopView:
    """The view: fed samples (``update``) and faults (``unreachable``), rendered on demand."""

    url: str
    previous: Sample | None = None
    current: Sample | None = None
    problem: str | None = None
    _last_errors: dict[str, str] = attrs.field(factory=dict)

    def update(self, sample: Sample) -> None:
        """Take a new sample: rates come from the one before it."""
        self.previous, self.current, self.problem = self.current, sample, None
        before = {s["id"]: s for s in self.previous.sessions} if self.previous else {}
        for stats in sample.sessions:
            error = _last_error(stats, before.get(stats["id"]))
            if error is not None:
                self._last_errors[stats["id"]] = error

    def unreachable(self, problem: str) -> None:
        """The service could not be read: say so, and keep showing the last sample."""
        self.problem = problem

    def render(self) -> RenderableType:
        """The whole view: a header, the sessions, the bus."""
        parts: list[RenderableType] = [self._header()]
        if self.current is not None:
            parts += [self._sessions(self.current), self._bus(self.current)]
        return Group(*parts)

    def _header(self) -> Text:
        header = Text(f"rtbus top  {self.url}", style="bold")
        if self.current is not None:
            at = datetime.fromtimestamp(self.current.at).strftime("%H:%M:%S")
            states = _count(s["state"] for s in self.current.sessions)
            header.append(f"  {at}  sessions {len(self.current.sessions)}", style="")
            header.append("".join(f"  {state} {n}" for state, n in sorted(states.items())))
            header.append(f"  gateway connections {self.current.gateway_connections}  ")
            header.append_text(_readiness(self.current.readiness))
        if self.problem is not None:
            header.append(f"\n{self.problem}", style="bold red")
        return header

    def _sessions(self, sample: Sample) -> Table:
        table = Table(title="sessions", title_justify="left", expand=False)
        for column in ("session", "state", "model", "events/s", "events", "reconnects"):
            table.add_column(column, justify="right" if column[0] in "er" else "left")
        table.add_column("send queue", justify="right")
        table.add_column("last error")
        rates = self._rates(sample)
        for stats in sorted(sample.sessions, key=lambda s: str(s["id"])):
            state = str(stats["state"])
            queue = stats.get("send_queue") or {}
            table.add_row(
                str(stats["id"]),
                Text(state, style=_STATE_STYLES.get(state, "")),
                str(stats.get("model", "")),
                rates.get(stats["id"], "-"),
                str(stats.get("events_published", 0)),
                str(stats.get("reconnects", 0)),
                f"{queue.get('queued', 0)}/{queue.get('max_size', '?')}",
                Text(self._last_errors.get(stats["id"], ""), style="red"),
            )
        return table

    def _rates(self, sample: Sample) -> dict[str, str]:
        if self.previous is None or sample.at <= self.previous.at:
            return {}
        seconds = sample.at - self.previous.at
        before = {s["id"]: s.get("events_published", 0) for s in self.previous.sessions}
        return {
            s["id"]: f"{(s.get('events_published', 0) - before[s['id']]) / seconds:.1f}"
            for s in sample.sessions
            if s["id"] in before
        }

    def _bus(self, sample: Sample) -> Table:
        waiting = sample.publishers_waiting
        title = f"bus subscriptions by overflow policy (publishers waiting: {waiting})"
        table = Table(title=title, title_justify="left")
        for column in ("policy", "subscriptions", "queued", "fullest", "dropped"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for row in sample.bus:
            dropped = Text(str(row.dropped), style="bold red" if row.dropped else "")
            fill = f"{row.fill_max:.0%}"
            table.add_row(row.policy, str(row.subscriptions), str(row.queued), fill, dropped)
        return table


def _readiness(checks: Mapping[str, str]) -> Text:
    failing = {name: problem for name, problem in checks.items() if problem != "ok"}
    if not failing:
        return Text("/readyz ok", style="bold green")
    said = "; ".join(f"{name}: {problem}" for name, problem in failing.items())
    return Text(f"/readyz not ready ({said})", style="bold red")


def _last_error(stats: Mapping[str, Any], before: Mapping[str, Any] | None) -> str | None:
    errors = _errors(stats)
    if not errors:
        return None
    if before is None:
        return max(errors, key=lambda code: errors[code])
    earlier = _errors(before)
    grown = [code for code, n in errors.items() if n > earlier.get(code, 0)]
    return grown[-1] if grown else None


def _errors(stats: Mapping[str, Any]) -> dict[str, int]:
    counts = stats.get("counts") or {}
    errors = dict(counts.get("server_errors") or {})
    errors.update({f"failed: {k}": v for k, v in (counts.get("failures") or {}).items()})
    return errors


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
