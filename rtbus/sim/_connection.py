"""The trio shell around one ``SimSession``: it moves frames, paces audio, injects faults.

Three kinds of task share one accepted WebSocket: the reader (client frames into the
session), the streamer (the active response's steps, paced), and one timer per timed fault.
Every frame leaves through ``_send_events`` under one ``trio.Lock``. The session is called and
the lock requested with no checkpoint in between, and ``trio.Lock`` is fair, so frames leave
in exactly the order the session produced them (a cancel's ``response.done`` can never be
overtaken by a delta pulled before it).

A terminal fault (close, drop, stall, expire) records itself and cancels the tasks; ``run``
then performs it once, with nothing else touching the socket.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

import attrs
import orjson
import trio
import trio_websocket

from ._faults import Fault, FaultKind, FaultSchedule
from ._options import SimOptions
from ._session import Event, SimSession

__all__ = ["Companion", "Counters", "SimConnection"]


@attrs.define
class Counters:
    """The server's live counters; ``SimServer.statistics()`` snapshots them."""

    connections_total: int = 0
    connections_open: int = 0
    handshakes_rejected: int = 0
    frames_received: int = 0
    events_sent: int = 0
    bytes_sent: int = 0
    faults_injected: int = 0


@attrs.define
class Pacer:
    """Holds audio to real time times ``speed`` (``None``: no pacing at all).

    Each delta is sent, then the pacer waits until the audio sent so far is due, so the client
    is always one chunk ahead, as with the real service.
    """

    speed: float | None
    _origin: float = 0.0
    _media: float = 0.0

    def restart(self) -> None:
        """Start a new stretch of audio now (a response after an idle gap)."""
        self._origin, self._media = trio.current_time(), 0.0

    async def after(self, media_seconds: float) -> None:
        """Wait out ``media_seconds`` of audio just sent."""
        if self.speed is None or media_seconds == 0:
            await trio.lowlevel.checkpoint()
            return
        self._media += media_seconds
        await trio.sleep_until(self._origin + self._media / self.speed)


