"""Fixtures for the gateway tests: the gateway served for the shared ``service`` fixture
(``support.upstream_fixtures``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rtbus.service import Service
from support.gateway import GatewayApp, serving


@pytest.fixture
async def gateway(service: Service) -> AsyncIterator[GatewayApp]:
    async with serving(service) as app:
        yield app
