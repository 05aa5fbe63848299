"""Attacks on the HTTP surface's door: one port where each new connection's first bytes
decide between the bus gateway's WebSocket (served straight off the socket) and hypercorn.

Everything here speaks raw bytes on real sockets on 127.0.0.1: what a hostile or broken client
sends, byte for byte, and exactly what comes back. Timeouts pass on the autojump clock; the
tests that need the server to have read what was sent wait until every task is blocked
(on loopback, bytes sent are readable at once).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterable
from typing import Any, Self, cast

import attrs
import hypercorn.config
import orjson
import pytest
import trio
import trio.testing
from http_support import TOKEN, Api, serving
from support.events import ev
from websockets.datastructures import Headers
from websockets.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Frame
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

from rtbus.gateway import SUBPROTOCOL
from rtbus.service import HttpConfig, Service, serve_http
from rtbus.service._gateway import _CLOSE_GRACE, gateway_counts
from rtbus.service._gateway_socket import (
    HANDSHAKE_SECONDS,
    WIRE_OPTIONS,
    Refused,
    Upgraded,
    upgrade,
)
from rtbus.transport import Wire

KEEP_ALIVE = hypercorn.config.Config().keep_alive_timeout
MAX_MESSAGE = WIRE_OPTIONS.max_message_size
KEY = base64.b64encode(b"0123456789abcdef").decode()
WRONG = "wrong-secret-5b7e0d"  # a wrong token: it must not show in a log either
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def upgrade_head(
    target: str = "/v1/bus",
    *,
    method: str = "GET",
    token: str | None = TOKEN,
    fields: Iterable[str] = (),
) -> bytes:
    """A WebSocket upgrade request's head for ``target``, with the token and the subprotocol."""
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: Upgrade",
        "Upgrade: websocket",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {SUBPROTOCOL}",
        *fields,
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def masked(opcode: Any, data: bytes, *, fin: bool = True) -> bytes:
    """A client's frame, as a client must send it."""
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def huge_header(length: int, *, opcode: int = 0x82) -> bytes:
    """A masked frame's header claiming ``length`` bytes; ``opcode``: its first byte, FIN
    included (0x82: a final BINARY frame, 0x80: a final continuation)."""
    return bytes((opcode, 0x80 | 127)) + length.to_bytes(8, "big") + b"\x01\x02\x03\x04"


HALF = MAX_MESSAGE // 2 + 1  # two fragments of it are one byte over the limit


def hello(req: int = 1) -> bytes:
    return masked(OP_BINARY, orjson.dumps({"op": "hello", "req": req, "versions": [1]}))


