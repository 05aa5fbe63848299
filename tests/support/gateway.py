"""The gateway under test: ``gateway_endpoint`` serving every connection of a listener.

The server is the test's handle on the server side: ``kill`` ends every open gateway
connection (as a crashed server process would), and ``hold`` refuses new ones (close 1013, try
again later) until ``release``, so a test decides exactly when a client is away.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson
import trio
import trio_websocket

from rtbus._backoff import Backoff
from rtbus.bus import Envelope
from rtbus.gateway import SUBPROTOCOL, RemoteBus, RemoteSubscription, connect
from rtbus.service import Service
from rtbus.service._gateway import gateway_endpoint
from rtbus.service._gateway_socket import Upgraded, upgrade
from support.events import ev
from support.upstream import MODEL as MODEL

TOKEN = "rtbus-gateway-test-token-7d41"
FAST = Backoff(base=0.05, max_delay=0.5, jitter=0.0)


class GatewayApp:
    """Serves the gateway on each connection of a listener; the test can end them."""

    def __init__(self, service: Service, token: str | None, start_timeout: float = 30.0) -> None:
        self.service = service
        self.token = token
        self.start_timeout = start_timeout
        self.port = 0
        self.held = False
        self._live: set[trio.CancelScope] = set()
        self._changed = trio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/bus"

    @property
    def connections(self) -> int:
        return len(self._live)

    async def __call__(self, stream: trio.SocketStream) -> None:
        if self.held:
            upgraded = await upgrade(stream, b"")
            if isinstance(upgraded, Upgraded):
                await upgraded.wire.close_within(5.0, 1013, "held by the test")
        else:
            await self._serve(stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        with trio.CancelScope() as cancel_scope:
            self._live.add(cancel_scope)
            self._notify()
            try:
                await gateway_endpoint(
                    self.service, self.token, stream, b"", start_timeout=self.start_timeout
                )
            finally:
                self._live.discard(cancel_scope)
                self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_connections(self, count: int) -> None:
        while len(self._live) != count:
            await self._changed.wait()

    async def kill(self, *, hold: bool = False) -> None:
        """End every open gateway connection now (its stream is closed: no close frame)."""
        self.held = hold
        for cancel_scope in list(self._live):
            cancel_scope.cancel()
        await self.wait_connections(0)

    def release(self) -> None:
        self.held = False


@contextlib.asynccontextmanager
async def serving(service: Service, token: str | None = TOKEN) -> AsyncIterator[GatewayApp]:
    """``service``'s gateway on a free port for the body of the ``async with``."""
    app = GatewayApp(service, token)
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, app, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        app.port = listeners[0].socket.getsockname()[1]
        yield app
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def client(app: GatewayApp, **options: Any) -> AsyncIterator[RemoteBus]:
    """A bus client of ``app`` with the right token and a fast backoff."""
    options.setdefault("token", app.token)
    options.setdefault("backoff", FAST)
    async with connect(app.url, **options) as bus:
        yield bus


@attrs.frozen
class Raw:
    """A bare WebSocket to the gateway, for what the client would never send."""

    ws: trio_websocket.WebSocketConnection

    async def send(self, frame: object) -> None:
        await self.ws.send_message(frame if isinstance(frame, str | bytes) else orjson.dumps(frame))

    async def frame(self) -> dict[str, Any]:
        message = await self.ws.get_message()
        parsed: dict[str, Any] = orjson.loads(message)
        return parsed

    async def ask(self, frame: object) -> dict[str, Any]:
        await self.send(frame)
        return await self.frame()


@contextlib.asynccontextmanager
async def raw_socket(
    app: GatewayApp, *, token: str | None = TOKEN, subprotocols: list[str] | None = None
) -> AsyncIterator[Raw]:
    """A bare WebSocket to ``app``'s gateway. The stream is opened and closed here:
    trio-websocket leaves it open when the server closes first."""
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    async with (
        await trio.open_tcp_stream("127.0.0.1", app.port) as stream,
        trio.open_nursery() as nursery,
    ):
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            f"127.0.0.1:{app.port}",
            "/v1/bus",
            subprotocols=[SUBPROTOCOL] if subprotocols is None else subprotocols,
            extra_headers=headers,
        )
        try:
            yield Raw(ws)
        finally:
            await ws.aclose()


async def publish(service: Service, session_id: str, type: str, n: int = 1) -> None:
    """Publish ``n`` plain events of ``type`` for ``session_id`` straight onto the bus, each
    with raw bytes as a session gives them."""
    for _ in range(n):
        raw = orjson.dumps({"type": type, "event_id": "evt"})
        await service.bus.publish(session_id, type, ev(), received_at=0.0, raw=raw)


async def take(subscription: RemoteSubscription, n: int) -> list[Envelope]:
    return [await subscription.receive() for _ in range(n)]
