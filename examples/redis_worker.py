"""A worker anywhere: every finished response, at least once, through Redis Streams.

Needs Redis 7 (``RTBUS_BUS_REDIS_URL``, default redis://127.0.0.1:6379/0). It starts what a
deployment runs apart: the simulated Realtime server, a service whose bridge publishes every
event to Redis (``rtbus serve`` does this with ``[bus.redis]``), and a consumer group member
that reads the ``response.done`` events back and acknowledges each once handled::

    .venv/bin/python examples/redis_worker.py --turns 2
"""

from __future__ import annotations

import argparse
import functools
import os

import trio

import rtbus
import rtbus.redis
from rtbus.service import Service


def user_says(text: str) -> dict[str, object]:
    content = [{"type": "input_text", "text": text}]
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": content},
    }


async def talk(svc: Service, turns: int) -> None:
    session = await svc.open_session(session={"type": "realtime", "output_modalities": ["text"]})
    async with svc.subscribe(sessions=session.id, types="response.done") as done:
        for turn in range(1, turns + 1):
            await session.send(user_says(f"Turn {turn}: hello."))
            await session.send({"type": "response.create"})
            await done.receive()


async def main(turns: int) -> None:
    url = os.environ.get("RTBUS_BUS_REDIS_URL", "redis://127.0.0.1:6379/0")
    config = rtbus.redis.RedisConfig(url=url, password=os.environ.get("RTBUS_BUS_REDIS_PASSWORD"))
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)
        upstream = rtbus.OpenAIConfig(api_key="sk-any-key-for-the-sim", base_url=sim.url)
        async with rtbus.open_service(upstream) as svc:
            # in the service (the service starts it for you with [bus.redis]):
            await nursery.start(
                functools.partial(rtbus.redis.run_bridge, svc.bus, config, node="svc-a")
            )
            # in a worker, anywhere ("$": only what is published from now on):
            async with rtbus.redis.subscribe(
                config, group="transcripts", types="response.done", start="$"
            ) as sub:
                nursery.start_soon(talk, svc, turns)
                for _ in range(turns):
                    async with sub.delivery() as envelope:  # acknowledged as the block exits
                        print(f"{envelope.type} #{envelope.seq} from {envelope.node}")
        nursery.cancel_scope.cancel()  # the simulator and the bridge


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3, help="responses to wait for (default 3)")
    trio.run(main, parser.parse_args().turns)
