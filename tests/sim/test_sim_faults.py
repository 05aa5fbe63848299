"""Fault injection: the spec grammar, and every fault as a trio-websocket client sees it."""

from __future__ import annotations

import functools
import random

import orjson
import pytest
import trio
import trio.testing
import trio_websocket
from sim_support import conforms_frame, connect

from rtbus.protocol._errors import ConfigError
from rtbus.sim import Fault, FaultKind, SimServer, serve_sim
from rtbus.sim._faults import FaultSchedule, random_fault

CLEAR = orjson.dumps({"type": "input_audio_buffer.clear"}).decode()


async def start(nursery: trio.Nursery, **options: object) -> SimServer:
    serve = functools.partial(serve_sim, **options)  # type: ignore[arg-type]
    server: SimServer = await nursery.start(serve, "127.0.0.1", 0)
    return server


def path(*specs: str) -> str:
    return "/v1/realtime?model=gpt-realtime" + "".join(f"&sim_fault={s}" for s in specs)


async def closed_with(ws: trio_websocket.WebSocketConnection) -> trio_websocket.CloseReason:
    """Read until the connection closes; the close reason the client recorded."""
    with pytest.raises(trio_websocket.ConnectionClosed) as caught:
        await _read_forever(ws)
    assert caught.value.reason is not None
    return caught.value.reason


async def _read_forever(ws: trio_websocket.WebSocketConnection) -> None:
    while True:
        await ws.get_message()


