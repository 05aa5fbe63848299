"""Bus fan-out and routing cost: ``python -m bench.bench_bus`` prints a table.

* Fan-out: publish N events to 0, 1, 10 and 100 matching subscriptions; the least-squares
  slope of microseconds per event against subscriptions is the cost of one more subscriber
  per event (target: at most 2 us). Subscriptions use ``block`` with room for every event, so
  the measurement is the fan-out itself, not drops or back-pressure.
* Routing: publish to one matching subscription with 1,000 non-matching ones beside it
  (exact types, globs and session filters) against none; the ratio should stay near 1.

Each case is the best of a few runs: the machine is shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import trio
from support.events import ev

from bench._table import Row, render
from rtbus.bus import Bus

EVENTS = 20_000
REPEATS = 3
FANOUT = (0, 1, 10, 100)
NON_MATCHING = 1_000
SLOPE_TARGET_US = 2.0
ROUTING_TARGET_RATIO = 1.5


def _fanout_bus(subscribers: int) -> Bus:
    bus = Bus()
    for _ in range(subscribers):
        bus.subscribe(types=["response.*", "error"], maxsize=EVENTS)
    return bus


def _routing_bus(non_matching: int) -> Bus:
    bus = Bus()
    bus.subscribe(sessions="s", types="response.output_audio.delta", maxsize=EVENTS)
    for i in range(non_matching):
        shape = i % 3
        if shape == 0:
            bus.subscribe(types=f"other.type.{i}", maxsize=1)
        elif shape == 1:
            bus.subscribe(types=f"other.{i}.*", maxsize=1)
        else:
            bus.subscribe(sessions=f"other-session-{i}", maxsize=1)
    return bus


async def _publish_us_per_event(bus: Bus) -> float:
    start = time.perf_counter()
    for i in range(EVENTS):
        await bus.publish("s", "response.output_audio.delta", ev(i), received_at=0.0)
    return (time.perf_counter() - start) / EVENTS * 1e6


def _best_us_per_event(make_bus: Callable[[], Bus]) -> float:
    return min(trio.run(_publish_us_per_event, make_bus()) for _ in range(REPEATS))


def _slope(xs: list[float], ys: list[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


def _fanout_rows() -> list[Row]:
    costs = [_best_us_per_event(partial(_fanout_bus, k)) for k in FANOUT]
    rows = [
        Row("bus", f"publish to {k} subscribers", cost, "us/event")
        for k, cost in zip(FANOUT, costs, strict=True)
    ]
    slope = _slope([float(k) for k in FANOUT], costs)
    verdict = "ok" if slope <= SLOPE_TARGET_US else "over target"
    rows.append(
        Row("bus", "fan-out slope", slope, "us/sub/event", "", f"<= {SLOPE_TARGET_US}", verdict)
    )
    return rows


def _routing_rows() -> list[Row]:
    alone = _best_us_per_event(partial(_routing_bus, 0))
    crowded = _best_us_per_event(partial(_routing_bus, NON_MATCHING))
    ratio = crowded / alone
    verdict = "ok" if ratio <= ROUTING_TARGET_RATIO else "over target"
    return [
        Row("bus", "1 matching, no others", alone, "us/event"),
        Row(
            "bus",
            f"1 matching, {NON_MATCHING:,} non-matching",
            crowded,
            "us/event",
            f"x{ratio:.2f}",
            f"<= x{ROUTING_TARGET_RATIO}",
            verdict,
        ),
    ]


def run() -> list[Row]:
    """Measure fan-out and routing cost; one row per case."""
    return _fanout_rows() + _routing_rows()


def main() -> None:
    """Print the bus benchmark's table."""
    print(render(run()))


if __name__ == "__main__":
    main()
