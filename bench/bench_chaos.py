"""A faulted fleet, and every envelope accounted for: lost-and-uncounted must be 0.

One service, ``SESSIONS`` sessions on ``rtbus.sim`` in process with a random fault on a
share of its connections (drops, close codes, stalls, malformed and oversized frames, error
events, expiry), every session asking for a response again and again for ``SECONDS``. Beside
them, subscribers that misbehave on purpose:

* ``block`` -- a reader that keeps up: it must get every envelope;
* ``drop_oldest``, ``drop_newest`` -- readers ten times too slow for their buffer;
* ``disconnect`` -- a slow reader cut off on overflow, that subscribes again;
* ``block`` with a ``block_timeout`` -- a reader that stops for good: cut loose;
* a worker that raises on every 25th envelope (``drop_newest``, so its restarts hold no
  one up): given up on past its own restart budget, what it never handled counted.

For each, what it was offered, delivered, dropped (counted by its policy), discarded, and
lost-and-uncounted = offered - everything accounted for. The session failures, reconnects,
resumes and faults injected show that the fleet was in trouble while nothing went missing.

``python -m bench chaos``.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from typing import Any

import trio

from bench._table import Row, render
from rtbus import OpenAIConfig, ServiceConfig, SessionSpec, open_service
from rtbus.actors import Backoff
from rtbus.bus import Envelope, Subscription, SubscriptionStatistics
from rtbus.service import Service
from rtbus.sim import SimServer, serve_sim

KEY = "sk-bench-chaos"
SESSIONS = 20
SECONDS = 8.0
FAULT_RATE = 0.3
SLOW = 0.002  # seconds a slow reader takes per envelope


class Tally:
    """What one subscriber's subscriptions were offered and did, added up over them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.totals: Counter[str] = Counter()

    def add(self, stats: SubscriptionStatistics) -> None:
        for field in ("offered", "delivered", "dropped", "queued", "discarded", "withdrawn"):
            self.totals[field] += getattr(stats, field)
        self.totals["waiting"] += stats.publishers_waiting

    @property
    def uncounted(self) -> int:
        t = self.totals
        accounted = sum(t[f] for f in ("delivered", "dropped", "queued", "discarded", "withdrawn"))
        return t["offered"] - accounted - t["waiting"]


async def _reader(sub: Subscription, pause: float) -> None:
    async for _ in sub:
        if pause:
            await trio.sleep(pause)


async def _resubscribing(service: Service, tally: Tally) -> None:
    while True:
        sub = service.bus.subscribe(maxsize=32, overflow="disconnect")
        try:
            await _reader(sub, SLOW)
        except Exception:
            pass
        finally:
            tally.add(sub.statistics())
            await sub.aclose()


async def _stuck(sub: Subscription) -> None:
    await sub.receive()
    await trio.sleep_forever()  # never reads again: the bus cuts it loose


async def _talk(service: Service, id: str) -> None:
    spec = SessionSpec(record=SessionSpec().record)
    session = await service.open_session(id=id, spec=spec)
    while True:
        try:
            await session.send({"type": "response.create"})
        except Exception:
            return
        await trio.sleep(0.2)


def _flaky(count: list[int], envelope: Envelope) -> None:
    count[0] += 1
    if count[0] % 25 == 0:
        raise RuntimeError("every 25th envelope")


async def _measure() -> list[Row]:
    tallies = {
        name: Tally(name)
        for name in ("block", "drop_oldest", "drop_newest", "disconnect", "block, cut loose")
    }
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            serve_sim, "127.0.0.1", 0, speed=4.0, response_audio_seconds=0.5,
            api_key=KEY, fault_rate=FAULT_RATE, seed=7,
        )  # fmt: skip
        sim: SimServer = await nursery.start(serve)
        config = ServiceConfig(
            upstream=OpenAIConfig(api_key=KEY, base_url=sim.url),
            # Quick restarts, so the flaky worker spends its budget within the run.
            worker_backoff=Backoff(base=0.05, max_delay=0.2),
        )
        async with open_service(config) as service:
            subs = {
                "block": service.bus.subscribe(maxsize=100_000),
                "drop_oldest": service.bus.subscribe(maxsize=32, overflow="drop_oldest"),
                "drop_newest": service.bus.subscribe(maxsize=32, overflow="drop_newest"),
                "block, cut loose": service.bus.subscribe(maxsize=32, block_timeout=0.5),
            }
            # A subscriber to errors: recoverable error events are handled, not failures.
            flaky_count = [0]
            flaky = functools.partial(_flaky, flaky_count)
            worker = await service.add_worker(flaky, overflow="drop_newest", maxsize=64)
            async with trio.open_nursery() as load:
                load.start_soon(_reader, subs["block"], 0.0)
                load.start_soon(_reader, subs["drop_oldest"], SLOW * 10)
                load.start_soon(_reader, subs["drop_newest"], SLOW * 10)
                load.start_soon(_stuck, subs["block, cut loose"])
                load.start_soon(_resubscribing, service, tallies["disconnect"])
                for n in range(SESSIONS):
                    load.start_soon(_talk, service, f"chaos-{n}")
                await trio.sleep(SECONDS)
                load.cancel_scope.cancel()
            for name, sub in subs.items():
                tallies[name].add(sub.statistics())
            worker_stats = worker.statistics()
            published = service.bus.statistics().published
            counts = service.metrics.registry.get_sample_value
            lost_by_worker = counts("rtbus_worker_envelopes_lost_total", {"reason": "gave_up"}) or 0
            faults = sim.statistics().faults_injected
            sessions = [s.statistics() for s in service.sessions.values()]
        nursery.cancel_scope.cancel()
    return _rows(tallies, published, worker_stats, lost_by_worker, faults, sessions)


def _rows(
    tallies: dict[str, Tally],
    published: int,
    worker: SubscriptionStatistics,
    lost_by_worker: float,
    faults: int,
    sessions: list[Any],
) -> list[Row]:
    rows = [Row("chaos", "envelopes published", published, "envelopes")]
    rows.append(Row("chaos", "faults injected upstream", faults, "faults"))
    reconnects = sum(s.reconnects for s in sessions)
    rows.append(Row("chaos", "reconnects (each resumed)", reconnects, "reconnects"))
    for name, tally in tallies.items():
        t = tally.totals
        detail = (
            f"delivered {t['delivered']:,}, dropped {t['dropped']:,}, discarded {t['discarded']:,}"
        )
        rows.append(Row("chaos", f"{name}: offered", t["offered"], "envelopes", detail))
        ok = "ok" if tally.uncounted == 0 else "MISS"
        rows.append(
            Row("chaos", f"{name}: lost and uncounted", tally.uncounted, "envelopes", "", "0", ok)
        )
    detail = f"gave up; {lost_by_worker:,.0f} counted lost"
    rows.append(
        Row("chaos", "worker raising every 25th: offered", worker.offered, "envelopes", detail)
    )
    flaky = Tally("worker")
    flaky.add(worker)
    ok = "ok" if flaky.uncounted == 0 else "MISS"
    rows.append(
        Row("chaos", "worker: lost and uncounted", flaky.uncounted, "envelopes", "", "0", ok)
    )
    return rows


def run() -> list[Row]:
    return trio.run(_measure)


if __name__ == "__main__":
    print(render(run()))
    sys.exit(0)
