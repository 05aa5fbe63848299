"""``run_service`` with ``[bus.redis]`` and ``[placement]``: the bridge publishes the sessions'
events to a real redis-server, /readyz checks it, and POST /v1/sessions goes through the
control stream."""

from __future__ import annotations

from pathlib import Path

import attrs
import coredis
import trio
from support.http_client import request
from support.polling import eventually
from support.redis_server import RedisServer

from rtbus._backoff import Backoff
from rtbus.redis import RedisConfig
from rtbus.service import (
    BusSettings,
    DemoSettings,
    PlacementConfig,
    RunningService,
    Settings,
    SimUpstream,
    StartupSession,
    run_service,
)

SAFETY_NET = 30  # seconds: only a hung service ever meets it


def settings(redis: RedisServer) -> Settings:
    base = Settings()
    fast = RedisConfig(
        url=redis.url, monitor_interval=0.1, backoff=Backoff(base=0.02, max_delay=0.2)
    )
    return attrs.evolve(
        base,
        upstream=SimUpstream(speed=20.0, response_audio_seconds=0.5),
        http=attrs.evolve(base.http, port=0),
        sessions=(StartupSession(id="front"),),
        demo=DemoSettings(sessions=0),
        bus=BusSettings(redis=fast),
        placement=PlacementConfig(node="node-a", poll_seconds=0.1),
    )


async def stream_types(client: coredis.Redis[bytes], session: str) -> list[str]:
    """The types of ``session``'s events in Redis, over every family stream, in seq order."""
    found: list[tuple[int, str]] = []
    for stream in (b"{rtbus}:events:events", b"{rtbus}:events:audio"):
        for entry in await client.xrange(stream):
            fields = entry.field_values
            if fields[b"session"] == session.encode():
                kind = fields[b"type"]
                found.append(
                    (int(fields[b"seq"]), kind.decode() if isinstance(kind, bytes) else kind)
                )
    return [type for _, type in sorted(found)]


async def test_events_reach_redis_and_sessions_are_placed(tmp_path: Path) -> None:
    with RedisServer.running(tmp_path) as redis, trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(run_service, settings(redis))

            async def ready_now() -> bool:
                # Placement starts before Redis first answers it: ready once it has.
                return (await request(running.http.url, "GET", "/readyz")).status == 200

            await eventually(ready_now)
            ready = await request(running.http.url, "GET", "/readyz")
            assert ready.json()["checks"]["redis"] == "ok"
            assert ready.json()["checks"]["placement"] == "ok"

            opened = await request(running.http.url, "POST", "/v1/sessions", json={"id": "placed"})
            assert opened.status == 201
            assert opened.json()["node"] == "node-a"
            assert "placed" in running.service.sessions
            nursery.cancel_scope.cancel()
        # The drain's last events were flushed to Redis before the bridge stopped.
        async with redis.client() as client:
            types = await stream_types(client, "front")
    assert types[0] == "session.created"
    assert types[-1] == "rtbus.session.closed"
