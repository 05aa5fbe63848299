"""The wire on memory streams: what one receive brings, control frames, fragments, closes,
garbage, keepalive -- the server's bytes written by hand, so every ordering is the test's."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import trio
import trio.testing
from transport_upstream import delta
from websockets.client import ClientProtocol
from websockets.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    Frame,
    Opcode,
)
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri

from rtbus.protocol import ConnectionClosedError, RealtimeError
from rtbus.transport import (
    CloseStatus,
    ConnectOptions,
    KeepaliveTimeoutError,
    RealtimeWebSocket,
    Received,
)
from rtbus.transport._wire import Wire

OPTIONS = ConnectOptions(keepalive_interval=None, close_timeout=2)


def server_frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=False)


def text(payload: str) -> bytes:
    return server_frame(OP_TEXT, payload.encode())


def close_frame(code: int, reason: str = "") -> bytes:
    return server_frame(OP_CLOSE, Close(code, reason).serialize())


class Server:
    """The far end of the memory stream: writes raw bytes, parses what the client sent."""

    def __init__(self, stream: trio.testing.MemoryReceiveStream | trio.abc.Stream) -> None:
        self.stream = stream
        self.protocol = Protocol(Side.SERVER, state=State.OPEN)
        self.eof = False

    async def send(self, *frames: bytes) -> None:
        assert isinstance(self.stream, trio.abc.Stream)
        await self.stream.send_all(b"".join(frames))

    async def frames(self) -> list[Frame]:
        """Every frame the client has written so far (and whether it closed its end)."""
        assert isinstance(self.stream, trio.abc.Stream)
        await trio.testing.wait_all_tasks_blocked()
        while not self.eof:
            # A millisecond of nothing (virtual under autojump_clock): the client is done.
            with trio.move_on_after(0.001) as idle:
                data = await self.stream.receive_some()
                if not data:
                    self.eof = True
                    break
                self.protocol.receive_data(bytes(data))
            if idle.cancelled_caught:
                break
        return [e for e in self.protocol.events_received() if isinstance(e, Frame)]


@asynccontextmanager
async def connection(
    options: ConnectOptions = OPTIONS,
) -> AsyncIterator[tuple[RealtimeWebSocket, Server]]:
    client, server = trio.testing.memory_stream_pair()
    protocol = ClientProtocol(
        parse_uri("ws://upstream/v1/realtime"), state=State.OPEN, max_size=options.max_message_size
    )
    rt = RealtimeWebSocket(Wire(client, protocol, options), options)
    try:
        yield rt, Server(server)
    finally:
        with trio.CancelScope() as scope:
            scope.cancel()
            await rt.aclose()


async def test_one_receive_handles_every_frame_it_brought() -> None:
    async with connection() as (rt, server):
        await server.send(text(delta(1)), text(delta(2)), text(delta(3)))
        first = await rt.receive()
        # The one receive took all three: the next two need no socket at all.
        assert len(rt._wire.inbox) == 2
        rest = [await rt.receive(), await rt.receive()]
    received = [first, *rest]
    assert all(isinstance(r, Received) for r in received)
    assert [r.raw for r in received if r] == [delta(n).encode() for n in (1, 2, 3)]
    assert len({r.received_at for r in received if r}) == 1


async def test_receive_hands_out_the_bytes_off_the_socket() -> None:
    payload = delta(7).replace("word7", "héllo")
    async with connection() as (rt, server):
        await server.send(text(payload))
        got = await rt.receive()
        assert got is not None
        assert type(got.raw) is bytes
        assert got.raw == payload.encode()
        assert got.event.type == "response.output_audio_transcript.delta"
        assert got.received_at <= trio.current_time()
        assert rt.statistics().bytes_received == len(payload.encode())


async def test_a_fragmented_message_is_joined_and_a_ping_between_answered() -> None:
    payload = delta(4).encode()
    async with connection() as (rt, server):
        await server.send(
            server_frame(OP_TEXT, payload[:10], fin=False),
            server_frame(OP_PING, b"are you there"),
            server_frame(OP_CONT, payload[10:20], fin=False),
        )
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.send, server_frame(OP_CONT, payload[20:]))
            got = await rt.receive()
        assert got is not None
        assert got.raw == payload
        pongs = [f for f in await server.frames() if f.opcode is OP_PONG]
        assert [bytes(f.data) for f in pongs] == [b"are you there"]


async def test_a_ping_from_the_server_is_answered_with_its_payload() -> None:
    async with connection() as (rt, server):
        await server.send(server_frame(OP_PING, b"\x01\x02"), text(delta(1)))
        assert await rt.receive() is not None
        frames = await server.frames()
    assert [(f.opcode, bytes(f.data)) for f in frames] == [(OP_PONG, b"\x01\x02")]


async def test_a_message_over_the_limit_in_fragments_fails_with_1009() -> None:
    options = ConnectOptions(keepalive_interval=None, max_message_size=100)
    async with connection(options) as (rt, server):
        await server.send(
            server_frame(OP_TEXT, b"x" * 60, fin=False), server_frame(OP_CONT, b"x" * 60)
        )
        with pytest.raises(RealtimeError, match="code 1009") as caught:
            await rt.dispatch_events()
        frames = await server.frames()
    assert isinstance(caught.value.__cause__, ConnectionClosedError)
    assert caught.value.__cause__.code == 1009
    assert [Close.parse(bytes(f.data)).code for f in frames if f.opcode is OP_CLOSE] == [1009]


async def test_garbage_from_the_server_fails_the_connection_with_1002() -> None:
    async with connection() as (rt, server):
        await server.send(text(delta(1)), b"\xff\xfe garbage, not a frame")
        errors: list[RealtimeError] = []
        rt.on("error", errors.append)
        seen = [event.type async for event in rt]
        frames = await server.frames()
    assert seen == ["response.output_audio_transcript.delta"]  # What came before still counts.
    (error,) = errors
    assert isinstance(error.__cause__, ConnectionClosedError)
    assert error.__cause__.code == 1002
    assert [Close.parse(bytes(f.data)).code for f in frames if f.opcode is OP_CLOSE] == [1002]
    assert server.eof
    assert not rt._wire.peer_closed  # the 1002 is ours, not the server's


async def test_a_close_from_the_server_is_the_peers() -> None:
    async with connection() as (rt, server):
        await server.send(close_frame(1002, "unsupported version"))
        with pytest.raises(RealtimeError, match="1002"):
            await rt.dispatch_events()
        assert rt._wire.peer_closed
        assert rt.close_status == CloseStatus(1002, "unsupported version")


async def test_a_binary_frame_takes_the_error_path_and_reading_goes_on() -> None:
    async with connection() as (rt, server):
        await server.send(server_frame(OP_BINARY, b"\x00\x01\x02"), text(delta(1)))
        errors: list[RealtimeError] = []
        rt.on("error", errors.append)
        got = await rt.receive()
    assert got is not None
    assert "binary frame (3 bytes)" in str(errors[0])


async def test_the_server_closing_is_echoed_and_ends_reading_quietly() -> None:
    async with connection() as (rt, server):
        await server.send(text(delta(1)), close_frame(1000, "bye"))
        assert [event.type async for event in rt] == ["response.output_audio_transcript.delta"]
        frames = await server.frames()
        assert rt.close_status == CloseStatus(1000, "bye")
    echoed = [Close.parse(bytes(f.data)) for f in frames if f.opcode is OP_CLOSE]
    assert echoed == [Close(1000, "bye")]
    assert server.eof  # Both close frames crossed: the client closed TCP.


async def test_the_server_closing_abnormally_fails_with_its_code() -> None:
    async with connection() as (rt, server):
        await server.send(close_frame(1011, "boom"))
        with pytest.raises(RealtimeError, match=r"code 1011 \(boom\)") as caught:
            await rt.dispatch_events()
    assert isinstance(caught.value.__cause__, ConnectionClosedError)


async def test_a_peer_gone_right_after_its_close_frame_is_heard_with_its_code() -> None:
    # A server that refuses (a bad key, a bad token) sends its close frame and goes at once:
    # our send finds the stream broken, and reading still finds the close frame.
    async with connection() as (rt, server):
        await server.send(close_frame(1008, "the token is not valid"))
        await server.stream.aclose()
        with pytest.raises(ConnectionClosedError):
            await rt.send({"type": "response.create"})
        with pytest.raises(RealtimeError, match=r"code 1008 \(the token is not valid\)"):
            await rt.dispatch_events()
        assert rt.close_status == CloseStatus(1008, "the token is not valid")


async def test_our_close_waits_for_the_answer_and_drops_what_came_before_it() -> None:
    async with connection() as (rt, server):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rt.aclose, 4000, "done")
            (ours,) = await server.frames()
            assert Close.parse(bytes(ours.data)) == Close(4000, "done")
            assert not server.eof  # Still waiting for our answer.
            await server.send(text(delta(1)), close_frame(4000, "done"))
        assert [event async for event in rt] == []
        assert rt.close_status == CloseStatus(4000, "done")
        await server.frames()
        assert server.eof


async def test_our_close_with_a_reader_receiving_lets_the_reader_take_the_answer() -> None:
    async with connection() as (rt, server):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rt.dispatch_events)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(rt.aclose, 1000, "")
            (ours,) = await server.frames()
            assert ours.opcode is OP_CLOSE
            await server.send(close_frame(1000))
        assert rt.close_status == CloseStatus(1000)


async def test_a_close_the_server_never_answers_gives_up_at_close_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with connection() as (rt, server):
        start = trio.current_time()
        await rt.aclose(1000, "bye")
        assert trio.current_time() - start == pytest.approx(OPTIONS.close_timeout)
        await server.frames()
        assert server.eof


async def test_a_cancelled_close_aborts_at_once_without_a_close_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with connection() as (rt, server):
        start = trio.current_time()
        with trio.CancelScope() as scope:
            scope.cancel()
            await rt.aclose()
        assert trio.current_time() == start
        assert rt.close_status == CloseStatus(1006, "aborted: the close was cancelled")
        assert await server.frames() == []
        assert server.eof


async def test_a_silent_peer_fails_the_keepalive_while_the_reader_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    options = ConnectOptions(keepalive_interval=5, pong_timeout=3)
    async with connection(options) as (rt, _server), trio.open_nursery() as nursery:
        nursery.start_soon(rt._run_keepalive)
        start = trio.current_time()
        with pytest.raises(RealtimeError, match="no pong within 3s") as caught:
            await rt.dispatch_events()
        assert trio.current_time() - start == pytest.approx(5 + 3)
        assert isinstance(caught.value.__cause__, KeepaliveTimeoutError)
        assert rt.close_status == CloseStatus(1006, "keepalive timeout")


async def test_a_streaming_peer_is_never_pinged(autojump_clock: trio.testing.MockClock) -> None:
    options = ConnectOptions(keepalive_interval=5, pong_timeout=3)
    async with connection(options) as (rt, server), trio.open_nursery() as nursery:
        nursery.start_soon(rt._run_keepalive)
        nursery.start_soon(rt.dispatch_events)
        for n in range(30):
            await server.send(text(delta(n)))
            await trio.sleep(1)
        assert rt.statistics().pings_sent == 0
        assert rt.statistics().frames_received == 30
        nursery.cancel_scope.cancel()


async def test_a_keepalive_reads_its_own_pong_when_nobody_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    options = ConnectOptions(keepalive_interval=5, pong_timeout=3)
    async with connection(options) as (rt, server), trio.open_nursery() as nursery:
        nursery.start_soon(rt._run_keepalive)
        await trio.sleep(5)
        (ping,) = await server.frames()
        assert ping.opcode is OP_PING
        # A message and the pong in one segment: the message waits for the reader.
        await server.send(text(delta(1)), server_frame(OP_PONG, bytes(ping.data)))
        await trio.sleep(1)
        assert rt.statistics().pongs_received == 1
        assert rt.close_status is None
        got = await rt.receive()
        assert got is not None
        assert orjson.loads(got.raw)["event_id"] == "ev_1"
        nursery.cancel_scope.cancel()


async def test_frames_cut_anywhere_across_receives_come_out_whole() -> None:
    big = delta(1).replace("word1", "A" * 70_000)  # A 64-bit length.
    medium = delta(2).replace("word2", "B" * 1_000)  # A 16-bit length.
    stream = text(big) + text(medium) + text(delta(3))
    cuts = [0, 1, 3, 9, 70_000, 70_011, 71_020, 71_100, len(stream)]
    async with connection() as (rt, server), trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def read() -> None:
            for _ in range(3):
                received = await rt.receive()
                assert received is not None
                got.append(received.raw)

        nursery.start_soon(read)
        for start, stop in itertools.pairwise(cuts):
            await server.send(stream[start:stop])
            await trio.testing.wait_all_tasks_blocked()
    assert got == [big.encode(), medium.encode(), delta(3).encode()]


async def test_a_text_frame_inside_a_fragmented_message_fails_with_1002() -> None:
    async with connection() as (rt, server):
        await server.send(server_frame(OP_TEXT, b'{"a":', fin=False), text(delta(1)))
        with pytest.raises(RealtimeError, match="code 1002"):
            await rt.dispatch_events()


async def test_a_masked_frame_from_the_server_fails_with_1002() -> None:
    async with connection() as (rt, server):
        await server.send(Frame(OP_TEXT, delta(1).encode()).serialize(mask=True))
        with pytest.raises(RealtimeError, match="code 1002"):
            await rt.dispatch_events()


async def test_a_send_queued_before_the_close_echo_raises_closed_with_the_code() -> None:
    # The server's close frame has been read, and its echo waits for the send lock behind
    # a send that was queued first: that send must raise ConnectionClosedError with the
    # server's code, not trip over the protocol's closing state.
    client, far = trio.testing.lockstep_stream_pair()
    protocol = ClientProtocol(parse_uri("ws://upstream/v1/realtime"), state=State.OPEN)
    rt = RealtimeWebSocket(Wire(client, protocol, OPTIONS), OPTIONS)
    server = Server(far)
    raised: list[ConnectionClosedError] = []

    async def queued_send() -> None:
        with pytest.raises(ConnectionClosedError) as caught:
            await rt.send({"type": "response.create"})
        raised.append(caught.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(rt.send, {"type": "response.create"})  # holds the lock, blocked
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(queued_send)
        nursery.start_soon(rt.dispatch_events)  # the reader: takes the close, queues its echo
        await trio.testing.wait_all_tasks_blocked()
        await server.send(close_frame(1008, "bye"))
        await server.frames()  # lets the first send (and the echo) out
        nursery.cancel_scope.cancel()
    assert [(e.code, e.reason) for e in raised] == [(1008, "bye")]
