"""Fixtures for every folder: ``sim``, a simulator (``support.upstream.start_sim``), and
``service``, a service on it. A folder that needs a different simulator overrides ``sim``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from rtbus.service import Service, open_service
from rtbus.sim import SimServer
from support.upstream import start_sim, upstream


@pytest.fixture
async def sim(nursery: trio.Nursery) -> SimServer:
    return await start_sim(nursery)


@pytest.fixture
async def service(sim: SimServer) -> AsyncIterator[Service]:
    async with open_service(upstream(sim)) as svc:
        yield svc
