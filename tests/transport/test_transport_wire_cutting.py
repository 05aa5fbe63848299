"""The wire's cutter, as a property: any run of frames, received in chunks cut anywhere, comes
out as the same messages in order, on either side (a server's unmasked frames to a client,
a client's masked ones to a server), pings among them."""

from __future__ import annotations

import itertools

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import OP_BINARY, OP_PING, OP_TEXT, Frame
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from rtbus.transport import ConnectOptions, Wire

OPTIONS = ConnectOptions(max_message_size=200_000)
# Every length encoding at its edges (7, 16 and 64 bits), and sizes between.
SIZES = st.sampled_from([0, 1, 125, 126, 127, 1_000, 65_535, 65_536, 70_000]) | st.integers(
    0, 3_000
)
MESSAGES = st.lists(
    st.tuples(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING]), SIZES), min_size=1, max_size=12
)


class Chunks(trio.abc.Stream):
    """A stream that gives exactly the chunks it was handed, one per receive, then the end;
    what is sent to it is kept."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks, self.sent = iter(chunks), bytearray()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return next(self._chunks, b"")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sent += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def _payload(index: int, size: int) -> bytes:
    return bytes((index + i) % 251 for i in range(size)) if size < 200 else bytes([index]) * size


async def _received(stream: bytes, cuts: list[int], server: bool) -> list[tuple[bytes, bool]]:
    points = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    protocol = (
        ServerProtocol(state=State.OPEN, max_size=OPTIONS.max_message_size)
        if server
        else ClientProtocol(parse_uri("ws://rtbus/v1/bus"), state=State.OPEN, max_size=None)
    )
    wire = Wire(Chunks(chunks), protocol, OPTIONS)
    while await wire.fill():
        pass
    return [(payload, is_text) for payload, is_text, _ in wire.inbox]


@settings(max_examples=150, deadline=None)
@given(MESSAGES, st.lists(st.integers(0, 400_000), max_size=30), st.booleans())
def test_frames_cut_anywhere_come_out_whole_and_in_order(
    messages: list[tuple[object, int]], cuts: list[int], server: bool
) -> None:
    # A server receives a client's masked frames; a client, a server's unmasked ones.
    frames = [
        Frame(opcode, _payload(i, min(size, 125) if opcode is OP_PING else size))  # type: ignore[arg-type]
        for i, (opcode, size) in enumerate(messages)
    ]
    stream = b"".join(frame.serialize(mask=server) for frame in frames)
    got = trio.run(_received, stream, cuts, server)
    expected = [(f.data, f.opcode is OP_TEXT) for f in frames if f.opcode is not OP_PING]
    assert got == expected