@attrs.frozen
class Reply:
    """An HTTP response: status, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> tuple[int, str]:
        payload = orjson.loads(self.body)
        assert set(payload) == {"error"}, payload
        return self.status, payload["error"]["code"]


class Peer:
    """One raw TCP connection to the surface: HTTP responses and WebSocket frames read off
    it as bytes come, with whatever came after them kept for the next read."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.ended = False
        self._frames = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)

    @classmethod
    async def open(cls, api: Api) -> Self:
        stream = await trio.open_tcp_stream("127.0.0.1", api.address.port)
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(stream)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await trio.aclose_forcefully(self.stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _more(self) -> bool:
        data = await self.stream.receive_some()
        self.buffer += data
        self.ended = not data
        return bool(data)

    async def response(self) -> Reply:
        """The next response (a 101's head alone: frames follow it)."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            assert await self._more(), f"closed before a whole response: {bytes(self.buffer)!r}"
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = 0 if status == 101 else int(headers.get("content-length", "0"))
        while len(self.buffer) < size:
            assert await self._more(), "closed in the middle of a body"
        body = bytes(self.buffer[:size])
        del self.buffer[:size]
        return Reply(status, headers, body)

    async def upgraded(self) -> None:
        reply = await self.response()
        assert reply.status == 101, reply
        assert reply.headers["sec-websocket-protocol"] == SUBPROTOCOL

    async def rest(self) -> bytes:
        """Everything until the server closes (a reset counts as a close)."""
        try:
            while await self._more():
                pass
        except trio.BrokenResourceError:
            self.ended = True
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest

    async def frame(self) -> Frame | None:
        """The next frame from the server; None once it closed the connection."""
        while True:
            events = cast(list[Frame], self._frames.events_received())
            if events:
                assert len(events) == 1, events
                return events[0]
            if self.buffer:
                self._frames.receive_data(bytes(self.buffer))
                self.buffer.clear()
                continue
            if self.ended or not await self._more():
                return None

    async def message(self) -> dict[str, Any]:
        """The next data message, as JSON (a single frame: the tests make no batches)."""
        frame = await self.frame()
        assert frame is not None, "the server closed the connection"
        assert frame.opcode is OP_BINARY, frame
        parsed: dict[str, Any] = orjson.loads(frame.data)
        return parsed

    async def close(self, *, answer: bool = True) -> tuple[int, str]:
        """The close frame's code and reason, skipping data frames; answered (unless not
        ``answer``); then the end."""
        while (frame := await self.frame()) is not None:
            if frame.opcode is OP_CLOSE:
                data = bytes(frame.data)
                code, reason = struct.unpack("!H", data[:2])[0], data[2:].decode()
                if answer:
                    with contextlib.suppress(trio.BrokenResourceError):
                        await self.send(masked(OP_CLOSE, data[:2]))
                assert await self.rest() == b"", "nothing follows a close"
                return code, reason
        raise AssertionError("closed without a close frame")

    def reset(self) -> None:
        """Make closing the socket send a reset, as a crashed client's kernel does."""
        self.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def bus_peer(api: Api, *, token: str | None = TOKEN) -> Peer:
    """A peer upgraded to the bus, its hello answered."""
    peer = await Peer.open(api)
    await peer.send(upgrade_head(token=token) + hello())
    await peer.upgraded()
    assert (await peer.message())["result"]["version"] == 1
    return peer


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with serving(service) as api:
        yield api


async def healthy(api: Api) -> None:
    """One /healthz on a connection of its own: the surface still serves."""
    async with await Peer.open(api) as peer:
        await peer.send(HEALTHZ)
        reply = await peer.response()
        assert (reply.status, orjson.loads(reply.body)) == (200, {"status": "alive"})


# -- before the door decides -------------------------------------------------------------------


async def closed_silently_after(api: Api, data: bytes = b"") -> float:
    """Send ``data`` on a connection of its own, then wait: the seconds until the server
    closed it, having answered nothing."""
    async with await Peer.open(api) as peer:
        start = trio.current_time()
        await peer.send(data)
        assert await peer.rest() == b""
        return trio.current_time() - start


