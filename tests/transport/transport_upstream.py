"""Small upstream servers on 127.0.0.1 port 0 for the transport tests.

* ``Upstream``: a trio-websocket server that records each handshake and runs a script per
  connection (send frames, close with a code, drop TCP). Good for everything a well-behaved
  WebSocket stack does.
* ``RawUpstream``: a bare wsproto server that completes the handshake and then does only
  what its script says -- it can ignore pings and never answer a close frame, which a
  trio-websocket server would always do for us.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import orjson
import trio
import trio_websocket
import wsproto
import wsproto.events

from rtbus.protocol._config import OpenAIConfig
from rtbus.transport import RealtimeWebSocket, open_realtime

API_KEY = "sk-test-0123456789abcdef"

Script = Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]
RawScript = Callable[[trio.SocketStream], Awaitable[None]]


@attrs.frozen
class Handshake:
    """What the server saw of one handshake: the request target and the headers."""

    target: str
    headers: dict[str, str]


def frame(obj: dict[str, object]) -> str:
    return orjson.dumps(obj).decode()


def delta(n: int) -> str:
    """A small valid server event: one transcript delta numbered ``n``."""
    return frame(
        {
            "type": "response.output_audio_transcript.delta",
            "event_id": f"ev_{n}",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": f"word{n} ",
        }
    )


def error_event(code: str, message: str = "Something went wrong.") -> str:
    return frame(
        {
            "type": "error",
            "event_id": "ev_err",
            "error": {
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "param": None,
                "event_id": "client_7",
            },
        }
    )


async def hold_open(ws: trio_websocket.WebSocketConnection) -> None:
    """Read and drop client frames until the client closes."""
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed:
        return


def play(*frames: str | bytes, close: int | None = 1000, reason: str = "") -> Script:
    """A script: send ``frames``, then close with ``close`` (or wait for the client)."""

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        for f in frames:
            await ws.send_message(f)
        if close is None:
            await hold_open(ws)
        else:
            await ws.aclose(close, reason)

    return script


def then_drop(*frames: str | bytes) -> Script:
    """A script: send ``frames`` then drop the TCP connection without a close frame."""

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        for f in frames:
            await ws.send_message(f)
        await ws._stream.aclose()  # No close handshake: what a crashed server looks like.

    return script


@attrs.define
class Upstream:
    """A trio-websocket server; ``script`` runs for each accepted connection."""

    script: Script
    reject: tuple[int, bytes] | None = None
    port: int = 0
    handshakes: list[Handshake] = attrs.Factory(list)
    received: list[str | bytes] = attrs.Factory(list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def config(self, api_key: str = API_KEY) -> OpenAIConfig:
        return OpenAIConfig(api_key=api_key, base_url=self.url)

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.handshakes.append(Handshake(request.path, headers))
        if self.reject is not None:
            status, body = self.reject
            await request.reject(status, body=body)
            return
        await self.script(await request.accept())


async def start_upstream(
    nursery: trio.Nursery, script: Script, *, reject: tuple[int, bytes] | None = None
) -> Upstream:
    upstream = Upstream(script, reject)
    server = await nursery.start(
        trio_websocket.serve_websocket, upstream.handle, "127.0.0.1", 0, None
    )
    upstream.port = server.port
    return upstream


def recorder(upstream_frames: trio.MemorySendChannel[str | bytes]) -> Script:
    """A script: forward every client frame to ``upstream_frames``, closing it at the end."""

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        async with upstream_frames:
            try:
                while True:
                    await upstream_frames.send(await ws.get_message())
            except trio_websocket.ConnectionClosed:
                return

    return script


@attrs.define
class RawUpstream:
    """A bare wsproto server: accepts the handshake, then runs ``script`` on the raw stream."""

    script: RawScript
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def config(self) -> OpenAIConfig:
        return OpenAIConfig(api_key=API_KEY, base_url=self.url)

    async def handle(self, stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        while not any(isinstance(e, wsproto.events.Request) for e in ws.events()):
            ws.receive_data(await stream.receive_some())
        await stream.send_all(ws.send(wsproto.events.AcceptConnection()))
        await self.script(stream)


async def start_raw_upstream(nursery: trio.Nursery, script: RawScript) -> RawUpstream:
    upstream = RawUpstream(script)
    serve = functools.partial(trio.serve_tcp, upstream.handle, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    upstream.port = listeners[0].socket.getsockname()[1]
    return upstream


async def deaf(stream: trio.SocketStream) -> None:
    """A raw script: never read again, never answer a ping or a close frame."""
    await trio.sleep_forever()


@asynccontextmanager
async def recording(
    nursery: trio.Nursery, received: list[str | bytes]
) -> AsyncIterator[RealtimeWebSocket]:
    """A connection to a server that records every frame; ``received`` is complete on exit."""
    send, receive = trio.open_memory_channel[str | bytes](1000)
    upstream = await start_upstream(nursery, recorder(send))
    async with open_realtime(upstream.config()) as rt:
        yield rt
    received.extend([frame async for frame in receive])
