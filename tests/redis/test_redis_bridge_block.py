"""The bridge under ``overflow = "block"``: a Redis that stops answering holds the sessions up
for the bus's ``remote_block_timeout`` once, then the bridge's subscription is cut loose (the
loss counted) and, once Redis is back, the bridge takes up again instead of failing. On the
real clock with a short timeout: the Redis server is another process."""

from __future__ import annotations

from functools import partial

import attrs
import trio
from support.polling import eventually
from support.redis_load import TEXT, publish
from support.redis_server import RedisServer

from rtbus.bus import Bus, BusLimits, OverflowPolicy
from rtbus.redis import RedisConfig, run_bridge

TIMEOUT = 0.3


async def test_a_blocking_bridge_is_cut_loose_then_takes_up_again(
    redis_config: RedisConfig, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    bus = Bus(BusLimits(remote_block_timeout=TIMEOUT))
    config = attrs.evolve(redis_config, buffer_size=2, overflow=OverflowPolicy.BLOCK)
    redis_server.stop()  # before the bridge starts: it never reads until Redis is back
    bridge = await nursery.start(partial(run_bridge, bus, config, node="n"))
    start = trio.current_time()
    for i in range(3):
        await publish(bus, "s", TEXT, i)  # the third waits, then the bridge is cut loose
    assert trio.current_time() - start >= TIMEOUT
    assert bus.statistics().disconnected[OverflowPolicy.BLOCK] == 1
    redis_server.start()
    await eventually(lambda: bridge.statistics().up)
    await publish(bus, "s", TEXT, 3)
    await eventually(lambda: sum(bridge.statistics().published.values()) == 1)
    # The cut lost the two queued and the one that waited; the one after went out.
    assert bridge.statistics().dropped[OverflowPolicy.BLOCK.value] == 3
