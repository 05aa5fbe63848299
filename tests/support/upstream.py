"""The upstream most tests run a service against: ``rtbus.sim`` on a free port, its key, and
what those tests do with the service on it (see ``support.upstream_fixtures`` for ``sim`` and
``service``)."""

from __future__ import annotations

import functools
from typing import Any

import trio

from rtbus import OpenAIConfig, SessionSpec
from rtbus.bus import Envelope, Subscription
from rtbus.sim import SimServer, serve_sim
from rtbus.transport import ConnectTarget, ReconnectPolicy

KEY = "sk-sim-upstream-test-key-4c2a"
MODEL = "gpt-realtime"
CREATE: dict[str, Any] = {"type": "response.create"}


async def start_sim(nursery: trio.Nursery, *, speed: float | None = None) -> SimServer:
    """A simulator on a free port that wants ``KEY``, with short (0.3 s) spoken responses:
    unpaced by default, at ``speed`` times real time if given (on the virtual clock under
    ``autojump_clock``)."""
    serve = functools.partial(
        serve_sim, "127.0.0.1", 0, speed=speed, response_audio_seconds=0.3, api_key=KEY
    )
    server: SimServer = await nursery.start(serve)
    return server


def upstream(sim: SimServer, key: str = KEY) -> OpenAIConfig:
    return OpenAIConfig(api_key=key, base_url=sim.url)


def first_connect_only(sim: SimServer, fault: str) -> SessionSpec:
    """A spec whose first connection carries ``fault``; reconnects go to a clean target."""
    clean = ConnectTarget.from_config(upstream(sim), MODEL)
    return SessionSpec(
        model=MODEL,
        extra_query={"sim_fault": fault},
        reconnect=ReconnectPolicy(before_attempt=lambda attempt: clean),
    )


async def take_until(sub: Subscription, type: str, *, within: float = 120.0) -> list[Envelope]:
    """What ``sub`` hands out up to the first ``type``; fails after ``within`` seconds (of the
    virtual clock, under ``autojump_clock``) rather than wait forever."""
    taken = []
    with trio.fail_after(within):
        async for envelope in sub:
            taken.append(envelope)
            if envelope.type == type:
                return taken
    raise AssertionError(f"the subscription ended before {type}")
