"""The forwarder gathers what the publishers bring before it writes, within bounds: a burst
goes in few messages, but no event waits for a whole batch on a busy loop, each frame's
``age`` runs until it is written, and an unsubscribe never counts as delivered what it kept
from being written."""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
import pytest
import trio
import trio.testing
from support.events import ev
from support.gateway import GatewayApp, client
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from rtbus.gateway import PROTOCOL_VERSION, parse_server_frames
from rtbus.service import Service
from rtbus.service._gateway import (
    _MESSAGE_BYTES,
    _WRITE_RATE,
    _WRITE_TIMEOUT,
    _Connection,
    gateway_counts,
)
from rtbus.service._gateway_socket import WIRE_OPTIONS
from rtbus.transport import Wire

BUSY_TURN = 0.002  # seconds of another task's work in every scheduler turn


async def busy(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Another task that holds the loop for BUSY_TURN of every turn, as a loaded service's
    other sessions do: the CPU it takes, not a wait for anything."""
    task_status.started()
    while True:
        time.sleep(BUSY_TURN)  # noqa: ASYNC251 -- holding the loop is the point
        await trio.lowlevel.checkpoint()


async def test_a_trickle_on_a_busy_loop_goes_out_within_the_gather_bound(
    gateway: GatewayApp, service: Service
) -> None:
    # One envelope per scheduler turn for 64 turns: gathering by turns alone would hold the
    # first for all 64 (128 ms here), and frames encoded when taken would say they were
    # younger than they were when written.
    published: dict[int, float] = {}
    arrived: dict[int, tuple[float, float]] = {}  # seq: (arrival, the client's received_at)
    all_in = trio.Event()
    async with (
        client(gateway) as bus,
        bus.subscribe(types="test.*", maxsize=512) as sub,
        trio.open_nursery() as nursery,
    ):

        async def consume() -> None:
            for _ in range(64):
                envelope = await sub.receive()
                arrived[envelope.seq] = (trio.current_time(), envelope.received_at)
            all_in.set()

        nursery.start_soon(consume)
        await nursery.start(busy)
        for _ in range(64):
            now = trio.current_time()
            raw = orjson.dumps({"type": "test.x", "event_id": "evt"})
            envelope = await service.bus.publish("s1", "test.x", ev(), received_at=now, raw=raw)
            published[envelope.seq] = now
        await all_in.wait()
        nursery.cancel_scope.cancel()
    # Each event reaches the subscriber a few turns after it was published, not 64.
    assert max(arrived[seq][0] - published[seq] for seq in published) < 25 * BUSY_TURN
    # The client places each on its clock as arrival - age: with age counted to the write,
    # that is the publish time plus the transit, never plus the gathering.
    late = [arrived[seq][1] - published[seq] for seq in published]
    assert min(late) >= 0
    assert max(late) < 25 * BUSY_TURN


class Recorder(trio.abc.SendStream):
    """The client's side of one gateway connection, in memory: requests go in as a client's
    (masked) frames, and every message the connection writes is kept (so a test reads every
    frame, in order). ``wire`` is the connection's end."""

    def __init__(self) -> None:
        self._requests = trio.testing.MemoryReceiveStream()
        self._client = ClientProtocol(
            parse_uri("ws://test/v1/bus"), state=State.OPEN, max_size=None
        )
        self.sent: list[bytes] = []
        server = ServerProtocol(state=State.OPEN, max_size=None)
        self.wire = Wire(trio.StapledStream(self, self._requests), server, WIRE_OPTIONS)

    def ask(self, request: dict[str, Any]) -> None:
        self._client.send_binary(orjson.dumps(request))
        self._requests.put_data(b"".join(self._client.data_to_send()))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self._client.receive_data(bytes(data))
        frames = cast(list[Frame], self._client.events_received())
        self.sent += [bytes(frame.data) for frame in frames]

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def frames(self) -> list[Any]:
        return [frame for message in self.sent for frame in parse_server_frames(message)]


async def test_an_unsubscribe_while_gathering_reports_only_what_was_written(
    service: Service,
) -> None:
    # The publish wakes the forwarder and the unsubscribe wakes the reader in the same turn;
    # trio runs them in either order, so some rounds land the unsubscribe while the
    # forwarder holds the envelope it took: the answer must not count it as delivered.
    for round in range(24):
        ends = Recorder()
        connection = _Connection(service, ends.wire, gateway_counts(service), start_timeout=5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.serve)
            ends.ask({"op": "hello", "req": 1, "versions": [PROTOCOL_VERSION]})
            ends.ask({"op": "subscribe", "req": 2, "sub": "a", "types": ["test.*"], "credit": 8})
            await trio.testing.wait_all_tasks_blocked()
            raw = orjson.dumps({"type": "test.x", "event_id": "evt"})
            service.bus.publish_nowait(f"s{round}", "test.x", ev(), received_at=0.0, raw=raw)
            ends.ask({"op": "unsubscribe", "req": 3, "sub": "a"})
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        frames = ends.frames()
        answer = next(f for f in frames if getattr(f, "req", None) == 3)
        written = [f for f in frames if getattr(f, "sub", None) == "a" and hasattr(f, "seq")]
        assert answer.result["delivered"] == len(written), round


BIG = orjson.dumps({"type": "test.x", "event_id": "evt", "delta": "A" * 20_000})


async def connected(
    service: Service, ends: Recorder, nursery: trio.Nursery, *subscribes: dict[str, Any]
) -> _Connection:
    """A connection to ``ends``, said hello to, with ``subscribes`` asked (default: ``a``,
    ``test.*``, credit 64), and every task blocked again."""
    connection = _Connection(service, ends.wire, gateway_counts(service), start_timeout=5)
    nursery.start_soon(connection.serve)
    ends.ask({"op": "hello", "req": 1, "versions": [PROTOCOL_VERSION]})
    for req, subscribe in enumerate(subscribes or ({"sub": "a", "credit": 64},), start=2):
        ends.ask({"op": "subscribe", "req": req, "types": ["test.*"], **subscribe})
    await trio.testing.wait_all_tasks_blocked()
    return connection


async def burst_of_big_events(
    service: Service, ends: Recorder, nursery: trio.Nursery, raw: bytes = BIG
) -> None:
    """Subscription ``a`` on a connection to ``ends``, then 24 events of ``raw`` (audio-sized:
    about 480 KB in all) published at once, and every task blocked again."""
    await connected(service, ends, nursery)
    for _ in range(24):
        service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=raw)
    await trio.testing.wait_all_tasks_blocked()


