"""Reads through the gateway are scheduled as in process: a read that finds a frame already
here is a cancel point, and while a backlog is left a schedule point only once its reader
has run for ``rtbus._turns.SLICE``. One whole message of frames read with a yield each
cost a gateway client a fifth of its CPU (BENCHMARKS.md)."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing
from support.events import ev
from support.gateway import GatewayApp, client, publish, take
from support.turns import resumes, slice_of

from rtbus.service import Service

settle = trio.testing.wait_all_tasks_blocked
HOUR = 3600.0


def publish_together(service: Service, n: int) -> None:
    """``n`` events in one step, as a session publishes the frames of one receive: the
    forwarder takes them in one batch, and they reach the client in one message."""
    raw = orjson.dumps({"type": "test.x", "event_id": "evt"})
    for _ in range(n):
        service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=raw)


# Within the slice, only the reads that leave one and none yield; with none, every read.
@pytest.mark.parametrize(("seconds", "yields"), [(HOUR, 2), (0.0, 10)])
async def test_reads_of_frames_already_here_follow_the_slice(
    gateway: GatewayApp,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    seconds: float,
    yields: int,
) -> None:
    slice_of(monkeypatch, seconds)
    async with client(gateway) as bus, bus.subscribe(types="test.*", maxsize=64) as sub:
        publish_together(service, 10)
        await settle()
        assert sub.statistics().queued == 10
        with resumes() as resumed:
            envelopes = await take(sub, 10)
        assert resumed.count == yields
        assert [envelope.seq for envelope in envelopes] == list(range(1, 11))


async def test_a_read_that_waited_does_not_yield_again(
    gateway: GatewayApp, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    slice_of(monkeypatch, 0.0)
    async with (
        client(gateway) as bus,
        bus.subscribe(types="test.*", maxsize=64) as sub,
        trio.open_nursery() as nursery,
    ):
        counted: list[int] = []

        async def read() -> None:
            with resumes() as resumed:
                await sub.receive()
            counted.append(resumed.count)

        nursery.start_soon(read)
        await settle()
        await publish(service, "s1", "test.x")
    # Once to wait for the frame, and no more: waiting let the others run.
    assert counted == [1]


async def test_a_cancelled_read_of_a_frame_already_here_takes_nothing(
    gateway: GatewayApp, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    slice_of(monkeypatch, HOUR)
    async with client(gateway) as bus, bus.subscribe(types="test.*", maxsize=64) as sub:
        publish_together(service, 2)
        await settle()
        with trio.CancelScope() as scope:
            scope.cancel()
            await sub.receive()
        assert scope.cancelled_caught
        assert sub.statistics().queued == 2
        assert [envelope.seq for envelope in await take(sub, 2)] == [1, 2]
