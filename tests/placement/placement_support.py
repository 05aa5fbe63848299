"""Shared helpers for the placement tests: services on one simulator taking part in
placement over a real redis-server (``support.redis_server``), and a raw Redis client to look
at Redis or to play a node that reads a request and dies."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import coredis
import pytest
from support.polling import eventually
from support.redis_server import RedisServer
from support.upstream import KEY, upstream

from rtbus._backoff import Backoff
from rtbus.redis import RedisConfig, RedisLink, open_link
from rtbus.service import Service, open_service
from rtbus.service._placement import Placement, PlacementConfig, open_placement
from rtbus.sim import SimServer

PASSWORD = "redis-placement-secret-5b8d"
#: coredis 6.9 makes a connection's memory streams in its constructor and closes them only
#: once it has connected: every failed connect leaks a few, which warn when collected.
COREDIS_LEAKS_ON_FAILED_CONNECT = pytest.mark.filterwarnings(
    "ignore:Unclosed <MemoryObject:ResourceWarning"
)
#: Fast enough for tests, slow enough for two shared cores.
FAST: dict[str, Any] = {
    "request_timeout": 5.0,
    "reclaim_idle": 0.4,
    "lease_seconds": 1.0,
    "poll_seconds": 0.1,
}


def redis_config(server: RedisServer) -> RedisConfig:
    return RedisConfig(
        url=server.url,
        password=PASSWORD,
        command_timeout=2.0,
        connect_timeout=1.0,
        backoff=Backoff(base=0.05, max_delay=0.3, jitter=0.0),
    )


@attrs.frozen
class Node:
    """One service taking part in placement."""

    service: Service
    placement: Placement
    link: RedisLink

    @property
    def name(self) -> str:
        return self.placement.node

    def session_ids(self) -> set[str]:
        return set(self.service.sessions)


@contextlib.asynccontextmanager
async def running_node(
    sim: SimServer, redis: RedisServer, name: str, *, key: str = KEY, **options: Any
) -> AsyncIterator[Node]:
    """A service on ``sim`` with a placement called ``name``, ready (lease held)."""
    config = PlacementConfig(node=name, **(FAST | options))
    async with (
        open_service(upstream(sim, key)) as service,
        open_link(redis_config(redis)) as link,
        open_placement(service, link, config) as placement,
    ):
        node = Node(service, placement, link)
        await eventually(lambda: placement.readiness_problem() is None)
        yield node


@contextlib.asynccontextmanager
async def raw_client(redis: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    """A plain client, to look at Redis as an operator would or to play a dying node."""
    async with redis.client() as client:
        yield client
