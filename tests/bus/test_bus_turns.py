"""A read that finds an envelope waiting is always a cancel point, and a schedule point only
once its reader has run for ``rtbus._turns.SLICE`` since it last let others run."""

from __future__ import annotations

import time

import pytest
import trio
from support.events import ev, n_of
from support.turns import resumes, slice_of

from rtbus.bus import Bus, Subscription

HOUR = 3600.0


async def publish(bus: Bus, count: int) -> None:
    for i in range(count):
        await bus.publish("s", "response.done", ev(i), received_at=0.0)


async def read(sub: Subscription, count: int) -> list[object]:
    return [n_of((await sub.receive()).event) for _ in range(count)]


async def test_reads_of_waiting_envelopes_within_the_slice_let_nobody_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slice_of(monkeypatch, HOUR)
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        await publish(bus, 10)
        with resumes() as resumed:
            assert await read(sub, 10) == list(range(10))
        assert resumed.count == 0


async def test_with_no_slice_every_read_of_a_waiting_envelope_lets_others_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slice_of(monkeypatch, 0.0)
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        await publish(bus, 10)
        with resumes() as resumed:
            await read(sub, 10)
        assert resumed.count == 10


async def test_a_reader_that_works_past_the_slice_yields_at_its_next_read() -> None:
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        await publish(bus, 3)
        for _ in range(3):
            with resumes() as resumed:
                time.sleep(0.001)  # noqa: ASYNC251 -- work past the real 0.5 ms slice
                await sub.receive()
            assert resumed.count == 1


async def test_every_read_is_still_a_cancel_point_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slice_of(monkeypatch, HOUR)
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        await publish(bus, 3)
        for receive in (sub.receive, lambda: sub.receive_batch(2)):
            with trio.CancelScope() as scope:
                scope.cancel()
                await receive()
            assert scope.cancelled_caught
        with trio.CancelScope() as scope:
            scope.cancel()
            async with sub.delivery():
                pytest.fail("a cancelled delivery was entered")
        assert scope.cancelled_caught
        assert sub.statistics().queued == 3
        assert await read(sub, 3) == [0, 1, 2]


async def test_batches_and_deliveries_of_waiting_envelopes_follow_the_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slice_of(monkeypatch, HOUR)
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        await publish(bus, 4)
        with resumes() as resumed:
            assert len(await sub.receive_batch(2)) == 2
            async with sub.delivery() as envelope:
                assert n_of(envelope.event) == 2
        assert resumed.count == 0
