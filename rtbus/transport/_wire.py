"""``Wire``: one WebSocket on one trio stream, driven by the tasks that use it.

Either side: a client's connections (upstream, the gateway's client) run on websockets'
``ClientProtocol``, the service's bus gateway on its ``ServerProtocol``. No task of its own
reads the socket: whoever needs frames receives -- the connection's reader, a keepalive
waiting for its pong, a close waiting for the peer's answer -- and every frame that receive
brought is handled in the same pass. ``_split`` cuts the bytes into frames and takes whole
unmasked TEXT and BINARY frames itself (what a server sends: the hot path); every other frame,
masked ones included (what a client sends), goes whole to websockets' sans-IO protocol, which
unmasks and checks it and answers pings and closes. Data messages wait in ``inbox`` for the
reader: no channel, no task switch per message.

Invariants:

* One receive at a time. A task that needs frames while another receives parks until that
  receive has been handled, then looks again. A task other than the reader also parks while
  ``inbox`` holds ``read_ahead`` messages: a reader that stopped reading stops the pongs too,
  so its keepalive fails instead of buffering without bound.
* ``inbox`` holds data messages in arrival order as ``(payload, is_text, arrival time)``; the
  payload is the bytes that came off the socket (a fragmented message joined once), never
  decoded here. The protocol only ever sees whole frames, so it is always at a frame
  boundary when the cutter takes the next one; a partial frame waits in ``_partial``.
  Control frames are handled where they arrive: a ping answered, a pong matched to our ping,
  a close echoed and the stream closed.
* Bytes go out whole and in order under one FIFO lock: a frame is serialized and taken from
  the protocol with no checkpoint in between. A write cancelled midway aborts the stream: a
  half-written frame would corrupt every later one. A write that finds the stream broken
  ends sending, not reading: the peer's close frame, sent before it went, is still read, so
  its code and reason are what ``close`` records, not a bare 1006.
* ``close`` records how the connection ended, once: the first account wins. ``done`` says
  nothing more will be received; what ``inbox`` holds stays readable. Once ``closing`` (our
  close started) data frames are dropped, and once ``close`` is set sending raises
  ``ConnectionClosedError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Final, cast

import attrs
import trio
from websockets.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    Opcode,
)
from websockets.protocol import Protocol, Side, State

from rtbus.protocol import ConnectionClosedError

from ._options import ConnectOptions

__all__ = ["CloseStatus", "Message", "Wire"]

Message = tuple[bytes, bool, float]
"""A data message: its payload bytes, whether it was a TEXT one, when it was received."""


@attrs.frozen
class CloseStatus:
    """How the connection ended: the close code and reason (1006: dropped, no close frame)."""

    code: int
    reason: str = ""


_DROPPED: Final = CloseStatus(1006)
_CUT_SHORT: Final = CloseStatus(1006, "aborted: a write was cut short")


class Wire:
    """Frames in and out of one upgraded stream; see the module's invariants."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: Protocol,
        options: ConnectOptions,
        early: bytes = b"",
    ) -> None:
        self.inbox: deque[Message] = deque()
        self.close: CloseStatus | None = None
        self.done = False
        self.closing = False
        self.heard_at = trio.current_time()
        """``trio.current_time()`` of the last receive that brought anything."""
        self.pings_sent = self.pongs_received = 0
        self._stream = stream
        self._protocol = protocol
        self._receive_size = options.receive_buffer_size
        self._read_ahead = options.message_queue_size
        self._max_size = options.max_message_size
        self._send_lock = trio.StrictFIFOLock()
        self._unsendable = False  # a write found the stream broken
        self._receiving = False
        self._received = trio.lowlevel.ParkingLot()
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragmented_text = False
        self._ping: bytes | None = None
        self._must_reply = False
        self._partial = bytearray()
        # The mask bit every frame from the peer carries: a client's frames are masked.
        self._masked_in = 0x80 if protocol.side is Side.SERVER else 0
        # Bytes that came in the same segments as the 101 answer: the first receive's.
        self._early = early

    @property
    def peer_closed(self) -> bool:
        """Whether the peer sent a close frame: ``close`` is then its code and reason, not
        ours (a protocol error, a keepalive timeout, our own close) nor a drop."""
        received = self._protocol.close_rcvd
        return received is not None and self.close == CloseStatus(received.code, received.reason)

    # -- receiving ----------------------------------------------------------------------

    async def fill(self) -> bool:
        """The reader's receive: take one receive's frames (or wait for the task receiving
        now). ``False`` once nothing more will come."""
        if self.done:
            return False
        if self._receiving:
            await self._received.park()
        else:
            await self._receive()
        return True

    async def receive_until(self, done: Callable[[], bool], *, read_ahead: bool) -> None:
        """Receive (or wait for whoever receives) until ``done()`` or nothing more will come.

        With ``read_ahead``, it does not receive while ``inbox`` is full: that is the reader's.
        """
        while not done() and not self.done:
            if self._receiving or (read_ahead and len(self.inbox) >= self._read_ahead):
                await self._received.park()
            else:
                await self._receive()

    async def _receive(self) -> None:
        self._receiving = True
        try:
            try:
                data: bytes | bytearray = self._early
                self._early = b""
                if not data:
                    data = await self._stream.receive_some(self._receive_size)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""  # Reset, or aborted by a close or a keepalive: said in ``close``.
            finally:
                self._receiving = False
            if not data:
                await self._end(_DROPPED)
            elif self._take(bytes(data)):  # No copy of bytes; TLS may give a bytearray.
                await self._follow_up()
        finally:
            if self._received:
                self._received.unpark_all()

    def _take(self, data: bytes) -> bool:
        """Handle every whole frame in what has arrived; keep the tail of a partial one.
        Whether anything needs an answer or ends the connection."""
        now = self.heard_at = trio.current_time()
        partial, start, protocol = self._partial, 0, self._protocol
        if partial:
            # Complete the frame that waits with what it lacks, and cut the rest where it
            # lies: joining all of ``data`` to it would copy every byte once more, and the
            # gateway's writes of several messages rarely end where a receive does.
            lacking = self._lacking(partial)
            start = lacking if 0 < lacking <= len(data) else len(data)
            partial += memoryview(data)[:start]
            del partial[: self._split(partial, now)]
        over = protocol.close_rcvd is not None or protocol.parser_exc is not None
        if start < len(data) and not over:
            taken = self._split(data, now, start)
            if taken < len(data):
                self._partial = bytearray(memoryview(data)[taken:])
        return (
            self._must_reply or protocol.close_rcvd is not None or protocol.parser_exc is not None
        )

    def _lacking(self, partial: bytearray) -> int:
        """How many bytes the frame begun in ``partial`` lacks; 0 while its header is not
        whole, or is one ``_split`` hands the protocol as it reads it."""
        if len(partial) < 2:
            return 0
        first, second = partial[0], partial[1]
        if second & 0x80 != self._masked_in or first & 0x0F not in _OPCODES:
            return 0
        length, start = second & 0x7F, 2
        if length >= 126:
            start = 4 if length == 126 else 10
            if len(partial) < start:
                return 0
            length = int.from_bytes(partial[2:start], "big")
        return start + length + (4 if self._masked_in else 0) - len(partial)

    def _split(self, buffer: bytes | bytearray, now: float, pos: int = 0) -> int:
        """Cut ``buffer`` from ``pos`` into whole frames; where that ended.

        Written by hand, and only the cutting: websockets' parser costs about 2 us per frame
        and this about 0.4 (BENCHMARKS.md), on the path every server event takes. A whole,
        unfragmented, unmasked TEXT or BINARY frame goes to ``inbox`` here; every other frame
        goes whole to the protocol, which checks and handles it (control frames, fragments,
        masking: a client's frames must be masked, a server's must not), so the protocol is
        always at a frame boundary. A header the protocol refuses as it reads it (an unknown
        opcode, the wrong masking for this side) or a frame over the size limit hands the
        protocol the rest at once: it fails the connection, without waiting for a length
        that garbage made up. (Reserved bits it refuses only once the frame is whole.) The
        limit is the message's: a fragment counts what came before it.
        """
        inbox, limit, end = self.inbox, self._room(), len(buffer)
        masked = self._masked_in
        while end - pos >= 2:
            first, second, start = buffer[pos], buffer[pos + 1], pos + 2
            if second & 0x80 != masked or first & 0x0F not in _OPCODES:
                return self._to_protocol(buffer, pos, end, now)
            length = second & 0x7F
            if length >= 126:
                start = pos + (4 if length == 126 else 10)
                if start > end:
                    break
                length = int.from_bytes(buffer[pos + 2 : start], "big")
            if length > limit:
                return self._to_protocol(buffer, pos, end, now)
            stop = start + length + (4 if masked else 0)  # the masking key
            if stop > end:
                break
            # 0x81/0x82: FIN, TEXT/BINARY, unmasked (a server's). Inside a fragmented message
            # it is an error the protocol reports, so it goes there.
            if (first == 0x81 or first == 0x82) and not masked and not self._fragments:
                if not self.closing:
                    inbox.append((bytes(buffer[start:stop]), first == 0x81, now))
            else:
                if self._to_protocol(buffer, pos, stop, now) == end:
                    return end
                limit = self._room()
            pos = stop
        return pos

    def _room(self) -> int:
        """The largest frame the next may be: inside a fragmented message, what the size
        limit leaves of it, so a fragment that would take it over is refused at its header."""
        return self._max_size - (self._protocol.cur_size or 0)

    def _to_protocol(self, buffer: bytes | bytearray, pos: int, stop: int, now: float) -> int:
        """Hand ``buffer[pos:stop]`` to the protocol and handle what it made of it; ``stop``,
        or the end of ``buffer`` once the connection is over (the rest is never read)."""
        protocol = self._protocol
        protocol.receive_data(bytes(buffer[pos:stop]))
        self._handle(cast(list[Frame], protocol.events_received()), now)
        if protocol.close_rcvd is not None or protocol.parser_exc is not None:
            return len(buffer)
        return stop

    def _handle(self, frames: Iterable[Frame], now: float) -> None:
        inbox = self.inbox
        for frame in frames:
            # The common case first, without a table lookup: a whole TEXT message.
            if frame.opcode is OP_TEXT and frame.fin:
                if not self.closing:
                    inbox.append((bytes(frame.data), True, now))
            else:
                _HANDLERS[frame.opcode](self, frame, now)

    def _data(self, frame: Frame, now: float) -> None:
        if not frame.fin:
            self._fragments = [frame.data]
            self._fragmented_text = frame.opcode is OP_TEXT
        elif not self.closing:
            self.inbox.append((bytes(frame.data), frame.opcode is OP_TEXT, now))

    def _continuation(self, frame: Frame, now: float) -> None:
        # The protocol checks the sequence (no stray continuation) and the joined size.
        self._fragments.append(frame.data)
        if frame.fin:
            payload = b"".join(self._fragments)
            self._fragments = []
            if not self.closing:
                self.inbox.append((payload, self._fragmented_text, now))

    def _pinged(self, frame: Frame, now: float) -> None:
        self._must_reply = True  # The protocol queued the pong; it goes out in _follow_up.

    def _ponged(self, frame: Frame, now: float) -> None:
        if self._ping is not None and frame.data == self._ping:
            self._ping = None
            self.pongs_received += 1

    def _close_frame(self, frame: Frame, now: float) -> None:
        pass  # The protocol keeps it (``close_rcvd``) and queued the echo: see _follow_up.

    async def _follow_up(self) -> None:
        """Send what the frames asked for (pongs, the close echo, our close after a protocol
        error), then end the connection if it is over."""
        self._must_reply = False
        protocol = self._protocol
        try:
            async with self._send_lock:
                await self._write(protocol.data_to_send())
        except ConnectionClosedError:
            pass  # The stream is gone: ``close`` says why.
        if protocol.parser_exc is not None:
            # The protocol failed the connection (garbage, an oversized message): our close
            # frame says why, and nothing the peer sends from here is read.
            sent = protocol.close_sent
            await self._end(_DROPPED if sent is None else CloseStatus(sent.code, sent.reason))
        elif protocol.close_rcvd is not None:
            received = protocol.close_rcvd
            # Both close frames crossed: nothing is left to wait for on this stream.
            await self._end(CloseStatus(received.code, received.reason))

    # -- sending ------------------------------------------------------------------------

    async def send_text(self, payload: bytes) -> None:
        """Send ``payload`` as one TEXT frame; ``ConnectionClosedError`` once closed."""
        async with self._send_lock:
            self._check_open()
            await trio.lowlevel.checkpoint_if_cancelled()
            self._protocol.send_text(payload)
            await self._write(self._protocol.data_to_send())

    async def send_binary(self, *messages: list[bytes]) -> None:
        """Send each of ``messages`` (given as its parts, back to back) as one BINARY frame,
        all in one write; ``ConnectionClosedError`` once closed. A server's frame is
        unmasked: its header is made here and the parts are joined with it once, where
        websockets' would copy the payload twice more (the bus gateway's batches of audio are
        its largest writes). One write is one scheduler turn, however many messages it
        carries: on a loaded loop a turn is long, and the gateway writes what it holds at
        once."""
        async with self._send_lock:
            self._check_open()
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._protocol.side is Side.SERVER:
                chunks: list[bytes] = []
                for parts in messages:
                    chunks += (_binary_header(sum(map(len, parts))), *parts)
                await self._write(chunks)
            else:
                for parts in messages:
                    self._protocol.send_binary(b"".join(parts))
                await self._write(self._protocol.data_to_send())

    async def ping(self) -> None:
        """Send a ping and return once its pong came back, receiving for it while nobody
        else does. ``ConnectionClosedError`` if the connection ended first."""
        payload = self.pings_sent.to_bytes(4, "big")
        async with self._send_lock:
            self._check_open()
            await trio.lowlevel.checkpoint_if_cancelled()
            self._protocol.send_ping(payload)
            self._ping = payload
            self.pings_sent += 1
            await self._write(self._protocol.data_to_send())
        await self.receive_until(lambda: self._ping != payload, read_ahead=True)
        if self._ping == payload:
            raise self._closed_error()

    async def close_handshake(self, code: int, reason: str) -> None:
        """Send our close frame and receive until the server's answer (or the end).

        Unbounded: the caller brings the deadline, then :meth:`abort` s.
        """
        self.closing = True
        async with self._send_lock:
            if not self.done and not self._unsendable and self._protocol.state is State.OPEN:
                await trio.lowlevel.checkpoint_if_cancelled()
                self._protocol.send_close(code, reason)
                await self._write(self._protocol.data_to_send())
        await self.receive_until(lambda: False, read_ahead=False)

    async def close_within(self, grace: float, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: our close frame, the peer's answer awaited at most ``grace``
        seconds (shielded: an owner being cancelled still says goodbye, briefly), then the
        stream. Whoever else reads meanwhile sees the end."""
        self.record(CloseStatus(code, reason))
        # A peer gone already (the close frame finds the stream broken) is no one to wait for.
        with trio.move_on_after(grace, shield=True), suppress(ConnectionClosedError):
            await self.close_handshake(code, reason)
        await self.abort()

    def record(self, status: CloseStatus) -> None:
        """Record how the connection ended, unless an earlier account did."""
        if self.close is None:
            self.close = status

    async def abort(self) -> None:
        """Close the stream now, with no (further) close handshake; idempotent."""
        self.done = True
        if self._received:
            self._received.unpark_all()
        await trio.aclose_forcefully(self._stream)

    async def _end(self, status: CloseStatus) -> None:
        self.record(status)
        await self.abort()

    async def _write(self, chunks: list[bytes]) -> None:
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not data:
            return  # Nothing, or only the protocol's end-of-stream marker.
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # No more sending; but what the peer sent before it went (its close frame, with
            # the reason) may still be there to read: the reader records how it ended.
            self._unsendable = True
            raise self._closed_error() from exc
        except BaseException:
            # Cancelled midway: part of a frame may be out, which would corrupt the rest.
            await self._end(_CUT_SHORT)
            raise

    def _check_open(self) -> None:
        # Not OPEN: a close frame came (its echo may still be on its way out) or ours went.
        if (
            self.close is not None
            or self.done
            or self._unsendable
            or self._protocol.state is not State.OPEN
        ):
            raise self._closed_error()

    def _closed_error(self) -> ConnectionClosedError:
        status, received = self.close, self._protocol.close_rcvd
        if status is None and received is not None:
            status = CloseStatus(received.code, received.reason)
        status = status or _DROPPED
        return ConnectionClosedError(status.code, status.reason)


def _binary_header(size: int) -> bytes:
    """The header of an unmasked, final BINARY frame of ``size`` bytes (RFC 6455, 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return bytes((0x82, 126)) + size.to_bytes(2, "big")
    return bytes((0x82, 127)) + size.to_bytes(8, "big")


_Handler = Callable[[Wire, Frame, float], None]
# Everything but a whole TEXT message, which _handle takes without a lookup.
_HANDLERS: Final[dict[Opcode, _Handler]] = {
    OP_TEXT: Wire._data,
    OP_BINARY: Wire._data,
    OP_CONT: Wire._continuation,
    OP_PING: Wire._pinged,
    OP_PONG: Wire._ponged,
    OP_CLOSE: Wire._close_frame,
}
# The opcodes RFC 6455 defines: every one has its handler; a header with another is refused.
_OPCODES: Final = frozenset(int(opcode) for opcode in _HANDLERS)
