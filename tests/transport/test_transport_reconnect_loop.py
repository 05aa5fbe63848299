"""The parts together, as a session actor will use them: reconnect with backoff, flush in order."""

from __future__ import annotations

import random

import attrs
import orjson
import pytest
import trio
import trio.testing
import trio_websocket
from transport_upstream import start_upstream

from rtbus._backoff import Backoff
from rtbus.protocol import RealtimeError
from rtbus.transport import (
    ConnectionRejectedError,
    ConnectTarget,
    ReconnectPolicy,
    SendQueue,
    SendQueueClosed,
    open_target,
)


async def run_session(queue: SendQueue, policy: ReconnectPolicy, target: ConnectTarget) -> int:
    """Connect, attach, read until the end; reconnect while the policy says so.

    Returns how many connections were made.
    """
    attempts = policy.attempts(random.Random(0))
    connections = 0
    while True:
        errors: list[RealtimeError] = []
        try:
            async with open_target(target) as rt:
                connections += 1
                attempts.connected(trio.current_time())
                rt.on("error", errors.append)
                queue.attach(rt)
                await rt.dispatch_events()
                queue.detach()
        except RealtimeError as exc:  # Could not connect.
            errors.append(exc)
        if not errors:
            return connections
        delay = attempts.failed(errors[-1], trio.current_time())
        if delay is None:
            queue.fail(errors[-1])
            return connections
        await trio.sleep(delay)
        target = await policy.target(attempts.attempt, target)


@attrs.define
class Switchboard:
    """An upstream whose connections record frames and close when the test says."""

    received: list[list[str]] = attrs.Factory(list)
    close: trio.MemorySendChannel[int] | None = None

    async def script(self, ws: trio_websocket.WebSocketConnection) -> None:
        frames: list[str] = []
        self.received.append(frames)
        send, receive = trio.open_memory_channel[int](1)
        self.close = send
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_record, ws, frames)
            code = await receive.receive()
            await ws.aclose(code)
            nursery.cancel_scope.cancel()

    async def hang_up(self, code: int) -> None:
        """Close the current connection with ``code`` and let everyone see it."""
        assert self.close is not None
        await self.close.send(code)
        await trio.testing.wait_all_tasks_blocked()


async def _record(ws: trio_websocket.WebSocketConnection, frames: list[str]) -> None:
    try:
        while True:
            frames.append(orjson.loads(await ws.get_message())["event_id"])
    except trio_websocket.ConnectionClosed:
        return


def clear(n: int) -> dict[str, str]:
    return {"type": "input_audio_buffer.clear", "event_id": f"c{n}"}


async def test_events_sent_through_a_reconnect_arrive_in_order(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    board = Switchboard()
    upstream = await start_upstream(nursery, board.script)
    queue = SendQueue()
    nursery.start_soon(queue.run)
    policy = ReconnectPolicy(backoff=Backoff(base=1, jitter=0))
    target = ConnectTarget.from_config(upstream.config(), "gpt-realtime")
    async with trio.open_nursery() as inner:
        inner.start_soon(run_session, queue, policy, target)
        for n in range(2):
            await queue.send(clear(n))
        await board.hang_up(1012)
        assert not queue.statistics().attached
        for n in range(2, 5):
            inner.start_soon(queue.send, clear(n))
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(1)  # The backoff; then the reconnect and the flush.
        await trio.testing.wait_all_tasks_blocked()
        assert queue.statistics().queued == 0
        await board.hang_up(1000)
    assert board.received == [["c0", "c1"], ["c2", "c3", "c4"]]
    assert len(upstream.handshakes) == 2


async def test_a_fatal_reconnect_failure_fails_every_waiting_sender(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    board = Switchboard()
    upstream = await start_upstream(nursery, board.script)
    queue = SendQueue()
    nursery.start_soon(queue.run)
    target = ConnectTarget.from_config(upstream.config(), "gpt-realtime")
    failures: list[SendQueueClosed] = []

    async def sender(n: int) -> None:
        try:
            await queue.send(clear(n))
        except SendQueueClosed as exc:
            failures.append(exc)

    async with trio.open_nursery() as inner:
        inner.start_soon(run_session, queue, ReconnectPolicy(), target)
        await queue.send(clear(0))
        upstream.reject = (401, b'{"error": {"code": "invalid_api_key"}}')
        await board.hang_up(1011)
        for n in (1, 2):
            inner.start_soon(sender, n)
    assert board.received == [["c0"]]
    assert [type(f.__cause__) for f in failures] == [ConnectionRejectedError] * 2
    assert all("HTTP 401" in str(f) for f in failures)
    with pytest.raises(SendQueueClosed):
        await queue.send(clear(3))
