"""The transport against ``rtbus.sim``: a conversation, and every fault the simulator injects."""

from __future__ import annotations

import functools
from typing import Unpack

import pytest
import trio
import trio.testing

from rtbus import sim
from rtbus.protocol import (
    ConnectionClosedError,
    ProtocolError,
    RealtimeError,
    ResponseCreateEvent,
    ServerEvent,
    UnknownEvent,
)
from rtbus.protocol._config import OpenAIConfig
from rtbus.transport import (
    ConnectionRejectedError,
    ConnectOptions,
    KeepaliveTimeoutError,
    RealtimeWebSocket,
    ReconnectPolicy,
    open_realtime,
)

KEY = "sk-sim-secret-key-42"


async def start_sim(nursery: trio.Nursery, **options: Unpack[sim.SimOptionFields]) -> sim.SimServer:
    options.setdefault("speed", None)  # Unpaced: tests wait for nothing.
    serve = functools.partial(sim.serve_sim, **options)
    server: sim.SimServer = await nursery.start(serve, "127.0.0.1", 0)
    return server


def config(server: sim.SimServer, api_key: str = KEY) -> OpenAIConfig:
    return OpenAIConfig(api_key=api_key, base_url=server.url)


async def read_errors(rt: RealtimeWebSocket) -> tuple[list[str], list[RealtimeError]]:
    """Read until the connection ends, with an error handler: (event types, errors)."""
    errors: list[RealtimeError] = []
    rt.on("error", errors.append)
    types = [event.type async for event in rt]
    return types, errors


async def test_a_conversation_in_audio(nursery: trio.Nursery) -> None:
    server = await start_sim(nursery, response_audio_seconds=0.5)
    seen: list[str] = []
    async with open_realtime(config(server)) as rt:
        rt.on("event", lambda event: seen.append(event.type))
        done = trio.Event()
        rt.on("response.done", lambda event: done.set())
        await rt.send({"type": "session.update", "session": {"type": "realtime"}})
        await rt.send(ResponseCreateEvent())
        async with trio.open_nursery() as reader:
            reader.start_soon(rt.dispatch_events)
            await done.wait()
            reader.cancel_scope.cancel()
        stats = rt.statistics()
    assert seen[0] == "session.created"
    assert "session.updated" in seen
    assert seen.count("response.output_audio.delta") == 5
    assert seen[-1] == "response.done" or "response.done" in seen
    assert stats.frames_sent == 2
    assert stats.decode_errors == 0


async def fault(
    nursery: trio.Nursery, spec: str, **options: object
) -> tuple[list[str], list[RealtimeError]]:
    server = await start_sim(nursery)
    conn_options = ConnectOptions(**options)  # type: ignore[arg-type]
    async with open_realtime(
        config(server), extra_query={"sim_fault": spec}, options=conn_options
    ) as rt:
        return await read_errors(rt)


def closed(error: RealtimeError) -> ConnectionClosedError:
    cause = error.__cause__
    assert isinstance(cause, ConnectionClosedError)
    return cause


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013, 4000])
async def test_a_close_code_reaches_the_error_path(nursery: trio.Nursery, code: int) -> None:
    types, errors = await fault(nursery, f"close:{code}")
    assert types == ["session.created"]
    (error,) = errors
    assert closed(error).code == code
    assert ReconnectPolicy().retries(error) is (code != 4000)


async def test_a_tcp_drop_is_1006(nursery: trio.Nursery) -> None:
    _, errors = await fault(nursery, "drop")
    (error,) = errors
    assert closed(error).code == 1006
    assert ReconnectPolicy().retries(error)


async def test_a_stall_fails_the_keepalive(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, errors = await fault(nursery, "stall", keepalive_interval=5, pong_timeout=5)
    (error,) = errors
    assert isinstance(error.__cause__, KeepaliveTimeoutError)
    assert ReconnectPolicy().retries(error)


@pytest.mark.parametrize("spec", ["malformed", "notype"])
async def test_an_unreadable_frame_is_reported_and_reading_goes_on(
    nursery: trio.Nursery, spec: str
) -> None:
    server = await start_sim(nursery)
    async with open_realtime(config(server), extra_query={"sim_fault": spec}) as rt:
        errors: list[RealtimeError] = []
        rt.on("error", errors.append)
        event = await rt.__anext__()
        await rt.send({"type": "input_audio_buffer.clear"})
        event = await rt.__anext__()
    assert event.type == "input_audio_buffer.cleared"
    (error,) = errors
    assert isinstance(error.__cause__, ProtocolError)
    assert rt.statistics().decode_errors == 1


async def test_an_oversized_frame_within_the_limit_is_an_unknown_event(
    nursery: trio.Nursery,
) -> None:
    server = await start_sim(nursery)
    events: list[ServerEvent | UnknownEvent] = []
    async with open_realtime(config(server), extra_query={"sim_fault": "oversized"}) as rt:
        events.append(await rt.__anext__())
        events.append(await rt.__anext__())
    assert isinstance(events[1], UnknownEvent)
    assert events[1].type == "sim.oversized"
    assert rt.statistics().bytes_received > 2 * 1024 * 1024


async def test_an_oversized_frame_past_the_limit_fails_with_1009(nursery: trio.Nursery) -> None:
    _, errors = await fault(nursery, "oversized:200000", max_message_size=100_000)
    (error,) = errors
    assert closed(error).code == 1009
    assert not ReconnectPolicy().retries(error)


async def test_an_error_event_without_a_handler_is_raised(nursery: trio.Nursery) -> None:
    server = await start_sim(nursery)
    async with open_realtime(config(server), extra_query={"sim_fault": "error"}) as rt:
        with pytest.raises(RealtimeError, match="no `error` handler is bound") as caught:
            await rt.dispatch_events()
    assert caught.value.error is not None
    assert caught.value.error.type == "server_error"


async def test_session_expiry_is_an_error_then_1001(nursery: trio.Nursery) -> None:
    _, errors = await fault(nursery, "expire")
    expired, close = errors
    assert expired.error is not None
    assert expired.error.code == "session_expired"
    assert "maximum duration of 60 minutes" in str(expired)
    assert closed(close).code == 1001
    assert ReconnectPolicy().retries(expired)


async def test_a_wrong_key_is_rejected_with_401_and_no_secret(nursery: trio.Nursery) -> None:
    server = await start_sim(nursery, api_key=KEY)
    wrong = "sk-wrong-key-that-must-not-leak"
    with pytest.raises(ConnectionRejectedError) as caught:
        async with open_realtime(config(server, wrong)):
            pytest.fail("connected with a wrong key")
    assert caught.value.status == 401
    assert wrong not in str(caught.value)
    assert not ReconnectPolicy().retries(caught.value)


async def test_a_session_expires_on_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_sim(nursery, max_session_seconds=60)
    start = trio.current_time()
    async with open_realtime(config(server)) as rt:
        _, errors = await read_errors(rt)
    assert trio.current_time() - start == pytest.approx(60, abs=1)
    assert [e.error.code for e in errors if e.error is not None] == ["session_expired"]
    assert closed(errors[-1]).code == 1001