async def test_a_large_batch_goes_out_in_messages_of_bounded_size(service: Service) -> None:
    # 24 audio-sized events taken at once: one message would hold them all (about 480 KB);
    # they go in several of about _MESSAGE_BYTES, every frame once and in order.
    ends = Recorder()
    small = orjson.dumps({"type": "test.x", "event_id": "evt"})
    async with trio.open_nursery() as nursery:
        await burst_of_big_events(service, ends, nursery)
        batches = list(ends.sent[2:])
        for _ in range(24):
            service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=small)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert 3 <= len(batches) <= 5
    assert all(len(message) < _MESSAGE_BYTES + 2 * len(BIG) for message in batches)
    assert len(ends.sent) == 2 + len(batches) + 1  # the small ones: one message
    seqs = [f.seq for f in ends.frames() if getattr(f, "sub", None) == "a" and hasattr(f, "seq")]
    assert seqs == sorted(seqs)
    assert len(seqs) == len(set(seqs)) == 48


class SlowSocket(Recorder):
    """A connection whose socket is full: each large write waits until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) > 10_000:
            await self.release.wait()
        await super().send_all(data)


# Events big enough that the batch takes several writes of about _WRITE_BYTES (9.6 MB).
HUGE = orjson.dumps({"type": "test.x", "event_id": "evt", "delta": "A" * 400_000})


async def test_an_unsubscribe_during_a_batchs_writes_stops_it_and_counts_what_went(
    service: Service,
) -> None:
    ends = SlowSocket()
    async with trio.open_nursery() as nursery:
        await burst_of_big_events(service, ends, nursery, HUGE)  # the first write is on its way
        ends.ask({"op": "unsubscribe", "req": 3, "sub": "a"})
        # The id is free again: a new "a" that wants other events.
        ends.ask({"op": "subscribe", "req": 4, "sub": "a", "types": ["other.*"], "credit": 64})
        await trio.testing.wait_all_tasks_blocked()
        ends.release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    frames = ends.frames()
    answer = next(i for i, f in enumerate(frames) if getattr(f, "req", None) == 3)
    events = [
        i for i, f in enumerate(frames) if getattr(f, "sub", None) == "a" and hasattr(f, "seq")
    ]
    assert 0 < len(events) < 24, "the first write went out, and not the rest"
    assert max(events) < answer  # nothing of the old "a" after its answer, nor under the new
    assert frames[answer].result["delivered"] == len(events)


async def test_a_burst_over_several_turns_is_absorbed_within_the_maxsize(
    service: Service,
) -> None:
    # 40 envelopes a turn, while the forwarder gathers, into a service-side buffer of 128,
    # as rtbus.connect(maxsize=256) asks: each turn's are taken as they come, so the buffer
    # keeps its room for the next, and what the credit leaves waits there, none dropped.
    ends = Recorder()
    raw = orjson.dumps({"type": "test.x", "event_id": "evt"})
    async with trio.open_nursery() as nursery:
        subscribe = {"sub": "a", "credit": 128, "maxsize": 128, "overflow": "drop_oldest"}
        connection = await connected(service, ends, nursery, subscribe)
        subscription = connection._subscriptions["a"].subscription
        service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=raw)
        forwarder = connection._subscriptions["a"]
        while not forwarder._held:  # it took the first, and gathers
            await trio.lowlevel.checkpoint()
        for _ in range(4):
            for _ in range(40):
                service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=raw)
            await trio.lowlevel.checkpoint()
        await trio.testing.wait_all_tasks_blocked()
        statistics = subscription.statistics()
        nursery.cancel_scope.cancel()
    assert statistics.dropped == 0
    sent = [f for f in ends.frames() if getattr(f, "sub", None) == "a" and hasattr(f, "seq")]
    assert len(sent) + statistics.queued == 161


class CountedWrites(Recorder):
    """A Recorder that counts the connection's writes (each one ``send_all``)."""

    writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await super().send_all(data)