# The grammar.


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("close", Fault(FaultKind.CLOSE)),
        ("close:1013:after_events=5", Fault(FaultKind.CLOSE, after_events=5, code=1013)),
        (
            "close:reason=bye:after_seconds=2.5",
            Fault(FaultKind.CLOSE, after_seconds=2.5, reason="bye"),
        ),
        ("drop:after_events=3", Fault(FaultKind.DROP, after_events=3)),
        ("stall:10", Fault(FaultKind.STALL, for_seconds=10.0)),
        ("oversized:4096", Fault(FaultKind.OVERSIZED, size=4096)),
        ("error:rate_limit_exceeded", Fault(FaultKind.ERROR, error_code="rate_limit_exceeded")),
        ("notype", Fault(FaultKind.NO_TYPE)),
        ("expire:after_seconds=1", Fault(FaultKind.EXPIRE, after_seconds=1.0)),
    ],
)
def test_fault_specs_parse(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("explode", "unknown fault 'explode'"),
        ("close:colour=red", "unknown parameter 'colour=red'"),
        ("close:after_events=many", "bad value for after_events"),
        ("malformed:7", "unknown parameter '7'"),
        ("drop:after_events=0", "after_events must be at least 1"),
    ],
)
def test_bad_fault_specs_name_the_problem(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        Fault.parse(spec)
    assert caught.value.key == "sim_fault"


def test_schedule_fires_each_fault_once_at_its_count() -> None:
    early, late = Fault(FaultKind.MALFORMED), Fault(FaultKind.DROP, after_events=3)
    timed = Fault(FaultKind.CLOSE, after_seconds=1.0)
    schedule = FaultSchedule.of([early, late, timed])
    assert schedule.timed == [timed]
    assert [schedule.after_event(n) for n in (1, 2, 3, 3)] == [[early], [], [late], []]


def test_random_faults_are_reproducible_from_a_seed() -> None:
    first = [random_fault(random.Random(5)) for _ in range(3)]
    assert first == [random_fault(random.Random(5)) for _ in range(3)]
    assert all(1 <= (f.after_events or 0) <= 100 for f in first)


# On the wire.


async def test_close_after_n_events(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with connect(server.port, path("close:1011:after_events=2:reason=boom")) as ws:
        assert conforms_frame(await ws.get_message())["type"] == "session.created"
        await ws.send_message(CLEAR)
        assert conforms_frame(await ws.get_message())["type"] == "input_audio_buffer.cleared"
        reason = await closed_with(ws)
    assert (reason.code, reason.reason) == (1011, "boom")
    assert server.statistics().faults_injected == 1


async def test_close_after_t_seconds(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery)
    async with connect(server.port, path("close:1012:after_seconds=5")) as ws:
        opened = trio.current_time()
        await ws.get_message()
        reason = await closed_with(ws)
    assert reason.code == 1012
    assert trio.current_time() - opened >= 5


async def test_faults_in_options_apply_to_every_connection(nursery: trio.Nursery) -> None:
    server = await start(nursery, faults=(Fault(FaultKind.CLOSE, code=1013),))
    for _ in range(2):
        async with connect(server.port) as ws:
            await ws.get_message()
            assert (await closed_with(ws)).code == 1013


async def test_drop_ends_with_no_close_frame(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with connect(server.port, path("drop")) as ws:
        assert conforms_frame(await ws.get_message())["type"] == "session.created"
        assert (await closed_with(ws)).code == 1006


async def test_stall_stops_sending_and_reading_then_drops(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery)
    async with connect(server.port, path("stall:30")) as ws:
        await ws.get_message()
        await ws.send_message(CLEAR)
        with trio.move_on_after(29) as waited:
            await ws.get_message()
        assert waited.cancelled_caught
        assert (await closed_with(ws)).code == 1006
    assert server.statistics().frames_received == 0


async def test_stall_without_a_duration_holds_until_the_client_gives_up(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery)
    async with connect(server.port, path("stall")) as ws:
        await ws.get_message()
        with trio.move_on_after(3600) as waited:
            await ws.get_message()
    assert waited.cancelled_caught
    assert server.statistics().connections_open == 1


async def test_malformed_frame_then_the_session_carries_on(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with connect(server.port, path("malformed")) as ws:
        await ws.get_message()
        bad = await ws.get_message()
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(bad)
        await ws.send_message(CLEAR)
        assert conforms_frame(await ws.get_message())["type"] == "input_audio_buffer.cleared"


async def test_frame_without_type(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with connect(server.port, path("notype")) as ws:
        await ws.get_message()
        event = orjson.loads(await ws.get_message())
        assert isinstance(event, dict)
        assert "type" not in event
        assert "event_id" in event


async def test_oversized_frame_has_the_configured_size(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with connect(server.port, path("oversized:5000")) as ws:
        await ws.get_message()
        frame = await ws.get_message()
    assert len(frame) == 5000
    assert orjson.loads(frame)["type"] == "sim.oversized"


async def test_default_oversized_frame_exceeds_a_default_client_limit(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    async with connect(server.port, path("oversized")) as ws:
        await ws.get_message()
        assert (await closed_with(ws)).code == 1009


@pytest.mark.parametrize(
    ("spec", "error_type", "code"),
    [
        ("error", "server_error", None),
        ("error:rate_limit_exceeded", "invalid_request_error", "rate_limit_exceeded"),
    ],
)
async def test_error_event_then_the_session_carries_on(
    nursery: trio.Nursery, spec: str, error_type: str, code: str | None
) -> None:
    server = await start(nursery)
    async with connect(server.port, path(spec)) as ws:
        await ws.get_message()
        error = conforms_frame(await ws.get_message())["error"]
        assert isinstance(error, dict)
        assert (error["type"], error["code"]) == (error_type, code)
        await ws.send_message(CLEAR)
        assert conforms_frame(await ws.get_message())["type"] == "input_audio_buffer.cleared"


async def test_expire_sends_the_real_error_then_closes_1001(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    async with connect(server.port, path("expire")) as ws:
        await ws.get_message()
        error = conforms_frame(await ws.get_message())["error"]
        reason = await closed_with(ws)
    assert isinstance(error, dict)
    assert error["code"] == "session_expired"
    assert error["message"] == "Your session hit the maximum duration of 60 minutes."
    assert reason.code == 1001


async def test_random_faults_with_rate_one_hit_every_connection(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, fault_rate=1.0, seed=11, speed=None, response_audio_seconds=30)
    async with connect(server.port) as ws:
        await ws.get_message()
        await ws.send_message(orjson.dumps({"type": "response.create"}).decode())
        with trio.move_on_after(120):
            await _read_all(ws)
    assert server.statistics().faults_injected == 1


async def _read_all(ws: trio_websocket.WebSocketConnection) -> None:
    """Read until the connection ends (or the caller's deadline, for a stall)."""
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed:
        return


async def test_a_seed_makes_servers_reproducible(nursery: trio.Nursery) -> None:
    created = []
    for _ in range(2):
        server = await start(nursery, seed=99)
        async with connect(server.port) as ws:
            created.append(orjson.loads(await ws.get_message())["session"]["id"])
    assert created[0] == created[1]
