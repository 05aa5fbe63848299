"""Fixtures for the gateway tests: a simulator, a service on it, and the gateway served."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
import trio

from rtbus.service import Service, open_service
from rtbus.sim import SimServer, serve_sim
from support.gateway import KEY, GatewayApp, serving, upstream


@pytest.fixture
async def sim(nursery: trio.Nursery) -> SimServer:
    serve = functools.partial(
        serve_sim, "127.0.0.1", 0, speed=None, response_audio_seconds=0.3, api_key=KEY
    )
    server: SimServer = await nursery.start(serve)
    return server


@pytest.fixture
async def service(sim: SimServer) -> AsyncIterator[Service]:
    async with open_service(upstream(sim)) as svc:
        yield svc


@pytest.fixture
async def gateway(service: Service) -> AsyncIterator[GatewayApp]:
    async with serving(service) as app:
        yield app