async def test_a_client_that_sends_nothing_is_closed_after_keep_alive_timeout(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    assert await closed_silently_after(api) == pytest.approx(KEEP_ALIVE)


async def test_a_bus_line_that_stops_before_it_decides_is_closed_after_keep_alive_timeout(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    # "GET /v1/bus" could still be "GET /v1/busy": the door waits for the whole request line,
    # not for ever.
    assert await closed_silently_after(api, b"GET /v1/bus") == pytest.approx(KEEP_ALIVE)


async def dribble(peer: Peer, data: bytes) -> None:
    """Send ``data`` a byte at a time, each read by the server before the next goes."""
    for i in range(len(data)):
        await peer.send(data[i : i + 1])
        await trio.testing.wait_all_tasks_blocked()


async def test_a_bus_upgrade_dribbled_a_byte_at_a_time_is_served(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await dribble(peer, upgrade_head())
        await peer.upgraded()
        await dribble(peer, hello(7))
        answer = await peer.message()
        assert (answer["frame"], answer["req"]) == ("result", 7)


async def test_a_request_dribbled_a_byte_at_a_time_reaches_hypercorn(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await dribble(peer, HEALTHZ)
        reply = await peer.response()
        assert (reply.status, reply.body) == (200, b'{"status":"alive"}')


# -- near misses of the bus line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (upgrade_head("/v1/busy"), 404, "not_found"),
        (upgrade_head("/v1/bus/x"), 404, "not_found"),
        (upgrade_head("/v1/bus/"), 404, "not_found"),
        (upgrade_head("//v1/bus"), 404, "not_found"),
        (upgrade_head(method="POST"), 404, "not_found"),
        (b"POST /v1/bus HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found"),
        (b"GET /v1/busy HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
    ],
    ids=["busy", "bus-slash-x", "bus-slash", "double-slash", "post-upgrade", "post", "get-busy"],
)
async def test_near_misses_of_the_bus_line_go_to_hypercorn(
    api: Api, request_bytes: bytes, status: int, code: str
) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(request_bytes)
        reply = await peer.response()
        assert reply.error() == (status, code)
    await healthy(api)


async def test_a_percent_encoded_bus_path_on_a_fresh_connection_is_the_bus(api: Api) -> None:
    # Hypercorn decodes the path: the door must too, or hypercorn would get the upgrade and
    # tell a fresh connection it needs a connection of its own.
    async with await Peer.open(api) as peer:
        await peer.send(upgrade_head("/v1/%62us") + hello())
        await peer.upgraded()
        assert (await peer.message())["frame"] == "result"


async def test_a_lower_case_get_of_the_bus_is_refused_as_not_http_and_closed(api: Api) -> None:
    # Methods are case-sensitive (RFC 9110): ``get`` is no GET. The door still takes it (as
    # hypercorn would route it to the bus), so the answer says what is wrong, not "open a new
    # connection".
    async with await Peer.open(api) as peer:
        await peer.send(upgrade_head(method="get"))
        reply = await peer.response()
        assert reply.status == 400
        assert b"not a valid HTTP/1.1 request" in reply.body
        assert await peer.rest() == b""


async def test_a_plain_get_of_the_bus_is_told_to_upgrade_and_closed(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(b"GET /v1/bus HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await peer.response()
        assert reply.status == 426
        assert reply.headers["upgrade"] == "websocket"
        assert reply.headers["connection"] == "close"
        assert reply.body.startswith(b"Failed to open a WebSocket connection")
        assert await peer.rest() == b""


async def test_a_bus_upgrade_with_a_query_is_the_bus(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(upgrade_head("/v1/bus?client=x") + hello())
        await peer.upgraded()
        assert (await peer.message())["frame"] == "result"


# -- the upgrade's head ------------------------------------------------------------------------


async def test_a_head_over_64_kib_that_never_ends_gets_400_at_once(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    # Exactly one byte over the limit: the server reads all of it, so its close is a FIN and
    # the 400 is not lost to a reset.
    start = trio.current_time()
    line = b"GET /v1/bus HTTP/1.1\r\nX-Pad: "
    async with await Peer.open(api) as peer:
        await peer.send(line + b"a" * (64 * 1024 + 1 - len(line)))
        reply = await peer.response()
        assert reply.status == 400
        assert b"not a valid HTTP/1.1 request" in reply.body
        assert await peer.rest() == b""
    assert trio.current_time() == start, "refused as soon as it passed the limit"


@pytest.mark.parametrize(
    "head",
    [
        upgrade_head(fields=[f"X-Header-{i}: {i}" for i in range(200)]),
        upgrade_head(fields=["X-No-Colon"]),
        upgrade_head().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        upgrade_head(fields=["Content-Length: 0"]),
    ],
    ids=["200-headers", "header-without-colon", "http-1.0", "content-length"],
)
async def test_an_unparseable_bus_head_gets_400_and_logs_no_error(
    api: Api, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(head)
        reply = await peer.response()
        assert reply.status == 400
        assert await peer.rest() == b""
    await trio.testing.wait_all_tasks_blocked()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_head_that_stalls_midway_is_closed_after_the_handshake_timeout(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    stalled = b"GET /v1/bus HTTP/1.1\r\nHost: x\r\n"
    assert await closed_silently_after(api, stalled) == pytest.approx(HANDSHAKE_SECONDS)


async def test_a_head_dribbled_past_the_handshake_timeout_is_closed_then(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    # A header every 3 s never leaves the connection idle for long: the bound is on the
    # whole head, not on each pause.
    async def slowly(peer: Peer) -> None:
        for i in range(100):
            await trio.sleep(3)
            await peer.send(f"X-Slow-{i}: {i}\r\n".encode())

    async with await Peer.open(api) as peer, trio.open_nursery() as nursery:
        start = trio.current_time()
        await peer.send(b"GET /v1/bus HTTP/1.1\r\n")
        nursery.start_soon(slowly, peer)
        assert await peer.rest() == b""
        assert trio.current_time() - start == pytest.approx(HANDSHAKE_SECONDS)
        nursery.cancel_scope.cancel()


# -- after the upgrade: frames -----------------------------------------------------------------


async def test_garbage_after_a_good_upgrade_closes_with_1002(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(upgrade_head())
        await peer.upgraded()
        await peer.send(b"this is not a websocket frame\r\n")
        code, _ = await peer.close()
        assert code == 1002
    await healthy(api)


async def test_two_upgrades_in_one_segment_serve_the_first_and_close_on_the_second(
    api: Api,
) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(upgrade_head() + upgrade_head())
        await peer.upgraded()
        assert await peer.close() == (1002, "invalid opcode")


async def test_an_upgrade_with_frames_in_the_same_segment_reads_the_frames(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(upgrade_head() + hello(1) + hello(2) + masked(OP_BINARY, b"{"))
        await peer.upgraded()
        assert [(await peer.message())["req"] for _ in range(2)] == [1, 2]
        assert (await peer.message())["code"] == "not_json"
        await peer.send(masked(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        assert await peer.close() == (1000, "bye")


@pytest.mark.parametrize(
    "frame",
    [
        Frame(OP_BINARY, orjson.dumps({"op": "hello", "req": 1})).serialize(mask=False),
        Frame(OP_TEXT, b"{}").serialize(mask=False),
        Frame(OP_PING, b"unmasked").serialize(mask=False),
    ],
    ids=["binary", "text", "ping"],
)
async def test_unmasked_frames_from_the_client_close_with_1002(api: Api, frame: bytes) -> None:
    async with await bus_peer(api) as peer:
        await peer.send(frame)
        assert await peer.close() == (1002, "incorrect masking")


@pytest.mark.parametrize(
    "length", [MAX_MESSAGE + 1, 2**32, 2**63 - 1], ids=["16MiB+1", "4GiB", "2**63-1"]
)
async def test_a_frame_header_claiming_a_huge_length_closes_with_1009_at_once(
    api: Api, service: Service, length: int, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    async with await bus_peer(api) as peer:
        await peer.send(huge_header(length) + b"\x00" * 100)
        code, _ = await peer.close()
        assert code == 1009
    assert trio.current_time() == start, "without waiting for a length that never comes"
    await trio.testing.wait_all_tasks_blocked()
    assert gateway_counts(service).connections == 0


async def test_a_fragment_header_taking_the_message_over_16_mib_closes_with_1009_at_once(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    async with await bus_peer(api) as peer:
        await peer.send(masked(OP_BINARY, b"x" * HALF, fin=False))
        await peer.send(huge_header(HALF, opcode=0x80))
        with trio.fail_after(60):
            code, _ = await peer.close()
        assert code == 1009


async def test_a_message_of_exactly_16_mib_is_read_and_refused_with_an_error_frame(
    api: Api,
) -> None:
    async with await bus_peer(api) as peer:
        await peer.send(masked(OP_BINARY, b" " * MAX_MESSAGE))
        answer = await peer.message()
        assert (answer["frame"], answer["code"]) == ("error", "frame_too_large")
        await peer.send(hello(9))
        assert (await peer.message())["req"] == 9


async def test_a_ping_from_the_client_is_answered_with_its_pong(api: Api) -> None:
    async with await bus_peer(api) as peer:
        await peer.send(masked(OP_PING, b"are you there") + hello(3))
        pong = await peer.frame()
        assert pong is not None
        assert (pong.opcode, pong.data) == (OP_PONG, b"are you there")
        assert (await peer.message())["req"] == 3


async def test_a_fragmented_request_between_pings_is_joined(api: Api) -> None:
    request = orjson.dumps({"op": "hello", "req": 4, "versions": [1]})
    async with await bus_peer(api) as peer:
        await peer.send(
            masked(OP_BINARY, request[:5], fin=False)
            + masked(OP_PING, b"1")
            + masked(OP_CONT, request[5:])
        )
        pong = await peer.frame()
        assert pong is not None
        assert (pong.opcode, pong.data) == (OP_PONG, b"1")
        assert (await peer.message())["req"] == 4


async def test_a_close_from_the_client_is_echoed_and_the_connection_ends(
    api: Api, service: Service
) -> None:
    async with await bus_peer(api) as peer:
        await peer.send(masked(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        assert await peer.close() == (1000, "bye")
    await trio.testing.wait_all_tasks_blocked()
    assert gateway_counts(service).connections == 0


# -- hypercorn's side of the door --------------------------------------------------------------


async def test_two_pipelined_requests_in_one_segment_are_both_answered(api: Api) -> None:
    async with await Peer.open(api) as peer:
        await peer.send(HEALTHZ + b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second = await peer.response(), await peer.response()
        assert (first.status, orjson.loads(first.body)) == (200, {"status": "alive"})
        assert (second.status, orjson.loads(second.body)["status"]) == (200, "ready")


async def test_a_keep_alive_connection_serves_requests_in_turn_then_idles_out(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    async with await Peer.open(api) as peer:
        for _ in range(3):
            await peer.send(HEALTHZ)
            assert (await peer.response()).status == 200
        start = trio.current_time()
        assert await peer.rest() == b""
        assert trio.current_time() - start == pytest.approx(KEEP_ALIVE)


async def bus_requests_counted(api: Api) -> float:
    async with await Peer.open(api) as peer:
        await peer.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        text = (await peer.response()).body.decode()
    series = 'rtbus_http_requests_total{method="GET",route="/v1/bus",status="400"} '
    lines = [line for line in text.splitlines() if line.startswith(series)]
    return float(lines[0].rpartition(" ")[2]) if lines else 0.0


@pytest.mark.parametrize("pipelined", [False, True], ids=["in-turn", "same-segment"])
async def test_a_bus_upgrade_after_a_request_on_the_same_connection_is_refused(
    api: Api, service: Service, pipelined: bool
) -> None:
    async with await Peer.open(api) as peer:
        if pipelined:
            await peer.send(HEALTHZ + upgrade_head())
            assert (await peer.response()).status == 200
        else:
            await peer.send(HEALTHZ)
            assert (await peer.response()).status == 200
            await peer.send(upgrade_head())
        refused = await peer.response()
        assert refused.error() == (400, "bus_needs_own_connection")
        assert refused.headers["content-type"] == "application/json"
    assert await bus_requests_counted(api) == 1
    assert gateway_counts(service).connections == 0
    async with await bus_peer(api):  # a connection of its own is served
        pass


BIG_RAW = orjson.dumps({"type": "test.big", "event_id": "evt", "pad": "x" * 60_000})
BIG_SUBSCRIBE = {"op": "subscribe", "req": 2, "sub": "a", "types": ["test.*"]}
BIG_SUBSCRIBE |= {"maxsize": 1000, "credit": 1000}  # room for every event published


# -- one misbehaving client among many ---------------------------------------------------------


async def test_misbehaving_clients_cost_the_others_nothing(
    api: Api, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    # Every kind of bad client, all holding their connections at once.
    silent = await Peer.open(api)
    undecided = await Peer.open(api)
    await undecided.send(b"GET /v1/b")
    stalled_head = await Peer.open(api)
    await stalled_head.send(b"GET /v1/bus HTTP/1.1\r\nHost: x\r\n")
    stalled_http = await Peer.open(api)
    await stalled_http.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    half_frame = await bus_peer(api)
    await half_frame.send(huge_header(1000)[:-4] + b"\x00\x00")  # mid masking key
    not_reading = await bus_peer(api)  # its events pile up, unread, far past the buffers
    await not_reading.send(masked(OP_BINARY, orjson.dumps(BIG_SUBSCRIBE)))
    assert (await not_reading.message())["req"] == 2
    for _ in range(400):
        await service.bus.publish("s1", "test.big", ev(), received_at=0.0, raw=BIG_RAW)
    start = trio.current_time()

    async def well_behaved(n: int) -> None:
        await healthy(api)
        async with await bus_peer(api) as peer:
            await peer.send(hello(100 + n))
            assert (await peer.message())["req"] == 100 + n

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(well_behaved, n)
    assert trio.current_time() == start, "no one waited for a timeout"

    # The bad ones end on their own timeouts, or hold only their own connection.
    async def closed_after(peer: Peer, seconds: float) -> None:
        assert await peer.rest() == b""
        assert trio.current_time() - start == pytest.approx(seconds)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(closed_after, silent, KEEP_ALIVE)
        nursery.start_soon(closed_after, undecided, KEEP_ALIVE)
        nursery.start_soon(closed_after, stalled_http, KEEP_ALIVE)
        nursery.start_soon(closed_after, stalled_head, HANDSHAKE_SECONDS)
    for peer in (silent, undecided, stalled_head, stalled_http):
        await trio.aclose_forcefully(peer.stream)
    assert gateway_counts(service).connections == 2  # half_frame, not_reading: still open
    half_frame.reset()
    not_reading.reset()
    await trio.aclose_forcefully(half_frame.stream)
    await trio.aclose_forcefully(not_reading.stream)
    await trio.testing.wait_all_tasks_blocked()
    assert gateway_counts(service).connections == 0
    await healthy(api)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
async def test_no_connection_leaks_a_socket_whatever_it_sent(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    await healthy(api)
    async with await bus_peer(api):
        pass
    await trio.testing.wait_all_tasks_blocked()
    before = open_descriptors()
    openings = [
        b"",
        b"GET /v1/bus",
        HEALTHZ,
        b"GET /v1/bus HTTP/1.1\r\nHost: x\r\n\r\n",
        upgrade_head() + b"garbage",
        upgrade_head(token=WRONG),
        upgrade_head() + hello(),
        upgrade_head("/v1/busy"),
        HEALTHZ + upgrade_head(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello's first bytes
    ]
    for opening in openings:
        for vanish in ("close", "reset"):
            peer = await Peer.open(api)
            await peer.send(opening)
            if vanish == "reset":
                peer.reset()
            await trio.aclose_forcefully(peer.stream)
    # Hypercorn's own connection handler keeps a connection reset under a response open
    # until its idle timer (keep_alive_timeout) ends it: the bound on every one.
    await trio.sleep(KEEP_ALIVE)
    await trio.testing.wait_all_tasks_blocked()
    assert open_descriptors() == before
    await healthy(api)


# -- the client vanishing ----------------------------------------------------------------------


async def test_a_client_that_vanishes_mid_batch_costs_only_its_connection(
    api: Api, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await bus_peer(api)
    await peer.send(masked(OP_BINARY, orjson.dumps(BIG_SUBSCRIBE)))
    assert (await peer.message())["req"] == 2
    for _ in range(400):  # 24 MB: far more than the socket buffers hold
        await service.bus.publish("s1", "test.big", ev(), received_at=0.0, raw=BIG_RAW)
    while len(peer.buffer) < 200_000:  # the forwarding is under way
        assert await peer._more()
    assert service.bus.has_subscriber("s1", "test.big")
    peer.reset()
    await trio.aclose_forcefully(peer.stream)
    await trio.testing.wait_all_tasks_blocked()
    assert gateway_counts(service).connections == 0
    assert not service.bus.has_subscriber("s1", "test.big")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    await healthy(api)
    async with await bus_peer(api):
        pass


async def test_a_refused_client_that_hangs_up_at_once_logs_no_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await Peer.open(api)
    await peer.send(upgrade_head(token=WRONG))
    await trio.aclose_forcefully(peer.stream)
    await trio.testing.wait_all_tasks_blocked()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_refused_client_that_never_answers_the_close_is_dropped_after_the_grace(
    api: Api, autojump_clock: trio.testing.MockClock
) -> None:
    async with await Peer.open(api) as peer:
        start = trio.current_time()
        await peer.send(upgrade_head(token=WRONG))
        await peer.upgraded()
        assert await peer.close(answer=False) == (1008, "the bearer token is not valid")
        assert trio.current_time() - start == pytest.approx(_CLOSE_GRACE)


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        upgrade_head(token=WRONG),
        upgrade_head(token=TOKEN + WRONG),
        upgrade_head(token=None, fields=[f"Authorization: {WRONG}"]),
        upgrade_head(token=WRONG, fields=["Sec-WebSocket-Version: 8"]),
        upgrade_head("/v1/busy", token=WRONG),
        HEALTHZ.replace(b"\r\n\r\n", f"\r\nAuthorization: Bearer {WRONG}\r\n\r\n".encode()),
    ],
    ids=["wrong", "token-prefix", "no-bearer", "bad-version", "not-the-bus", "probe"],
)
async def test_no_log_line_carries_a_token_sent(
    api: Api, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with await Peer.open(api) as peer:
        await peer.send(head)
        reply = await peer.response()
        if reply.status == 101:
            code, _ = await peer.close()
            assert code == 1008
    await trio.testing.wait_all_tasks_blocked()
    assert caplog.records, "the surface logs something at DEBUG"
    assert TOKEN not in caplog.text
    assert WRONG not in caplog.text


# -- what the review found ---------------------------------------------------------------------


async def test_a_token_with_a_byte_beyond_ascii_is_refused_with_1008_and_logs_no_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    head = upgrade_head(token=None).replace(
        b"\r\n\r\n", b"\r\nAuthorization: Bearer t\xe9st\r\n\r\n"
    )
    async with await Peer.open(api) as peer:
        await peer.send(head)
        await peer.upgraded()
        assert await peer.close() == (1008, "the bearer token is not valid")
    await trio.testing.wait_all_tasks_blocked()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_an_upgrades_repr_never_shows_the_token() -> None:
    request = Request("/v1/bus", Headers([("Authorization", f"Bearer {TOKEN}")]))
    wire = Wire(trio.testing.memory_stream_pair()[0], ServerProtocol(), WIRE_OPTIONS)
    assert TOKEN not in repr(Upgraded.of(wire, request))


async def test_the_any_address_of_ipv6_serves_ipv4_too(service: Service) -> None:
    async with serving(service, HttpConfig(host="::", port=0, token=TOKEN)) as api:
        assert api.address.host == "::"
        await healthy(api)  # over 127.0.0.1


async def test_a_draining_service_closes_every_gateway_connection_with_1001(
    service: Service,
) -> None:
    # As ``rtbus serve`` stops: the service drains, then its HTTP surface is cancelled at
    # once. A connection with no subscription has no forwarder to say it: the endpoint does.
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_http, service, HttpConfig(port=0, token=TOKEN))
        peer = await bus_peer(Api(address))
        await service.aclose()
        nursery.cancel_scope.cancel()
    async with peer:
        assert await peer.close() == (1001, "the service is shutting down")


async def test_a_client_that_stopped_reading_holds_no_shutdown_up(service: Service) -> None:
    # Its socket full, a forwarder is stuck writing to it: cancelling the surface must
    # abort that write (the wire then aborts the stream), not wait for a reader that never
    # comes.
    with trio.fail_after(30):  # without the fix, the surface's cancellation never ends
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_http, service, HttpConfig(port=0, token=TOKEN))
            peer = await bus_peer(Api(address))
            peer.stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            subscribe = {"op": "subscribe", "req": 2, "sub": "a", "types": ["test.*"]}
            await peer.send(masked(OP_TEXT, orjson.dumps(subscribe | {"credit": 1000})))
            assert (await peer.message())["req"] == 2
            raw = orjson.dumps({"type": "test.big", "delta": "A" * 60_000})
            for _ in range(64):  # megabytes: far more than both sockets' buffers hold
                service.bus.publish_nowait("s1", "test.big", ev(), received_at=0.0, raw=raw)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    await trio.aclose_forcefully(peer.stream)


class VanishingClient(trio.abc.Stream):
    """A client whose upgrade request arrives whole, and which is gone when the answer goes
    out."""

    def __init__(self, head: bytes) -> None:
        self._head = head

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        head, self._head = self._head, b""
        return head

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.BrokenResourceError("the client is gone")

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(("head", "outcome"), [(upgrade_head(), None), (HEALTHZ, Refused(426))])
async def test_an_upgrade_whose_client_is_gone_is_refused_only_if_its_answer_refused_it(
    head: bytes, outcome: Refused | None
) -> None:
    # A good upgrade whose 101 found no one is not a refusal (the refusals metric counts it).
    assert await upgrade(VanishingClient(head), b"") == outcome
