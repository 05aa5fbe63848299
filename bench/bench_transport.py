"""How many server events per second a client takes from one fast, unpaced upstream.

Three clients read the same stream, in one run: ``rtbus.open_realtime`` (``async for``: read,
decode into typed events, dispatch), the official ``openai`` client (``async for event in
conn`` on asyncio), and the floor -- bare trio-websocket ``get_message`` plus ``orjson.loads``
with rtbus's buffer sizes. Two streams: 100 ms audio deltas (6.4 KB of base64 each) and small
transcript deltas.

The upstream runs in a subprocess so the client's CPU is measured alone. It is not the
simulator: it writes the same pre-framed WebSocket frame over and over, so it is never the
bottleneck. ``python -m bench.bench_transport``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import trio
import trio_websocket
import wsproto
import wsproto.events

from bench._table import Row, render
from rtbus.protocol._config import OpenAIConfig
from rtbus.transport import ConnectOptions, open_realtime

API_KEY = "sk-bench"
REPEATS = 3
COUNTS = {"audio": 20_000, "transcript": 100_000}
TARGET_VS_OPENAI = 2.0
TARGET_VS_FLOOR = 1.3
_CHUNK = 1 << 20


def server_event(kind: str, n: int = 0) -> dict[str, object]:
    """One ``response.output_audio.delta`` (100 ms of PCM16 at 24 kHz) or transcript delta."""
    common = {
        "event_id": f"event_{n:08d}",
        "response_id": "resp_bench",
        "item_id": "item_bench",
        "output_index": 0,
        "content_index": 0,
    }
    if kind == "audio":
        audio = base64.b64encode(bytes(range(256)) * 18 + bytes(192)).decode()  # 4,800 bytes
        return {"type": "response.output_audio.delta", **common, "delta": audio}
    return {"type": "response.output_audio_transcript.delta", **common, "delta": "Hello "}


# The upstream (runs in its own process) ------------------------------------------------


async def _stream(socket: trio.SocketStream) -> None:
    # A client that gives up early must not take the server down with it.
    with contextlib.suppress(trio.BrokenResourceError):
        await _stream_events(socket)


async def _stream_events(socket: trio.SocketStream) -> None:
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    request = await _handshake(socket, ws)
    query = parse_qs(urlsplit(request.target).query)
    kind, count = query["kind"][0], int(query["count"][0])
    text = orjson.dumps(server_event(kind)).decode()
    frame = ws.send(wsproto.events.TextMessage(data=text))
    per_chunk = max(1, _CHUNK // len(frame))
    sent = 0
    while sent < count:
        batch = min(per_chunk, count - sent)
        await socket.send_all(frame * batch)
        sent += batch
    await socket.send_all(ws.send(wsproto.events.CloseConnection(code=1000)))
    await _await_close(socket, ws)


async def _handshake(socket: trio.SocketStream, ws: wsproto.WSConnection) -> wsproto.events.Request:
    while True:
        for event in ws.events():
            if isinstance(event, wsproto.events.Request):
                await socket.send_all(ws.send(wsproto.events.AcceptConnection()))
                return event
        ws.receive_data(await socket.receive_some())


async def _await_close(socket: trio.SocketStream, ws: wsproto.WSConnection) -> None:
    # Clients wait for the server to close TCP once the close frames crossed (RFC 6455 7.1.1):
    # do it as soon as theirs arrives, or the clients' close timeouts would be measured.
    while data := await socket.receive_some():
        ws.receive_data(data)
        if any(isinstance(e, wsproto.events.CloseConnection) for e in ws.events()):
            return


async def _serve() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(_stream, listeners)


def serve() -> None:
    """The upstream's entry point (in the subprocess): print the port, serve until killed."""
    trio.run(_serve)


# The clients ---------------------------------------------------------------------------


async def rtbus_client(port: int, query: dict[str, str]) -> int:
    config = OpenAIConfig(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    received = 0
    async with open_realtime(config, extra_query=query) as rt:
        async for _event in rt:
            received += 1
    return received


async def floor_client(port: int, query: dict[str, str]) -> int:
    options = ConnectOptions()
    ws_url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime&{urlencode(query)}"
    received = 0
    async with trio_websocket.open_websocket_url(
        ws_url,
        message_queue_size=options.message_queue_size,
        max_message_size=options.max_message_size,
        receive_buffer_size=options.receive_buffer_size,
    ) as ws:
        try:
            while True:
                orjson.loads(await ws.get_message())
                received += 1
        except trio_websocket.ConnectionClosed:
            return received


async def openai_client(port: int, query: dict[str, str]) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    received = 0
    async with client.realtime.connect(model="gpt-realtime", extra_query=query) as conn:
        async for _event in conn:
            received += 1
    return received


Client = Callable[[int, dict[str, str]], Coroutine[Any, Any, int]]
CLIENTS: dict[str, tuple[Client, str]] = {
    "rtbus": (rtbus_client, "trio"),
    "openai": (openai_client, "asyncio"),
    "floor": (floor_client, "trio"),
}


def measure(port: int, client: str, kind: str, count: int) -> float:
    """Events per second ``client`` takes, best of ``REPEATS`` runs."""
    run, loop = CLIENTS[client]
    call = functools.partial(run, port, {"kind": kind, "count": str(count)})
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        received = trio.run(call) if loop == "trio" else asyncio.run(call())
        elapsed = time.perf_counter() - start
        if received != count:
            raise RuntimeError(f"{client} got {received} of {count} {kind} events")
        best = max(best, count / elapsed)
    return best


def _rows(kind: str, rates: dict[str, float]) -> list[Row]:
    ours, openai, floor = rates["rtbus"], rates["openai"], rates["floor"]
    vs_openai, vs_floor = ours / openai, floor / ours
    return [
        Row("transport", f"{kind}: rtbus", ours, "events/s"),
        Row(
            "transport",
            f"{kind}: openai client",
            openai,
            "events/s",
            f"rtbus {vs_openai:.2f}x faster",
            f">= {TARGET_VS_OPENAI}x",
            "ok" if vs_openai >= TARGET_VS_OPENAI else "MISS",
        ),
        Row(
            "transport",
            f"{kind}: bare trio-websocket",
            floor,
            "events/s",
            f"rtbus at {vs_floor:.2f}x of floor",
            f"<= {TARGET_VS_FLOOR}x",
            "ok" if vs_floor <= TARGET_VS_FLOOR else "MISS",
        ),
    ]


def run() -> list[Row]:
    """Start the upstream, measure every client on both streams, return the table's rows."""
    upstream = subprocess.Popen(
        [sys.executable, "-c", "from bench.bench_transport import serve; serve()"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        rows: list[Row] = []
        for kind, count in COUNTS.items():
            rates = {client: measure(port, client, kind, count) for client in CLIENTS}
            rows.extend(_rows(kind, rates))
        return rows
    finally:
        upstream.terminate()
        upstream.wait()


def main() -> None:
    print(render(run()))


if __name__ == "__main__":
    main()