async def test_a_batch_of_several_messages_goes_in_one_write(service: Service) -> None:
    # A write is a scheduler turn, long on a loaded service: the messages of a batch share one.
    ends = CountedWrites()
    async with trio.open_nursery() as nursery:
        await burst_of_big_events(service, ends, nursery)
        nursery.cancel_scope.cancel()
    messages = ends.sent[2:]
    assert len(messages) >= 3
    assert ends.writes == 2 + 1  # hello, subscribe, and the whole batch


async def test_an_events_age_runs_until_its_write_starts(
    service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    # Subscription "b"'s event is built into a write only once the write lock is its turn:
    # queued behind "a"'s write for a second, it says it is a second older.
    ends = SlowSocket()
    small = orjson.dumps({"type": "other.x", "event_id": "evt"})
    async with trio.open_nursery() as nursery:
        a, b = {"sub": "a", "credit": 64}, {"sub": "b", "types": ["other.*"], "credit": 8}
        await connected(service, ends, nursery, a, b)
        for _ in range(24):
            service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=BIG)
        await trio.testing.wait_all_tasks_blocked()  # "a"'s write is stuck
        published = trio.current_time()
        service.bus.publish_nowait("s2", "other.x", ev(), received_at=published, raw=small)
        await trio.sleep(1)
        ends.release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    (frame,) = [f for f in ends.frames() if getattr(f, "sub", None) == "b" and hasattr(f, "seq")]
    assert frame.age >= 1


async def test_a_client_that_stops_reading_loses_its_connection_at_the_write_timeout(
    service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    # Its write never goes out: after _WRITE_TIMEOUT the connection ends, counted, and what
    # it held goes with its subscriptions.
    ends = SlowSocket()  # never released
    counts = gateway_counts(service)
    stalled = counts.stalled
    connection = _Connection(service, ends.wire, counts, start_timeout=5)
    ends.ask({"op": "hello", "req": 1, "versions": [PROTOCOL_VERSION]})
    ends.ask({"op": "subscribe", "req": 2, "sub": "a", "types": ["test.*"], "credit": 64})

    async def publish_when_subscribed() -> None:
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(24):
            service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=BIG)

    with trio.fail_after(100):  # rather than hang, should it never end (virtual seconds)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish_when_subscribed)
            started = trio.current_time()
            await connection.serve()
    # The timeout, and the time the write's size allows at _WRITE_RATE (24 of 20 KB).
    elapsed = trio.current_time() - started
    assert elapsed == pytest.approx(_WRITE_TIMEOUT + len(BIG) * 24 / _WRITE_RATE, abs=1)
    assert counts.stalled == stalled + 1
    assert service.bus.statistics().subscriptions == 0


class Jammed(Recorder):
    """Every write blocks once ``jam`` is set (the client's receive window is full)."""

    jam = False

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.jam:
            await self.release.wait()
        await super().send_all(data)


async def test_a_write_stuck_behind_a_jammed_pong_ends_the_connection_too(
    service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    # The client's ping jams the reader's pong, which holds the wire's own send lock: the
    # forwarder's write times out before it starts, and the connection still ends.
    ends = Jammed()
    counts = gateway_counts(service)
    stalled = counts.stalled
    async with trio.open_nursery() as nursery:
        await connected(service, ends, nursery)
        ends.jam = True
        ends._client.send_ping(b"k")
        ends._requests.put_data(b"".join(ends._client.data_to_send()))
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            service.bus.publish_nowait("s1", "test.x", ev(), received_at=0.0, raw=BIG)
        await trio.sleep(_WRITE_TIMEOUT + 3 * len(BIG) / _WRITE_RATE + 1)
        assert counts.stalled == stalled + 1
        assert ends.wire.done
        nursery.cancel_scope.cancel()
