"""A worker process for the cluster tests: consumers of the bridged streams that write down
what they handled.

    python -m support.redis_worker URL CONSUMER OUTPUT [--max-deliveries N]
        [--reclaim-idle SECONDS]        (the password, if any, in RTBUS_REDIS_PASSWORD)

It joins every group in ``GROUPS`` as ``CONSUMER`` and appends one line per event it
handled to ``OUTPUT``, flushed before the handler returns (so before the ack):

    ready <consumer>
    handled <group> <node> <session> <seq> <type> <consumer> <deliveries>
    hanging <group> <session> <seq> <consumer>

Sessions named for a behaviour make the handler misbehave on their ``response.done``:
``trap*`` hangs on the first delivery (a worker to kill mid-handler), ``poison*`` always
raises (to be dead-lettered after the delivery cap).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import IO

import trio

from rtbus._backoff import Backoff
from rtbus.redis import RedisConfig, RedisEnvelope, subscribe

__all__ = ["GROUPS", "TRIGGER"]

#: Group -> the types it takes. "everything" reads both streams, "summaries" one.
GROUPS: Mapping[str, tuple[str, ...]] = {
    "everything": ("*",),
    "summaries": ("response.done", "session.*"),
}
#: The event of a ``trap``/``poison`` session the handler misbehaves on.
TRIGGER = "response.done"


class PoisonError(Exception):
    """Raised by the handler for every delivery of a poison event."""


class Record:
    """The output file, one flushed line per fact."""

    def __init__(self, output: IO[str], consumer: str) -> None:
        self._output = output
        self.consumer = consumer

    def write(self, *words: object) -> None:
        self._output.write(" ".join(str(word) for word in words) + "\n")
        self._output.flush()


async def consume(config: RedisConfig, group: str, record: Record, joined: trio.Event) -> None:
    async with subscribe(
        config, group=group, consumer=record.consumer, types=GROUPS[group]
    ) as subscription:
        joined.set()

        async def handle(envelope: RedisEnvelope) -> None:
            await misbehave(group, envelope, record)
            record.write(
                "handled", group, envelope.node, envelope.session_id, envelope.seq,
                envelope.type, record.consumer, envelope.deliveries,
            )  # fmt: skip

        await subscription.run(handle)


async def misbehave(group: str, envelope: RedisEnvelope, record: Record) -> None:
    if envelope.type != TRIGGER:
        return
    if envelope.session_id.startswith("poison"):
        raise PoisonError(f"poison event {envelope.seq} of {envelope.session_id}")
    if envelope.session_id.startswith("trap") and envelope.deliveries == 1:
        record.write("hanging", group, envelope.session_id, envelope.seq, record.consumer)
        await trio.sleep_forever()


async def main(arguments: argparse.Namespace) -> None:
    config = RedisConfig(
        url=arguments.url,
        password=os.environ.get("RTBUS_REDIS_PASSWORD") or None,
        reclaim_idle_seconds=arguments.reclaim_idle,
        max_deliveries=arguments.max_deliveries,
        command_timeout=2.0,
        connect_timeout=1.0,
        backoff=Backoff(base=0.05, max_delay=0.3, jitter=0.0),
    )
    with open(arguments.output, "a", encoding="utf-8") as output:  # noqa: ASYNC230
        record = Record(output, arguments.consumer)
        async with trio.open_nursery() as nursery:
            joined = []
            for group in GROUPS:
                joined.append(trio.Event())
                nursery.start_soon(consume, config, group, record, joined[-1])
            for event in joined:
                await event.wait()
            record.write("ready", arguments.consumer)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="redis_worker")
    parser.add_argument("url")
    parser.add_argument("consumer")
    parser.add_argument("output")
    parser.add_argument("--max-deliveries", type=int, default=3)
    parser.add_argument("--reclaim-idle", type=float, default=0.5)
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, _arguments())
