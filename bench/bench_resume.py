"""The conversation outliving the connection: what a caller waits for.

Against ``rtbus.sim`` on loopback (the real clock), one session at a time:

* **Resume wait** after a dropped connection, for a record of 10, 100 and 1,000 items: from
  the connection being lost to ``rtbus.session.resumed`` (what the session reports as
  ``waited_seconds``). The reconnect backoff is set to 0, so the figure is detection,
  reconnect, handshake and the restore itself, not a policy's delay.
* **Recycle pause**: a recycle opens the next upstream session and restores the record into
  it while the current one still serves, then switches at a turn boundary; the pause is from
  the old connection's close to the new one taking events (``switch_seconds``), next to the
  resume wait of a break-before-make replacement of the same record.

``python -m bench resume``.
"""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from bench._table import Row, render
from rtbus import OpenAIConfig, ServiceConfig, SessionSpec, open_service
from rtbus.actors import Backoff
from rtbus.bus import Subscription
from rtbus.service import Service
from rtbus.session import RecordBound
from rtbus.sim import SimServer, serve_sim
from rtbus.transport import ReconnectPolicy

KEY = "sk-bench-resume"
SIZES = (10, 100, 1_000)
REPEATS = 30
RECYCLES = 10
RECYCLE_ITEMS = 100
TARGET_P99_MS = 250.0
IMMEDIATE = ReconnectPolicy(backoff=Backoff(base=0.0, max_delay=0.0, jitter=0.0))


def _item(n: int) -> dict[str, Any]:
    part = {"type": "input_text", "text": f"This is turn {n} of a long call."}
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [part]},
    }


async def _until(sub: Subscription, type: str) -> Any:
    async for envelope in sub:
        if envelope.type == type:
            return envelope.event
    raise RuntimeError(f"the bus closed before {type}")


async def _fill(service: Service, spec: SessionSpec, items: int) -> tuple[Any, Subscription]:
    sub = service.bus.subscribe(sessions="s", types=["rtbus.session.*", "conversation.item.done"])
    session = await service.open_session(id="s", spec=spec)
    for n in range(items):
        await session.send(_item(n))
    for _ in range(items):
        await _until(sub, "conversation.item.done")
    return session, sub


async def _resume_waits(sim: SimServer, items: int) -> list[float]:
    bound = RecordBound(max_items=max(items, 1), max_bytes=10 * 1024 * 1024)
    spec = SessionSpec(reconnect=IMMEDIATE, record=bound, recycle_after=None)
    config = ServiceConfig(upstream=OpenAIConfig(api_key=KEY, base_url=sim.url))
    waits = []
    async with open_service(config) as service:
        session, sub = await _fill(service, spec, items)
        for _ in range(REPEATS):
            sim.inject("drop")
            resumed = await _until(sub, "rtbus.session.resumed")
            assert resumed.items_restored == items, resumed
            waits.append(resumed.waited_seconds)
        await sub.aclose()
        assert len(session.conversation().items) == items
    return waits


async def _recycle_pauses(sim: SimServer) -> list[float]:
    bound = RecordBound(max_items=RECYCLE_ITEMS, max_bytes=10 * 1024 * 1024)
    spec = SessionSpec(record=bound, recycle_after=0.2, recycle_grace=5.0)
    config = ServiceConfig(upstream=OpenAIConfig(api_key=KEY, base_url=sim.url))
    pauses = []
    async with open_service(config) as service:
        _, sub = await _fill(service, spec, RECYCLE_ITEMS)
        for _ in range(RECYCLES):
            recycled = await _until(sub, "rtbus.session.recycled")
            assert recycled.items_restored == RECYCLE_ITEMS, recycled
            pauses.append(recycled.switch_seconds)
        await sub.aclose()
    return pauses


def _ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def _with_sim(measure: Callable[[SimServer], Awaitable[list[float]]]) -> list[float]:
    async with trio.open_nursery() as nursery:
        serve = functools.partial(serve_sim, "127.0.0.1", 0, speed=None, api_key=KEY)
        sim: SimServer = await nursery.start(serve)
        result = await measure(sim)
        nursery.cancel_scope.cancel()
    return result


async def _measure() -> list[Row]:
    rows = []
    resume_100: list[float] = []
    for items in SIZES:
        waits = await _with_sim(functools.partial(_resume_waits, items=items))
        if items == RECYCLE_ITEMS:
            resume_100 = waits
        p99 = _ms(waits, 99)
        case = f"resume wait, {items:,} items"
        rows.append(Row("resume", f"{case}: p50", _ms(waits, 50), "ms"))
        target = f"<= {TARGET_P99_MS:g}" if items == 100 else ""
        verdict = ("ok" if p99 <= TARGET_P99_MS else "MISS") if target else ""
        rows.append(Row("resume", f"{case}: p99", p99, "ms", f"{REPEATS} drops", target, verdict))
    pauses = await _with_sim(_recycle_pauses)
    p99 = _ms(pauses, 99)
    ratio = f"{p99 / _ms(resume_100, 99):.2f}x a resume"
    rows.append(Row("resume", f"recycle pause, {RECYCLE_ITEMS} items: p50", _ms(pauses, 50), "ms"))
    rows.append(
        Row(
            "resume",
            f"recycle pause, {RECYCLE_ITEMS} items: p99",
            p99,
            "ms",
            ratio,
            "< 1x",
            "ok" if p99 < _ms(resume_100, 99) else "MISS",
        )
    )
    return rows


def run() -> list[Row]:
    return trio.run(_measure)


if __name__ == "__main__":
    print(render(run()))
    sys.exit(0)