class SimConnection:
    """One accepted connection: runs until the client leaves or a terminal fault ends it."""

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.SocketStream,
        session: SimSession,
        *,
        faults: FaultSchedule,
        options: SimOptions,
        counters: Counters,
        stop_reading: Callable[[], None],
        companions: Sequence[Companion] = (),
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._session = session
        self._faults = faults
        self._options = options
        self._counters = counters
        self._stop_reading = stop_reading
        self._companions = companions
        self._lock = trio.Lock()
        self._wake = trio.Event()
        self._quiet = trio.Event()
        self._sent = 0
        self._ending: Fault | None = None
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None

    @property
    def session(self) -> SimSession:
        """The session this connection serves."""
        return self._session

    async def feed(self, frame: str | bytes) -> None:
        """Hand the session a client frame that did not come over the socket (a caller's
        audio on a phone call), exactly as if it had."""
        await self._send_events(self._session.receive(frame))
        if self._session.responding:
            self._wake.set()

    async def wait_quiet(self) -> None:
        """Wait until no response is being generated (a caller who lets the agent finish)."""
        while self._session.responding:
            if self._quiet.is_set():
                self._quiet = trio.Event()
            await self._quiet.wait()

    def end(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` once the tasks are gone (a call that ended)."""
        if self._ending is None:
            self._ending = Fault(FaultKind.CLOSE, code=code, reason=reason)
        self._scope.cancel()

    def inject(self, fault: Fault) -> None:
        """Fire ``fault`` now, whatever its trigger says (a test's fault on demand)."""
        if self._nursery is not None:
            self._nursery.start_soon(self._fire_later, fault, 0.0)

    async def run(self) -> None:
        """Serve the session; then perform the terminal fault, if one fired."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._read)
                nursery.start_soon(self._stream_responses)
                for fault in self._faults.timed:
                    nursery.start_soon(self._fire_later, fault, fault.after_seconds or 0.0)
                for companion in self._companions:
                    nursery.start_soon(companion, self)
                if self._options.max_session_seconds is not None:
                    expiry = Fault(FaultKind.EXPIRE)
                    nursery.start_soon(self._fire_later, expiry, self._options.max_session_seconds)
                await self._send_events(self._session.start())
        if self._ending is not None:
            await _TERMINAL_ACTIONS[self._ending.kind](self, self._ending)

    # The tasks.

    async def _read(self) -> None:
        while True:
            try:
                frame = await self._ws.get_message()
            except trio_websocket.ConnectionClosed:
                self._scope.cancel()
                return
            self._counters.frames_received += 1
            await self.feed(frame)

    async def _stream_responses(self) -> None:
        pacer = Pacer(self._options.speed)
        paced_response: str | None = None
        while True:
            if not self._session.responding:
                self._quiet.set()
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            if self._session.response_id != paced_response:
                # A new response (perhaps right after a barge-in) starts its own timeline.
                paced_response = self._session.response_id
                pacer.restart()
            step = self._session.next_step()
            if step is not None:
                await self._send_events([step.event])
                await pacer.after(step.media_seconds)

    async def _fire_later(self, fault: Fault, seconds: float) -> None:
        await trio.sleep(seconds)
        async with self._lock:
            await self._inject(fault)

    # Sending, and faults due after a count of events.

    async def _send_events(self, events: list[Event]) -> None:
        async with self._lock:
            for event in events:
                await self._send_frame(orjson.dumps(event))
                self._counters.events_sent += 1
                self._sent += 1
                for fault in self._faults.after_event(self._sent):
                    await self._inject(fault)

    async def _send_frame(self, data: bytes) -> None:
        try:
            # Text frames, as the real service sends; orjson output is valid UTF-8.
            await self._ws.send_message(data.decode())
        except trio_websocket.ConnectionClosed:
            self._scope.cancel()
            await trio.lowlevel.checkpoint()
        self._counters.bytes_sent += len(data)

    async def _inject(self, fault: Fault) -> None:
        self._counters.faults_injected += 1
        if fault.terminal:
            self._ending = fault
            self._scope.cancel()
            await trio.lowlevel.checkpoint()
        await _FRAME_FAULTS[fault.kind](self, fault)

    # Frame faults: one bad frame, then the session carries on.

    async def _malformed(self, fault: Fault) -> None:
        await self._send_frame(b'{"type": "response.output_audio.delta", "delta": "AAAA')

    async def _no_type(self, fault: Fault) -> None:
        event = self._session.error(None, "Simulated frame with no type.")
        del event["type"]
        await self._send_frame(orjson.dumps(event))

    async def _oversized(self, fault: Fault) -> None:
        head = b'{"type":"sim.oversized","padding":"'
        padding = max(fault.size - len(head) - 2, 0)
        await self._send_frame(head + b"A" * padding + b'"}')

    async def _error(self, fault: Fault) -> None:
        kind = "server_error" if fault.error_code == "server_error" else "invalid_request_error"
        message = (
            "The server had an error while processing your request. Sorry about that!"
            if kind == "server_error"
            else f"Simulated error: {fault.error_code}."
        )
        code = None if kind == "server_error" else fault.error_code
        await self._send_frame(orjson.dumps(self._session.error(code, message, error_type=kind)))

    # Terminal faults, performed by ``run`` after the tasks are gone.

    async def _close(self, fault: Fault) -> None:
        await self._ws.aclose(fault.code, fault.reason)

    async def _drop(self, fault: Fault) -> None:
        self._stop_reading()
        # SO_LINGER 0 makes close() send RST: the connection dies with no close frame and
        # no orderly FIN, like a crashed proxy.
        self._stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await trio.aclose_forcefully(self._stream)

    async def _stall(self, fault: Fault) -> None:
        self._stop_reading()
        await trio.sleep(math.inf if fault.for_seconds is None else fault.for_seconds)
        await self._drop(fault)

    async def _expire(self, fault: Fault) -> None:
        expired = orjson.dumps(self._session.expire())
        try:
            await self._ws.send_message(expired.decode())
        except trio_websocket.ConnectionClosed:
            return
        self._counters.events_sent += 1
        self._counters.bytes_sent += len(expired)
        await self._ws.aclose(1001, "session expired")


_FaultAction = Callable[[SimConnection, Fault], Awaitable[None]]
#: A task that runs beside a connection's own for as long as it is open (a phone caller).
Companion = Callable[[SimConnection], Awaitable[None]]

_FRAME_FAULTS: dict[FaultKind, _FaultAction] = {
    FaultKind.MALFORMED: SimConnection._malformed,
    FaultKind.NO_TYPE: SimConnection._no_type,
    FaultKind.OVERSIZED: SimConnection._oversized,
    FaultKind.ERROR: SimConnection._error,
}

_TERMINAL_ACTIONS: dict[FaultKind, _FaultAction] = {
    FaultKind.CLOSE: SimConnection._close,
    FaultKind.DROP: SimConnection._drop,
    FaultKind.STALL: SimConnection._stall,
    FaultKind.EXPIRE: SimConnection._expire,
}
