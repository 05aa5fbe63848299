"""Batched acknowledgements against a real redis-server: ``run`` sends them with its next read,
in the same round trip, and a consumer process killed with acknowledgements still queued
loses nothing: what it handled and did not get acknowledged is handled again elsewhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from support.polling import eventually
from support.redis_load import KEYS, TEXT, publish
from support.redis_server import RedisServer

from rtbus.bus import Bus
from rtbus.redis import RedisBridge, RedisConfig, RedisEnvelope, run_bridge, subscribe
from rtbus.redis._group import GroupMember, Pending

EVENTS_KEY = KEYS[1]


async def pending(server: RedisServer, group: str = "g") -> int:
    async with server.client() as redis:
        summary = await redis.xpending(EVENTS_KEY, group)
    return summary.pending  # type: ignore[union-attr]


async def test_run_sends_its_acknowledgements_with_its_next_read(
    redis_config: RedisConfig,
    redis_server: RedisServer,
    mock_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The clock stands still (rate 0): the ack delay never passes, so the acknowledgements
    # can only go with a read (or a full batch, or at close). Redis works on real time. (So
    # the bridge writes at once: a linger would never end.)
    config = attrs.evolve(redis_config, reclaim_idle_seconds=30.0, linger_seconds=0)
    carried: list[list[bytes]] = []
    separate: list[list[bytes]] = []
    read, ack = GroupMember.read, GroupMember.ack

    async def spy_read(self: GroupMember, block: float, acks: Sequence[Pending] = ()) -> Any:
        carried.append([pending.entry_id for pending in acks])
        return await read(self, block, acks)

    async def spy_ack(self: GroupMember, handled: Sequence[Pending]) -> None:
        separate.append([pending.entry_id for pending in handled])
        await ack(self, handled)

    monkeypatch.setattr(GroupMember, "read", spy_read)
    monkeypatch.setattr(GroupMember, "ack", spy_ack)
    bus = Bus()
    bridge = RedisBridge(bus, config, node="n")
    for n in range(3):
        await publish(bus, "s", TEXT, n)
    handled: list[RedisEnvelope] = []
    counted = {3: trio.Event(), 4: trio.Event()}

    def handle(envelope: RedisEnvelope) -> None:
        handled.append(envelope)
        if len(handled) in counted:
            counted[len(handled)].set()

    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        async with (
            subscribe(config, group="g", start="0") as sub,
            trio.open_nursery() as consumer,
        ):
            consumer.start_soon(sub.run, handle)
            await counted[3].wait()
            await publish(bus, "s", TEXT, 3)  # ends the read that carried the three acks
            await counted[4].wait()
            consumer.cancel_scope.cancel()  # closed after: the fourth's ack goes at close
        nursery.cancel_scope.cancel()
    ids = [envelope.entry_id.encode() for envelope in handled]
    assert ids[:3] in carried  # the three went with one read, the one after they were handled
    assert separate == [ids[3:]]  # no XACK round trip of their own but the one at close
    assert await pending(redis_server) == 0


WORKER = """
import sys, trio
from rtbus.redis import RedisConfig, subscribe

async def main():
    config = RedisConfig(url=sys.argv[1], reclaim_idle_seconds=30.0)
    async with subscribe(config, group="g", consumer="doomed") as sub:
        async def handle(envelope):
            print("handled", envelope.seq, flush=True)
            if envelope.seq == 5:
                await trio.sleep_forever()  # killed here, the acks of 1-4 queued
        await sub.run(handle)

trio.run(main)
"""


async def test_a_consumer_process_killed_with_acknowledgements_queued_loses_nothing(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus()
    bridge: RedisBridge = await nursery.start(partial(run_bridge, bus, redis_config, node="n"))
    for n in range(5):
        await publish(bus, "s", TEXT, n)
    await eventually(lambda: bridge.statistics().published == {"events": 5})
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", WORKER, redis_config.url], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(30):
            while b"handled 5\n" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, "the worker exited before it handled the fifth"
                output += chunk
    finally:
        process.kill()
        await process.wait()
    assert output.split(b"\n")[:5] == [b"handled %d" % seq for seq in range(1, 6)]
    unacknowledged = await pending(redis_server)
    # The acks were queued, sent with the next read or after 50 ms: the fifth's never.
    assert 1 <= unacknowledged <= 5
    again: list[tuple[int, int]] = []
    async with (
        subscribe(redis_config, group="g", consumer="survivor") as sub,
        trio.open_nursery() as inner,
    ):
        inner.start_soon(sub.run, lambda e: again.append((e.seq, e.deliveries)))
        await eventually(lambda: len(again) >= unacknowledged)
        inner.cancel_scope.cancel()
    # What the dead consumer had not got acknowledged is handled again: the last ones.
    assert again == [(seq, 2) for seq in range(6 - unacknowledged, 6)]
    assert await pending(redis_server) == 0
