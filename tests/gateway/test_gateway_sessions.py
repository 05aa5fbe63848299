"""Sessions through the gateway: open, send, list and close with the bus client, against a real
service on the simulator; raw events are the upstream frames, byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from support.gateway import MODEL, TOKEN, GatewayApp, client
from support.upstream import upstream

from rtbus import SessionSpec
from rtbus.bus import Envelope, Subscription, Undecoded
from rtbus.gateway import GatewayError, RemoteSubscription, connect
from rtbus.protocol import ResponseCreateEvent, SessionClosed
from rtbus.service import (
    HttpAddress,
    HttpConfig,
    Service,
    ServiceConfig,
    open_service,
    serve_http,
)
from rtbus.sim import SimServer
from rtbus.transport import ConnectOptions

CREATE: dict[str, Any] = {"type": "response.create"}


async def until(sub: Subscription | RemoteSubscription, type: str) -> list[Envelope]:
    taken = []
    async for envelope in sub:
        taken.append(envelope)
        if envelope.type == type:
            return taken
    raise AssertionError(f"the subscription ended before {type}")


@pytest.fixture
async def s1(gateway: GatewayApp) -> AsyncIterator[Any]:
    """A client and an open, ready session "s1" opened through it."""
    async with client(gateway) as bus:
        session = await bus.open_session(id="s1", session={"instructions": "Be brief."})
        yield bus, session


async def test_open_session_answers_once_ready_and_lists_it(s1: Any, service: Service) -> None:
    bus, session = s1
    assert (session.id, session.model, session.state) == ("s1", MODEL, "ready")
    assert service.sessions["s1"].spec.session["instructions"] == "Be brief."
    assert [(s.id, s.state) for s in await bus.sessions()] == [("s1", "ready")]


async def test_events_sent_through_the_client_reach_the_session(s1: Any, service: Service) -> None:
    bus, session = s1
    async with service.bus.subscribe(sessions="s1", types="response.done") as local:
        await session.send(CREATE)  # a dict
        await bus.send("s1", ResponseCreateEvent())  # an rtbus event
        done = [await local.receive(), await local.receive()]
    assert [envelope.type for envelope in done] == ["response.done", "response.done"]


async def test_raw_events_are_the_upstream_frames_and_typed_ones_decode_alike(
    s1: Any, service: Service
) -> None:
    bus, session = s1
    async with (
        service.bus.subscribe(sessions="s1", maxsize=4096) as local,
        bus.subscribe(sessions="s1", raw=True, maxsize=4096) as raw,
        bus.subscribe(sessions="s1", maxsize=4096) as typed,
    ):
        await session.send(CREATE)
        upstream = await until(local, "response.done")
        raws = await until(raw, "response.done")
        decoded = await until(typed, "response.done")
    assert "response.output_audio.delta" in {envelope.type for envelope in upstream}
    assert [e.seq for e in raws] == [e.seq for e in decoded] == [e.seq for e in upstream]
    for here, as_raw, as_typed in zip(upstream, raws, decoded, strict=True):
        assert here.raw is not None  # the session published the frame it read
        assert as_raw.event == Undecoded(here.type)  # not decoded: the bytes are in raw
        assert as_raw.raw == here.raw  # byte for byte, not re-encoded
        assert as_typed.event == here.event
        assert (as_typed.session_id, as_typed.type) == (here.session_id, here.type)
        # Placed on this process's clock: after the frame arrived, not in the future.
        assert here.received_at <= as_typed.received_at <= trio.current_time()


async def test_closing_a_session_publishes_the_same_lifecycle_class_remotely(
    s1: Any, service: Service
) -> None:
    bus, session = s1
    async with bus.subscribe(sessions="s1", types="rtbus.session.*") as sub:
        await session.close()
        (closed,) = await until(sub, "rtbus.session.closed")
    assert isinstance(closed.event, SessionClosed), "the class an in-process subscriber gets"
    assert closed.event.reason == "closed by rtbus"
    assert await bus.sessions() == ()
    assert "s1" not in service.sessions


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda bus: bus.send("s1", {"type": "response.create", "response": 3}), "invalid_event"),
        (lambda bus: bus.send("s1", {"type": "no.such.event"}), "invalid_event"),
        (lambda bus: bus.send("nobody", CREATE), "unknown_session"),
        (lambda bus: bus.close_session("nobody"), "unknown_session"),
        (lambda bus: bus.open_session(id="s1"), "duplicate_id"),
        (lambda bus: bus.open_session(session={"instructions": 5}), "invalid_field"),
        (lambda bus: bus.open_session(session={"audio": {"outptu": {}}}), "invalid_field"),
        (lambda bus: bus.send("s1", {"type": "response.create", "extra": 1}), "invalid_event"),
        (lambda bus: bus.open_session(id="a/b"), "invalid_field"),
    ],
)
async def test_a_refused_request_raises_its_code_and_changes_nothing(
    s1: Any, service: Service, call: Any, code: str
) -> None:
    bus, _ = s1
    with pytest.raises(GatewayError) as caught:
        await call(bus)
    assert caught.value.code == code
    assert caught.value.message
    assert [s.id for s in await bus.sessions()] == ["s1"]
    await bus.send("s1", {"type": "input_audio_buffer.clear"})  # and it still works


async def test_open_session_waits_as_long_as_the_http_surface_says(sim: SimServer) -> None:
    # Every connection stalls after session.created: the session never becomes ready. (A
    # short close timeout: the stalled upstream never answers the close of the cancelled
    # start, and the answer waits for it.)
    stalling = SessionSpec(
        model=MODEL,
        extra_query={"sim_fault": "stall"},
        ready_timeout=2,
        connect=ConnectOptions(close_timeout=0.2),
    )
    config = ServiceConfig(upstream=upstream(sim), session_defaults=stalling)
    http = HttpConfig(port=0, token=TOKEN, session_start_timeout=0.5)
    async with open_service(config) as svc, trio.open_nursery() as nursery:
        address: HttpAddress = await nursery.start(serve_http, svc, http)
        async with connect(address.url, token=TOKEN) as bus:
            with trio.fail_after(5), pytest.raises(GatewayError) as caught:
                await bus.open_session(id="s1")
            assert await bus.sessions() == ()
        nursery.cancel_scope.cancel()
    assert caught.value.code == "upstream_timeout"
    assert "within 0.5s" in caught.value.message
