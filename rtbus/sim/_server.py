"""The simulated Realtime server: TCP listeners, WebSocket handshakes, one task per connection.

``serve_sim`` follows the nursery start protocol and hands back a ``SimServer`` (``.host``,
``.port``, ``.url``, ``statistics()``). The server owns each TCP stream itself (rather than
using ``trio_websocket.serve_websocket``) so that a fault can abort the stream with no close
frame or stop reading it altogether.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import NoReturn, Unpack

import attrs
import trio
import trio_websocket

from ._connection import Counters, SimConnection
from ._faults import Fault, FaultSchedule, random_fault
from ._handshake import Admission, Rejection, admit
from ._options import SimOptionFields, SimOptions, SimStatistics
from ._session import SessionSettings, SimSession

__all__ = ["SimServer", "serve_sim"]


class SimServer:
    """A running simulated server; ``url`` is what an OpenAI client takes as ``base_url``."""

    def __init__(self, host: str, port: int, options: SimOptions) -> None:
        self.host = host
        self.port = port
        self.options = options
        self._counters = Counters()
        self._connections: set[SimConnection] = set()
        # One generator for the whole server, so a seed fixes every connection's ids and faults.
        self._rng = random.Random(options.seed)
        self._settings = SessionSettings(
            voice=options.voice,
            response_text=options.response_text,
            response_audio_seconds=options.response_audio_seconds,
            audio_chunk_seconds=options.audio_chunk_seconds,
            input_transcript=options.input_transcript,
        )

    def __repr__(self) -> str:
        return f"<SimServer {self.url}>"

    @property
    def url(self) -> str:
        """``http://host:port/v1``: the ``base_url`` for clients (they swap in ``ws://``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def statistics(self) -> SimStatistics:
        """A frozen snapshot of the counters."""
        c = self._counters
        return SimStatistics(
            connections_total=c.connections_total,
            connections_open=c.connections_open,
            handshakes_rejected=c.handshakes_rejected,
            frames_received=c.frames_received,
            events_sent=c.events_sent,
            bytes_sent=c.bytes_sent,
            faults_injected=c.faults_injected,
        )

    def inject(self, fault: str) -> int:
        """Fire ``fault`` (a ``sim_fault`` spec such as ``"drop"`` or ``"close:1011"``; its
        trigger is ignored) on every open connection now; how many it hit."""
        parsed = Fault.parse(fault)
        for connection in self._connections:
            connection.inject(parsed)
        return len(self._connections)

    async def handle_stream(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection from handshake to close."""
        self._counters.connections_total += 1
        self._counters.connections_open += 1
        try:
            async with trio.open_nursery() as connection_tasks:
                # trio-websocket's reader gets a nursery of its own, so that a stall can
                # cancel it (stop reading the socket) without cancelling this handler.
                websocket_tasks: trio.Nursery = await connection_tasks.start(_nursery_of_its_own)
                await self._handshake(websocket_tasks, stream)
                connection_tasks.cancel_scope.cancel()
        finally:
            self._counters.connections_open -= 1
            await trio.aclose_forcefully(stream)

    async def _handshake(self, websocket_tasks: trio.Nursery, stream: trio.SocketStream) -> None:
        accepted = None
        with trio.move_on_after(self.options.handshake_timeout):
            accepted = await self._accept(websocket_tasks, stream)
        if accepted is not None:
            ws, admission = accepted
            await self._serve(ws, stream, admission, websocket_tasks.cancel_scope.cancel)

    async def _accept(
        self, websocket_tasks: trio.Nursery, stream: trio.SocketStream
    ) -> tuple[trio_websocket.WebSocketConnection, Admission] | None:
        request = await trio_websocket.wrap_server_stream(
            websocket_tasks, stream, max_message_size=self.options.max_message_size
        )
        verdict = admit(request.path, request.headers, self.options.api_key)
        if isinstance(verdict, Rejection):
            self._counters.handshakes_rejected += 1
            content_type = [(b"content-type", b"application/json")]
            await request.reject(verdict.status, extra_headers=content_type, body=verdict.body)
            return None
        return await request.accept(), verdict

    async def _serve(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.SocketStream,
        admission: Admission,
        stop_reading: Callable[[], None],
    ) -> None:
        session = SimSession(
            model=admission.model,
            settings=self._settings,
            rng=random.Random(self._rng.getrandbits(64)),
            now=time.time(),
        )
        connection = SimConnection(
            ws,
            stream,
            session,
            faults=FaultSchedule.of(self._faults_for(admission)),
            options=self.options,
            counters=self._counters,
            stop_reading=stop_reading,
        )
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            # On server shutdown, say "going away" rather than vanish (idempotent otherwise).
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await ws.aclose(1001, "server shutting down")

    def _faults_for(self, admission: Admission) -> list[Fault]:
        faults = [*self.options.faults, *admission.faults]
        if self._rng.random() < self.options.fault_rate:
            faults.append(random_fault(self._rng))
        return faults


async def _nursery_of_its_own(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


async def serve_sim(
    host: str,
    port: int,
    options: SimOptions | None = None,
    *,
    task_status: trio.TaskStatus[SimServer] = trio.TASK_STATUS_IGNORED,
    **overrides: Unpack[SimOptionFields],
) -> NoReturn:
    """Run a simulated Realtime server on ``host:port`` (port 0 picks a free one).

    ``server = await nursery.start(serve_sim, "127.0.0.1", 0)``. Behaviour comes from
    ``options`` with any ``SimOptions`` field overridden by keyword (``speed=None``; pass
    keywords through ``functools.partial``). Runs until cancelled.
    """
    settings = attrs.evolve(options or SimOptions(), **overrides)
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port = listeners[0].socket.getsockname()[1]
    server = SimServer(host, bound_port, settings)
    task_status.started(server)
    await trio.serve_listeners(server.handle_stream, listeners)
