"""The server over real sockets: handshakes, auth, paths, pacing, statistics, the CLI."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections.abc import Sequence

import orjson
import pytest
import trio
import trio.testing
import trio_websocket
from sim_support import Event, conforms_frame, connect

from rtbus.sim import SimOptions, SimServer, serve_sim

WS_PATH = "/v1/realtime?model=gpt-realtime"


async def start(nursery: trio.Nursery, **options: object) -> SimServer:
    serve = functools.partial(serve_sim, **options)  # type: ignore[arg-type]
    server: SimServer = await nursery.start(serve, "127.0.0.1", 0)
    return server


async def receive(ws: trio_websocket.WebSocketConnection) -> Event:
    return conforms_frame(await ws.get_message())


async def until(ws: trio_websocket.WebSocketConnection, event_type: str) -> list[Event]:
    """Every event up to and including the first of ``event_type``."""
    events = [await receive(ws)]
    while events[-1]["type"] != event_type:
        events.append(await receive(ws))
    return events


async def handshake(
    server: SimServer, path: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[int, bytes]:
    """Send an upgrade request by hand; return the status and body of the answer.

    (trio-websocket's client leaks its socket when a handshake is rejected, which the
    warnings-as-errors policy turns into a failure, so refusals are read at the HTTP level.)
    """
    lines = [
        f"GET {path} HTTP/1.1".encode(),
        f"Host: 127.0.0.1:{server.port}".encode(),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        *(name + b": " + value for name, value in headers),
    ]
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(b"\r\n".join(lines) + b"\r\n\r\n")
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_serve_sim_starts_on_a_free_port_with_an_openai_base_url(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    assert repr(server) == f"<SimServer {server.url}>"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/realtime?model=gpt-realtime",
        "/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime",
        "/openai/v1/realtime?model=gpt-realtime",
    ],
)
async def test_openai_and_azure_paths_are_served(nursery: trio.Nursery, path: str) -> None:
    server = await start(nursery)
    async with connect(server.port, path) as ws:
        created = await receive(ws)
    assert created["type"] == "session.created"
    assert created["session"]["model"] == "gpt-realtime"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/other?model=m", 404),
        ("/v1/realtime", 400),
        ("/v1/realtime?model=m&sim_fault=boom", 400),
    ],
)
async def test_bad_handshakes_are_refused(nursery: trio.Nursery, path: str, status: int) -> None:
    server = await start(nursery)
    answer_status, body = await handshake(server, path)
    assert answer_status == status
    assert orjson.loads(body)["error"]["message"]
    assert server.statistics().handshakes_rejected == 1


@pytest.mark.parametrize(
    "headers",
    [[], [(b"Authorization", b"Bearer wrong-key")], [(b"api-key", b"wrong-key")]],
)
async def test_missing_or_wrong_key_gets_401(
    nursery: trio.Nursery, headers: list[tuple[bytes, bytes]]
) -> None:
    server = await start(nursery, api_key="sk-right")
    status, body = await handshake(server, WS_PATH, headers)
    assert status == 401
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    assert b"wrong-key" not in body
    assert b"sk-right" not in body


@pytest.mark.parametrize(
    "header", [(b"Authorization", b"Bearer sk-right"), (b"api-key", b"sk-right")]
)
async def test_the_right_key_is_accepted(
    nursery: trio.Nursery, header: tuple[bytes, bytes]
) -> None:
    server = await start(nursery, api_key="sk-right")
    async with connect(server.port, headers=[header]) as ws:
        assert (await receive(ws))["type"] == "session.created"


def test_the_key_never_appears_in_a_repr() -> None:
    assert "sk-secret" not in repr(SimOptions(api_key="sk-secret"))


async def test_a_conversation_over_the_socket_keeps_protocol_order(nursery: trio.Nursery) -> None:
    server = await start(nursery, speed=None, response_audio_seconds=0.5)
    async with connect(server.port) as ws:
        await receive(ws)
        await ws.send_message(orjson.dumps({"type": "response.create"}).decode())
        events = await until(ws, "response.done")
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert len(deltas) == 5
    assert events[0]["type"] == "response.created"


async def test_cancel_over_the_socket_stops_the_stream(nursery: trio.Nursery) -> None:
    server = await start(nursery, speed=1.0, response_audio_seconds=60.0)
    async with connect(server.port) as ws:
        await receive(ws)
        await ws.send_message(orjson.dumps({"type": "response.create"}).decode())
        await until(ws, "response.output_audio.delta")
        await ws.send_message(orjson.dumps({"type": "response.cancel"}).decode())
        events = await until(ws, "response.done")
    assert events[-1]["response"]["status"] == "cancelled"  # type: ignore[index]
    assert [e["type"] for e in events[-4:-1]] == [
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
    ]


async def test_audio_is_paced_at_real_time_times_speed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, speed=2.0, response_audio_seconds=3.0)
    async with connect(server.port) as ws:
        await receive(ws)
        start_time = trio.current_time()
        await ws.send_message(orjson.dumps({"type": "response.create"}).decode())
        arrivals: list[float] = []
        while (event := await receive(ws))["type"] != "response.done":
            if event["type"] == "response.output_audio.delta":
                arrivals.append(trio.current_time() - start_time)
    assert len(arrivals) == 30
    # Delta k may leave once k-1 deltas' audio has played (at 2x): never earlier.
    for index, arrival in enumerate(arrivals):
        assert arrival >= index * 0.05 - 1e-9
    assert trio.current_time() - start_time >= 1.5 - 1e-9


async def test_unpaced_mode_takes_no_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, speed=None, response_audio_seconds=30.0)
    async with connect(server.port) as ws:
        await receive(ws)
        start_time = trio.current_time()
        await ws.send_message(orjson.dumps({"type": "response.create"}).decode())
        events = await until(ws, "response.done")
    assert len([e for e in events if e["type"] == "response.output_audio.delta"]) == 300
    assert trio.current_time() == start_time


async def test_statistics_count_connections_frames_and_events(nursery: trio.Nursery) -> None:
    server = await start(nursery, speed=None)
    async with connect(server.port) as ws:
        await receive(ws)
        await ws.send_message(orjson.dumps({"type": "input_audio_buffer.clear"}).decode())
        cleared = await ws.get_message()
        during = server.statistics()
    assert during.connections_open == 1
    assert during.connections_total == 1
    assert during.frames_received == 1
    assert during.events_sent == 2
    assert during.bytes_sent > len(cleared)


async def test_server_shutdown_closes_connections_with_going_away(
    nursery: trio.Nursery,
) -> None:
    server_scope = trio.CancelScope()

    async def run_server(*, task_status: trio.TaskStatus[SimServer]) -> None:
        with server_scope:
            await serve_sim("127.0.0.1", 0, task_status=task_status)

    server: SimServer = await nursery.start(run_server)
    async with connect(server.port) as ws:
        await receive(ws)
        server_scope.cancel()
        with pytest.raises(trio_websocket.ConnectionClosed) as caught:
            await ws.get_message()
    assert caught.value.reason is not None
    assert caught.value.reason.code == 1001


async def test_max_session_seconds_expires_the_session(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, max_session_seconds=30.0)
    async with connect(server.port) as ws:
        await receive(ws)
        start_time = trio.current_time()
        expired = await receive(ws)
        with pytest.raises(trio_websocket.ConnectionClosed) as caught:
            await ws.get_message()
    assert trio.current_time() - start_time >= 30.0
    assert expired["error"]["code"] == "session_expired"  # type: ignore[index]
    assert caught.value.reason is not None
    assert caught.value.reason.code == 1001


async def test_python_dash_m_prints_the_url_and_exits_cleanly_on_sigterm() -> None:
    command = [sys.executable, "-m", "rtbus.sim", "--port", "0", "--speed", "unpaced"]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        )
        assert process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive_some(1)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        async with connect(port) as ws:
            assert (await receive(ws))["type"] == "session.created"
        process.send_signal(signal.SIGTERM)
    assert process.returncode == 0


def test_cli_rejects_a_bad_fault_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rtbus.sim", "--fault", "explode"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 2
    assert b"unknown fault 'explode'" in result.stderr
