"""What ``rtbus top`` shows, from samples (sans-IO): rates, last errors, the bus by policy."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from rtbus.cli._top_view import BusRow, Sample, TopView, bus_rows

METRICS = """\
# TYPE rtbus_bus_subscriptions gauge
rtbus_bus_subscriptions{policy="block"} 2.0
rtbus_bus_subscriptions{policy="drop_oldest"} 1.0
# TYPE rtbus_bus_queue_depth gauge
rtbus_bus_queue_depth{policy="block"} 7.0
# TYPE rtbus_bus_queue_fill_ratio_max gauge
rtbus_bus_queue_fill_ratio_max{policy="block"} 0.5
# TYPE rtbus_bus_dropped_total counter
rtbus_bus_dropped_total{policy="drop_oldest"} 12.0
# TYPE rtbus_gateway_connections gauge
rtbus_gateway_connections 3.0
# TYPE rtbus_bus_publishers_waiting gauge
rtbus_bus_publishers_waiting 1.0
"""


def stats(id: str, events: int, errors: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": id,
        "state": "ready",
        "model": "gpt-realtime",
        "events_published": events,
        "reconnects": 1,
        "send_queue": {"queued": 2, "max_size": 256},
        "counts": {"server_errors": errors or {}, "failures": {}},
    }


def screen(view: TopView) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(view.render())
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_the_bus_is_read_from_the_metrics_by_policy() -> None:
    rows, gateway, waiting = bus_rows(METRICS)
    assert rows[0] == BusRow("block", 2, 7, 0.5, 0)
    assert rows[1] == BusRow("drop_oldest", 1, 0, 0.0, 12)
    assert [row.policy for row in rows] == ["block", "drop_oldest", "drop_newest", "disconnect"]
    assert (gateway, waiting) == (3, 1)


def test_rates_come_from_two_samples_and_errors_from_what_grew() -> None:
    view = TopView("http://svc")
    rows = bus_rows(METRICS)[0]
    view.update(Sample(100.0, (stats("a", 10, {"rate_limit": 5, "bad": 1}),), rows, 3, 1))
    first = screen(view)
    assert " - " in first  # no rate yet
    assert "rate_limit" in first  # the most frequent, to start with
    view.update(Sample(102.0, (stats("a", 30, {"rate_limit": 5, "bad": 2}),), rows, 3, 1))
    second = screen(view)
    row = next(line for line in second.splitlines() if "│ a " in line)
    assert "10.0" in row  # (30 - 10) events in 2 s
    assert "bad" in row
    assert "rate_limit" not in row
    assert "2/256" in row
    assert "gateway connections 3" in second
    assert "publishers waiting: 1" in second


def test_readiness_is_said_with_what_fails() -> None:
    view = TopView("http://svc")
    view.update(Sample(100.0, (), readiness={"service": "ok", "supervision": "ok"}))
    assert "  /readyz ok" in screen(view)
    checks = {"service": "draining", "sessions": "front is reconnecting"}
    view.update(Sample(101.0, (), readiness=checks))
    assert "/readyz not ready (service: draining; sessions: front is reconnecting)" in screen(view)


def test_an_unreachable_service_is_said_and_the_last_sample_kept() -> None:
    view = TopView("http://svc")
    view.update(Sample(100.0, (stats("a", 10),)))
    view.unreachable("cannot reach http://svc: refused")
    shown = screen(view)
    assert "cannot reach http://svc: refused" in shown
    assert "│ a " in shown
