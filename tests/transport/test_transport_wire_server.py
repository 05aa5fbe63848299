"""The wire as a server's (the bus gateway's) on memory streams: a client's masked frames cut
whole wherever the receives split them, a bad header refused at once, the server's own
frames written by hand, and the close both ways."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from rtbus.protocol import ConnectionClosedError
from rtbus.transport import CloseStatus, ConnectOptions, Wire

OPTIONS = ConnectOptions(max_message_size=100_000)


def client_frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


class Client:
    """The far end: writes a client's raw bytes, parses what the server wrote."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.protocol = ClientProtocol(parse_uri("ws://rtbus/v1/bus"), state=State.OPEN)

    async def send(self, *frames: bytes) -> None:
        await self.stream.send_all(b"".join(frames))

    async def frames(self) -> list[Frame]:
        """Every frame the server has written so far."""
        await trio.testing.wait_all_tasks_blocked()
        while True:
            with trio.move_on_after(0.001):  # virtual: autojump_clock in every test here
                data = await self.stream.receive_some()
                if data:
                    self.protocol.receive_data(bytes(data))
                    continue
            break
        return [e for e in self.protocol.events_received() if isinstance(e, Frame)]


@asynccontextmanager
async def served(options: ConnectOptions = OPTIONS) -> AsyncIterator[tuple[Wire, Client]]:
    near, far = trio.testing.memory_stream_pair()
    protocol = ServerProtocol(state=State.OPEN, max_size=options.max_message_size)
    wire = Wire(near, protocol, options)
    try:
        yield wire, Client(far)
    finally:
        await wire.abort()


async def drain(wire: Wire) -> list[tuple[bytes, bool]]:
    """Receive until the wire ends; the messages it took."""
    while await wire.fill():
        pass
    return [(payload, is_text) for payload, is_text, _ in wire.inbox]


async def test_a_clients_frames_cut_anywhere_across_receives_come_out_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    big, medium, small = b"A" * 70_000, b"B" * 1_000, b'{"op":"credit"}'  # 64/16/7-bit lengths
    stream = client_frame(OP_TEXT, big) + client_frame(OP_BINARY, medium)
    stream += client_frame(OP_TEXT, small)
    cuts = [0, 1, 3, 9, 13, 70_000, 70_013, 70_015, 71_020, 71_030, len(stream)]
    async with served() as (wire, client), trio.open_nursery() as nursery:

        async def read() -> None:
            while len(wire.inbox) < 3:
                assert await wire.fill()

        nursery.start_soon(read)
        for start, stop in itertools.pairwise(cuts):
            await client.send(stream[start:stop])
            await trio.testing.wait_all_tasks_blocked()
    assert [(payload, is_text) for payload, is_text, _ in wire.inbox] == [
        (big, True),
        (medium, False),
        (small, True),
    ]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(bytes((0x81, 0x7F)) + (2**40).to_bytes(8, "big"), id="unmasked-huge"),
        pytest.param(bytes((0x81, 0x05)) + b"hello", id="unmasked"),
        pytest.param(bytes((0xC1,)) + client_frame(OP_TEXT, b"hello")[1:], id="reserved-bit"),
        pytest.param(bytes((0x83, 0x85)), id="unknown-opcode"),
    ],
)
async def test_a_header_no_client_may_send_fails_the_connection_at_once(
    header: bytes, autojump_clock: trio.testing.MockClock
) -> None:
    # Not a byte more is needed to refuse it: the wire must not wait for a length it claims.
    async with served() as (wire, client):
        await client.send(client_frame(OP_TEXT, b"before"), header)
        assert await drain(wire) == [(b"before", True)]
        assert wire.close is not None
        assert wire.close.code == 1002
        closes = [f for f in await client.frames() if f.opcode is OP_CLOSE]
        assert [Close.parse(bytes(f.data)).code for f in closes] == [1002]


async def test_a_message_over_the_limit_fails_with_1009(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (wire, client):
        await client.send(client_frame(OP_BINARY, b"x" * (OPTIONS.max_message_size + 1)))
        assert await drain(wire) == []
        assert wire.close is not None
        assert wire.close.code == 1009


async def test_a_ping_from_the_client_is_answered_with_its_payload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (wire, client):
        await client.send(client_frame(OP_PING, b"are you there"))
        await wire.fill()
        pongs = [f for f in await client.frames() if f.opcode is OP_PONG]
        assert [bytes(f.data) for f in pongs] == [b"are you there"]


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
async def test_a_servers_binary_frame_of_parts_is_one_message_of_their_bytes(
    size: int, autojump_clock: trio.testing.MockClock
) -> None:
    # Every length encoding (7, 16 and 64 bits), at its edges.
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    parts = [payload[: size // 3], payload[size // 3 : size // 2], payload[size // 2 :]]
    async with served() as (wire, client):
        await wire.send_binary(parts)
        (frame,) = await client.frames()
    assert (frame.opcode, frame.fin, bytes(frame.data)) == (OP_BINARY, True, payload)


async def test_a_clients_binary_frame_of_parts_is_masked_by_its_protocol(
    autojump_clock: trio.testing.MockClock,
) -> None:
    near, far = trio.testing.memory_stream_pair()
    protocol = ClientProtocol(parse_uri("ws://rtbus/v1/bus"), state=State.OPEN)
    wire = Wire(near, protocol, OPTIONS)
    await wire.send_binary([b"one ", b"message"])
    server = ServerProtocol(state=State.OPEN)
    server.receive_data(bytes(await far.receive_some()))  # the server refuses unmasked frames
    (frame,) = cast(list[Frame], server.events_received())
    assert (frame.opcode, bytes(frame.data)) == (OP_BINARY, b"one message")
    await wire.abort()


async def test_a_close_within_sends_the_code_and_waits_for_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (wire, client), trio.open_nursery() as nursery:
        nursery.start_soon(wire.close_within, 5.0, 1001, "the service is shutting down")
        (frame,) = await client.frames()
        assert Close.parse(bytes(frame.data)) == Close(1001, "the service is shutting down")
        started = trio.current_time()
        await client.send(client_frame(OP_CLOSE, Close(1001, "").serialize()))
    assert trio.current_time() - started < 1.0  # the answer ended it, not the grace
    assert wire.done
    assert wire.close == CloseStatus(1001, "the service is shutting down")
    with pytest.raises(ConnectionClosedError):
        await wire.send_binary([b"too late"])


async def test_a_close_the_client_never_answers_ends_after_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (wire, client):
        started = trio.current_time()
        await wire.close_within(5.0, 1008, "the bearer token is not valid")
        assert trio.current_time() - started == pytest.approx(5.0)
        assert wire.done
        (frame,) = await client.frames()
        assert Close.parse(bytes(frame.data)).code == 1008
