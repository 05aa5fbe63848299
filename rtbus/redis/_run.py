"""The service's entry point: run a bridge for the life of a task, with its metrics."""

from __future__ import annotations

from typing import Any

import trio

from rtbus.bus import Bus

from ._bridge import RedisBridge
from ._config import RedisConfig

__all__ = ["run_bridge"]


async def run_bridge(
    bus: Bus,
    config: RedisConfig,
    *,
    node: str,
    registry: Any = None,
    task_status: trio.TaskStatus[RedisBridge] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish ``bus``'s events to Redis as service ``node`` until cancelled or the bus closes.

    Starts (nursery start protocol) with the ``RedisBridge`` as soon as it is subscribed,
    before Redis answers: its ``readiness_problem`` is the ``/readyz`` check and its metrics
    are on ``registry`` (a ``prometheus_client.CollectorRegistry``) while it runs. On the way
    out, whatever it still held is counted as abandoned.

    Under a supervisor, prefer one ``RedisBridge`` made once and its ``run`` as the actor, so a
    restart keeps what the last incarnation buffered.
    """
    bridge = RedisBridge(bus, config, node=node, registry=registry)
    try:
        await bridge.run(task_status=task_status)
    finally:
        with trio.CancelScope(shield=True):
            await bridge.aclose()
