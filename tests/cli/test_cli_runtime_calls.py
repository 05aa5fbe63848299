"""``run_service``'s embedded default takes phone calls: the simulator's phone network calls
the service's own webhook, signed with the secret they share, and a default route accepts."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import attrs
import pytest
import trio
from cli_support import restored_logging
from support.http_client import request

from rtbus.protocol import CallAccepted, CallEnded
from rtbus.service import DemoSettings, RunningService, Settings, SimUpstream, run_service

SAFETY_NET = 30  # seconds: only a hung service ever meets it


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


def embedded(call_rate: float) -> Settings:
    """The embedded default, faster: a free port, a quick simulator and caller."""
    base = Settings()
    sim = SimUpstream(speed=20.0, response_audio_seconds=0.2, call_rate=call_rate, caller_turns=1)
    return attrs.evolve(
        base, upstream=sim, http=attrs.evolve(base.http, port=0), demo=DemoSettings(sessions=1)
    )


async def test_the_embedded_default_takes_a_call_and_logs_it(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    with trio.fail_after(SAFETY_NET):
        running: RunningService = await nursery.start(run_service, embedded(call_rate=20.0))
        bus = running.service.bus
        async with bus.subscribe(sessions="calls", types="rtbus.call.*") as sub:
            accepted = ended = None
            async for envelope in sub:
                if isinstance(envelope.event, CallAccepted) and accepted is None:
                    accepted = envelope.event
                event = envelope.event
                if isinstance(event, CallEnded) and accepted and event.call_id == accepted.call_id:
                    ended = event
                    break
    assert accepted is not None
    assert ended is not None
    assert accepted.route == "default"
    assert ended.by == "caller"
    logged = [r for r in caplog.records if r.getMessage() == "rtbus.call.accepted"]
    assert logged
    assert getattr(logged[0], "fields", {})["route"] == "default"
    metrics = (await request(running.http.url, "GET", "/metrics")).body.decode()
    assert 'rtbus_webhook_verifications_total{result="verified"}' in metrics
    assert "whsec_" not in caplog.text  # the shared secret is never logged


async def test_a_drain_lets_go_of_the_calls_held(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rtbus")
    with trio.fail_after(SAFETY_NET):
        async with trio.open_nursery() as nursery:
            running: RunningService = await nursery.start(run_service, embedded(call_rate=20.0))
            calls = running.service.bus.subscribe(sessions="calls", types="rtbus.call.accepted")
            async with calls as sub:
                accepted = await anext(aiter(sub))
            nursery.cancel_scope.cancel()  # the drain, with the call still going
    call_id = getattr(accepted.event, "call_id", None)
    ended = [
        getattr(r, "fields", {})
        for r in caplog.records
        if r.getMessage() == "rtbus.call.ended" and getattr(r, "fields", {})["call_id"] == call_id
    ]
    assert len(ended) == 1
    assert (ended[0]["by"], ended[0]["reason"]) == (
        "rtbus",
        "the service drained and let go of the call",
    )
