"""Fixtures for the Redis tests: each test gets its own real redis-server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtbus._backoff import Backoff
from rtbus.redis import RedisConfig
from support.redis_server import RedisServer

#: Short times so reclaims and retries happen within a test; real Redis needs real time.
FAST = {
    "reclaim_idle_seconds": 0.3,
    "monitor_interval": 0.05,
    "command_timeout": 2.0,
    "connect_timeout": 1.0,
    "backoff": Backoff(base=0.02, max_delay=0.2, jitter=0.0),
}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path) as server:
        yield server


@pytest.fixture
def redis_config(redis_server: RedisServer) -> RedisConfig:
    return RedisConfig(url=redis_server.url, **FAST)  # type: ignore[arg-type]
