"""The simulated Realtime server: TCP listeners, WebSocket handshakes, one task per connection.

``serve_sim`` follows the nursery start protocol and hands back a ``SimServer`` (``.host``,
``.port``, ``.url``, ``statistics()``). The server owns each TCP stream itself (rather than
using ``trio_websocket.serve_websocket``) so that a fault can abort the stream with no close
frame or stop reading it altogether.

Each connection's first request is read by the front door (``_http``): a WebSocket upgrade
goes on to the handshake, anything else is the calls REST API (``_calls``) on the same port.
A ``?call_id=`` WebSocket attaches to an accepted call, whose caller (``_caller``) speaks
beside the connection until the call ends, which closes the connection with 1000.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import NoReturn, Unpack
from urllib.parse import urlsplit

import attrs
import h11
import httpx2
import orjson
import trio
import trio_websocket

from rtbus._replay import ReplayStream
from rtbus.protocol import WebhookSecret, match_route

from ._caller import HANGUP_CODE, HANGUP_REASON, Caller
from ._calls import CallBook, Reply, Request
from ._connection import Companion, Counters, SimConnection
from ._faults import Fault, FaultSchedule, random_fault
from ._handshake import Admission, Rejection, admit, check_key
from ._http import (
    MAX_HEAD,
    FrontDoor,
    PlainRequest,
    Upgrade,
    read_front_door,
    serve_plain,
)
from ._options import SimOptionFields, SimOptions, SimStatistics
from ._phone import Delivery, Dial, PhoneNetwork
from ._session import SessionSettings, SimSession

__all__ = ["SimServer", "serve_sim"]

log = logging.getLogger("rtbus.sim")


class SimServer:
    """A running simulated server; ``url`` is what an OpenAI client takes as ``base_url``."""

    def __init__(
        self, host: str, port: int, options: SimOptions, *, http: httpx2.AsyncClient | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.options = options
        self._counters = Counters()
        self._connections: dict[SimConnection, None] = {}  # insertion-ordered: oldest first
        # One generator for the whole server, so a seed fixes every connection's ids and faults.
        self._rng = random.Random(options.seed)
        self._settings = SessionSettings(
            voice=options.voice,
            response_text=options.response_text,
            response_audio_seconds=options.response_audio_seconds,
            audio_chunk_seconds=options.audio_chunk_seconds,
            input_transcript=options.input_transcript,
        )
        # The phone network draws from its own generator, so that placing calls does not
        # change the ids a seeded server gives its WebSocket sessions.
        self._phone_rng = random.Random(None if options.seed is None else f"{options.seed}:calls")
        self.calls = CallBook(
            rng=self._phone_rng, settings=self._settings, ring_seconds=options.ring_seconds
        )
        #: The key webhooks are signed with (``SimOptions.webhook_secret``, or a fresh one).
        self.webhook_secret = (
            WebhookSecret.parse(options.webhook_secret)
            if options.webhook_secret
            else WebhookSecret.generate()
        )
        self._caller = Caller(
            turns=options.caller_turns,
            pause_seconds=options.caller_pause_seconds,
            speed=options.speed,
        )
        self._http = http

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

    def inject(self, fault: str, *, oldest: int | None = None) -> int:
        """Fire ``fault`` (a ``sim_fault`` spec such as ``"drop"`` or ``"close:1011"``; its
        trigger is ignored) on every open connection now, or on the ``oldest`` few; how many
        it hit."""
        parsed = Fault.parse(fault)
        hit = list(self._connections)[:oldest]
        for connection in hit:
            connection.inject(parsed)
        return len(hit)

    def phone(self, webhook_url: str | None = None) -> PhoneNetwork:
        """The phone network, announcing calls to ``webhook_url`` (default: the option's)."""
        url = webhook_url or self.options.webhook_url
        if url is None or self._http is None:
            raise RuntimeError("the phone network needs a webhook_url and a running server")
        return PhoneNetwork(
            self.calls,
            webhook_url=url,
            secret=self.webhook_secret,
            http=self._http,
            rng=self._phone_rng,
            speed=self.options.speed,
        )

    async def place_call(
        self, dial: Dial | None = None, *, webhook_url: str | None = None
    ) -> Delivery:
        """Ring a SIP call and deliver its ``realtime.call.incoming`` webhook (see ``Dial``)."""
        return await self.phone(webhook_url).place_call(dial)

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
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        door: FrontDoor = None
        accepted = None
        with trio.move_on_after(self.options.handshake_timeout):
            door = await read_front_door(stream, connection)
            if isinstance(door, Upgrade):
                replay = ReplayStream(stream, door.consumed)
                accepted = await self._accept(websocket_tasks, replay)
        if isinstance(door, PlainRequest):
            idle = self.options.handshake_timeout
            await serve_plain(stream, connection, door, self._answer, idle_timeout=idle)
        elif accepted is not None:
            ws, admission = accepted
            await self._serve(ws, stream, admission, websocket_tasks.cancel_scope.cancel)

    async def _accept(
        self, websocket_tasks: trio.Nursery, stream: trio.abc.Stream
    ) -> tuple[trio_websocket.WebSocketConnection, Admission] | None:
        request = await trio_websocket.wrap_server_stream(
            websocket_tasks, stream, max_message_size=self.options.max_message_size
        )
        verdict = admit(request.path, request.headers, self.options.api_key)
        if isinstance(verdict, Admission) and verdict.call_id is not None:
            verdict = self._attach(verdict)
        if isinstance(verdict, Rejection):
            self._counters.handshakes_rejected += 1
            content_type = [(b"content-type", b"application/json")]
            await request.reject(verdict.status, extra_headers=content_type, body=verdict.body)
            return None
        return await request.accept(), verdict

    def _attach(self, admission: Admission) -> Admission | Rejection:
        assert admission.call_id is not None
        call = self.calls.attach(admission.call_id, time.time())
        if isinstance(call, Reply):
            return Rejection(call.status, call.body)
        model = (call.session or {}).get("model") or "gpt-realtime"
        return attrs.evolve(admission, model=str(model))

    async def _answer(self, request: PlainRequest) -> Reply:
        """The calls REST API: ``POST {base}/realtime/calls...`` and ``.../client_secrets``."""
        path = urlsplit(request.target).path
        refusal = check_key(list(request.headers), self.options.api_key)
        if refusal is not None:
            return Reply(refusal.status, refusal.body, (("content-type", "application/json"),))
        route = match_route(request.method, _under_base(path))
        await trio.lowlevel.checkpoint()
        if route is None:
            return Reply.error(404, f"Invalid URL ({request.method} {path})", "not_found")
        body = Request(request.body, request.header(b"content-type"), time.time())
        try:
            return self.calls.handle(*route, body)
        except Exception:
            # A bug here must cost one request, never the server (a real API answers 500).
            log.exception("the simulated calls API failed on %s %s", request.method, path)
            message = "The server had an error while processing your request. Sorry about that!"
            return Reply.error(500, message, "server_error")

    async def _serve(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.SocketStream,
        admission: Admission,
        stop_reading: Callable[[], None],
    ) -> None:
        session = SimSession(
            model=admission.model,
            transcription=admission.transcription,
            settings=self._settings,
            rng=random.Random(self._rng.getrandbits(64)),
            now=time.time(),
        )
        call = self.calls[admission.call_id] if admission.call_id is not None else None
        companions: list[Companion] = []
        if call is not None:
            # The accept's session is the call's from the start (it was checked then).
            session.receive(orjson.dumps({"type": "session.update", "session": call.session}))
            companions.append(self._caller.companion(call))
        connection = SimConnection(
            ws,
            stream,
            session,
            faults=FaultSchedule.of(self._faults_for(admission)),
            options=self.options,
            counters=self._counters,
            stop_reading=stop_reading,
            companions=companions,
        )

        def hang_up() -> None:
            connection.end(HANGUP_CODE, HANGUP_REASON)

        if call is not None:
            call.on_end.append(hang_up)
        self._connections[connection] = None
        try:
            await connection.run()
        finally:
            self._connections.pop(connection, None)
            if call is not None and hang_up in call.on_end:
                call.on_end.remove(hang_up)
            # On server shutdown, say "going away" rather than vanish (idempotent otherwise).
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await ws.aclose(1001, "server shutting down")

    def _faults_for(self, admission: Admission) -> list[Fault]:
        faults = [*self.options.faults, *admission.faults]
        if self._rng.random() < self.options.fault_rate:
            faults.append(random_fault(self._rng))
        return faults


def _under_base(path: str) -> str:
    """``path`` below the API base (``/v1`` for OpenAI, ``/openai/v1`` for Azure)."""
    for base in ("/openai/v1", "/v1"):
        if path.startswith(base + "/"):
            return path[len(base) :]
    return path


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
    async with httpx2.AsyncClient(timeout=10.0) as http, trio.open_nursery() as nursery:
        server = SimServer(host, bound_port, settings, http=http)
        task_status.started(server)
        if settings.webhook_url is not None and settings.call_rate > 0:
            nursery.start_soon(server.phone().run, settings.call_rate)
        await trio.serve_listeners(server.handle_stream, listeners)
    raise AssertionError("unreachable")  # pragma: no cover
