"""Burst: the CPU time a client spends per server event, from one fast, unpaced upstream.

Five clients read the same stream, in one run, each measured in process CPU time (user +
system, ``time.process_time``), best of ``REPEATS``:

* ``rtbus``: ``open_realtime`` and ``async for`` -- read, decode into typed events, dispatch;
* ``openai``: the official client (``async for event in conn``, asyncio, pydantic models);
* ``trio-websocket``: bare ``get_message`` plus ``orjson.loads`` (what rtbus used to run on);
* ``websockets``: its asyncio client (C-accelerated, no compression) plus ``orjson.loads``;
* ``raw``: a blocking socket, a minimal frame parser and ``orjson.loads``: the floor.

Two streams: 100 ms audio deltas (6.4 KB of base64 each) and small transcript deltas. Also
the two sans-IO framings rtbus could drive, parsing the same bytes in-process: wsproto (under
trio-websocket) and websockets' ``Protocol``.

The upstream runs in a subprocess so the client's CPU is measured alone. It writes the same
pre-framed frame over and over, so it is never the bottleneck. ``python -m bench transport``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import trio
import trio_websocket
import wsproto
import wsproto.events
from websockets.frames import Frame
from websockets.protocol import Protocol, Side
from wsproto.connection import Connection, ConnectionType
from wsproto.frame_protocol import FrameProtocol

from bench._table import Row, render
from rtbus.protocol._config import OpenAIConfig
from rtbus.transport import open_realtime

API_KEY = "sk-bench"
REPEATS = 3
COUNTS = {"audio": 20_000, "transcript": 100_000}
TARGET_VS_WEBSOCKETS = 1.5  # rtbus's CPU per event at most this times websockets'
TARGET_VS_OPENAI = 4.0  # the openai client's CPU per event at least this times rtbus's
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


def _url(port: int, query: dict[str, str]) -> str:
    return f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime&{urlencode(query)}"


async def rtbus_client(port: int, query: dict[str, str]) -> int:
    config = OpenAIConfig(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    received = 0
    async with open_realtime(config, extra_query=query) as rt:
        async for _event in rt:
            received += 1
    return received


async def trio_websocket_client(port: int, query: dict[str, str]) -> int:
    received = 0
    async with trio_websocket.open_websocket_url(
        _url(port, query),
        max_message_size=16 * 1024 * 1024,
        receive_buffer_size=64 * 1024,
    ) as ws:
        try:
            while True:
                orjson.loads(await ws.get_message())
                received += 1
        except trio_websocket.ConnectionClosed:
            return received


async def websockets_client(port: int, query: dict[str, str]) -> int:
    from websockets.asyncio.client import connect

    received = 0
    async with connect(_url(port, query), compression=None, max_size=16 * 1024 * 1024) as ws:
        async for message in ws:
            orjson.loads(message)
            received += 1
    return received


async def openai_client(port: int, query: dict[str, str]) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    received = 0
    async with client.realtime.connect(model="gpt-realtime", extra_query=query) as conn:
        async for _event in conn:
            received += 1
    return received


def raw_client(port: int, query: dict[str, str]) -> int:
    """A blocking socket and the least frame parsing that reads this stream: unmasked,
    unfragmented frames, a close frame at the end. Written by hand because it is the floor
    every library is measured against; it checks nothing a real client must."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        path = urlsplit(_url(port, query))
        sock.sendall(
            f"GET {path.path}?{path.query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buffer = bytearray()
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += sock.recv(65_536)
        del buffer[: end + 4]
        received = _raw_frames(sock, buffer)
        sock.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # our close, masked with zeros
    return received


def _raw_frames(sock: socket.socket, buffer: bytearray) -> int:
    received, start = 0, 0
    while True:
        while len(buffer) - start >= 2:
            opcode, length, offset = buffer[start] & 0x0F, buffer[start + 1] & 0x7F, start + 2
            if length == 126:
                length, offset = int.from_bytes(buffer[start + 2 : start + 4], "big"), start + 4
            elif length == 127:
                length, offset = int.from_bytes(buffer[start + 2 : start + 10], "big"), start + 10
            if len(buffer) < offset + length:
                break
            if opcode == 0x8:
                return received
            orjson.loads(bytes(buffer[offset : offset + length]))
            received += 1
            start = offset + length
        del buffer[:start]
        start = 0
        data = sock.recv(65_536)
        if not data:
            return received
        buffer += data


CLIENTS: dict[str, tuple[Callable[[int, dict[str, str]], Any], str]] = {
    "rtbus": (rtbus_client, "trio"),
    "websockets": (websockets_client, "asyncio"),
    "raw": (raw_client, "blocking"),
    "trio-websocket": (trio_websocket_client, "trio"),
    "openai": (openai_client, "asyncio"),
}


def _run_once(client: str, port: int, query: dict[str, str]) -> int:
    run, loop = CLIENTS[client]
    call = functools.partial(run, port, query)
    if loop == "trio":
        return int(trio.run(call))
    if loop == "asyncio":
        return int(asyncio.run(call()))
    return int(call())


def measure(port: int, client: str, kind: str, count: int) -> float:
    """CPU microseconds ``client`` spends per event, best of ``REPEATS`` runs."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        received = _run_once(client, port, {"kind": kind, "count": str(count)})
        cpu = time.process_time() - start
        if received != count:
            raise RuntimeError(f"{client} got {received} of {count} {kind} events")
        best = min(best, cpu / count * 1e6)
    return best


# The framings, parsing the same bytes in-process ---------------------------------------


def framing(kind: str, count: int) -> dict[str, float]:
    """Microseconds per frame to parse ``count`` frames fed in 64 KiB reads, per framing."""
    text = orjson.dumps(server_event(kind)).decode()
    frame = bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))
    stream = frame * count
    reads = [stream[i : i + 65_536] for i in range(0, len(stream), 65_536)]
    return {"wsproto": _best_of(_wsproto, reads, count), "websockets": _best_of(_ws, reads, count)}


def _best_of(parse: Callable[[list[bytes]], int], reads: list[bytes], count: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        if parse(reads) != count:
            raise RuntimeError(f"{parse.__name__} lost frames")
        best = min(best, (time.process_time() - start) / count * 1e6)
    return best


def _wsproto(reads: list[bytes]) -> int:
    # Text messages come out as str: the payload bytes are gone.
    connection, frames = Connection(ConnectionType.CLIENT), 0
    for data in reads:
        connection.receive_data(data)
        # A message split across reads comes out in parts: count the last part.
        frames += sum(1 for e in connection.events() if getattr(e, "message_finished", False))
    return frames


def _ws(reads: list[bytes]) -> int:
    # As the transport takes them: the payload as bytes.
    protocol, frames = Protocol(Side.CLIENT, max_size=16 * 1024 * 1024), 0
    for data in reads:
        protocol.receive_data(data)
        for frame in protocol.events_received():
            assert isinstance(frame, Frame)
            bytes(frame.data)
            frames += 1
    return frames


# The rows ------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def _rows(kind: str, cpu: dict[str, float]) -> list[Row]:
    ours = cpu["rtbus"]
    vs_ws, vs_openai = ours / cpu["websockets"], cpu["openai"] / ours
    rows = [
        Row(
            "transport",
            f"{kind}: rtbus",
            ours,
            "us/event",
            f"{vs_ws:.2f}x websockets",
            f"<= {TARGET_VS_WEBSOCKETS}x",
            _verdict(vs_ws <= TARGET_VS_WEBSOCKETS),
        ),
        Row(
            "transport",
            f"{kind}: openai client",
            cpu["openai"],
            "us/event",
            f"rtbus {vs_openai:.1f}x cheaper",
            f">= {TARGET_VS_OPENAI}x",
            _verdict(vs_openai >= TARGET_VS_OPENAI),
        ),
    ]
    for peer in ("websockets", "raw", "trio-websocket"):
        rows.append(
            Row(
                "transport",
                f"{kind}: {peer} + orjson",
                cpu[peer],
                "us/event",
                f"x{ours / cpu[peer]:.2f}",
            )
        )
    return rows


def _framing_rows(kind: str, us: dict[str, float]) -> list[Row]:
    ratio = us["wsproto"] / us["websockets"]
    return [
        Row("transport", f"{kind}: framing, wsproto", us["wsproto"], "us/frame"),
        Row(
            "transport",
            f"{kind}: framing, websockets",
            us["websockets"],
            "us/frame",
            f"{ratio:.1f}x faster",
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
            cpu = {client: measure(port, client, kind, count) for client in CLIENTS}
            rows.extend(_rows(kind, cpu))
            rows.extend(_framing_rows(kind, framing(kind, count)))
        return rows
    finally:
        upstream.terminate()
        upstream.wait()


def main() -> None:
    print(render(run()))


if __name__ == "__main__":
    main()
