"""A read that finds an envelope waiting is always a cancel point. While a backlog (two or
more) is left waiting, it is a schedule point only once its reader has run for
``rtbus._turns.SLICE`` since it last let others run; with one left or none, it is one."""

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


async def test_a_backlog_is_read_without_a_turn_per_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slice_of(monkeypatch, HOUR)
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        await publish(bus, 10)
        with resumes() as resumed:
            assert await read(sub, 10) == list(range(10))
        assert resumed.count == 2  # the reads that left one, then none


async def test_a_reader_keeping_pace_with_its_publisher_yields_at_every_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One left waiting is a publisher adding one per turn: the reader stays runnable.
    slice_of(monkeypatch, HOUR)
    async with Bus() as bus, bus.subscribe(maxsize=16) as sub:
        for n in range(5):
            await publish(bus, 2 if n == 0 else 1)
            with resumes() as resumed:
                await sub.receive()
            assert resumed.count == 1


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
        await publish(bus, 5)
        with resumes() as resumed:
            assert len(await sub.receive_batch(2)) == 2
            async with sub.delivery() as envelope:
                assert n_of(envelope.event) == 2
        assert resumed.count == 0  # two are left
