"""A gateway (or something between) that sends garbage: the client closes that connection
with 1002 and connects again, as after any other loss. Only a 1002 or 1008 that the server
itself sends (the version, the token) ends the client for good."""

from __future__ import annotations

import base64
import functools
import hashlib

import orjson
import trio
import trio.testing
from websockets.frames import OP_BINARY, Frame
from websockets.protocol import Protocol, Side, State

from rtbus._backoff import Backoff
from rtbus.gateway import SUBPROTOCOL, connect

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A frame with the mask bit set: a server never sends one (RFC 6455, 5.1).
MASKED = b"\x82\x84\x01\x02\x03\x04" + bytes(4)


class GarbageGateway:
    """Accepts the handshake, answers the client's hello, then sends a masked frame."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self.changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        serve = functools.partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            listeners: list[trio.SocketListener] = await nursery.start(serve)
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started()

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.changed.set()
        self.changed = trio.Event()
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some()
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
                b"Sec-WebSocket-Protocol: " + SUBPROTOCOL.encode() + b"\r\n\r\n"
            )
            protocol = Protocol(Side.SERVER, state=State.OPEN)
            frames: list[Frame] = []
            while not frames:
                protocol.receive_data(await stream.receive_some())
                frames = [e for e in protocol.events_received() if isinstance(e, Frame)]
            hello = orjson.loads(frames[0].data)
            answer = {"frame": "result", "req": hello["req"], "result": {"version": 1}}
            await stream.send_all(Frame(OP_BINARY, orjson.dumps(answer)).serialize(mask=False))
            await stream.send_all(MASKED)
            await trio.sleep_forever()  # until the client goes


async def test_garbage_from_the_gateway_is_a_lost_connection_not_a_refusal(
    nursery: trio.Nursery,
) -> None:
    gateway = GarbageGateway()
    await nursery.start(gateway.run)
    backoff = Backoff(base=0.01, max_delay=0.01, jitter=0.0)
    url = f"ws://127.0.0.1:{gateway.port}/v1/bus"
    with trio.fail_after(10):  # a bound on a hang, not a wait: three connections take ms
        async with connect(url, backoff=backoff, keepalive_interval=None) as bus:
            while gateway.connections < 3:
                await gateway.changed.wait()
            assert repr(bus).endswith(("connected>", "connecting>"))
