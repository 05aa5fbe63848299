"""SendQueue: order, full, fail, withdraw, and the flush after a reconnect, on real connections."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing
from transport_upstream import recording

from rtbus.protocol import ConfigError, ProtocolError
from rtbus.transport import ConnectionRejectedError, SendQueue, SendQueueClosed, SendQueueFull


def clear(n: int) -> dict[str, str]:
    return {"type": "input_audio_buffer.clear", "event_id": f"c{n}"}


def ids(frames: list[str | bytes]) -> list[str]:
    return [orjson.loads(frame)["event_id"] for frame in frames]


async def start_senders(
    senders: trio.Nursery, queue: SendQueue, numbers: range, done: list[str]
) -> None:
    """Queue each event in turn from its own task; ``done`` records each return, in order."""

    async def one(n: int) -> None:
        await queue.send(clear(n))
        done.append(f"c{n}")

    for n in numbers:
        senders.start_soon(one, n)
        await trio.testing.wait_all_tasks_blocked()


async def test_waiting_events_flush_in_order_once_attached(nursery: trio.Nursery) -> None:
    queue, received, done = SendQueue(), [], []  # type: ignore[var-annotated]
    nursery.start_soon(queue.run)
    async with recording(nursery, received) as rt, trio.open_nursery() as senders:
        await start_senders(senders, queue, range(5), done)
        assert (queue.statistics().queued, done) == (5, [])
        queue.attach(rt)
    assert ids(received) == [f"c{n}" for n in range(5)]
    assert sorted(done) == [f"c{n}" for n in range(5)]
    assert queue.statistics().sent == 5


async def test_a_reconnect_flushes_what_the_old_connection_did_not_take(
    nursery: trio.Nursery,
) -> None:
    queue, first, second, done = SendQueue(), [], [], []  # type: ignore[var-annotated]
    nursery.start_soon(queue.run)
    async with trio.open_nursery() as senders:
        async with recording(nursery, first) as old:
            queue.attach(old)
            await start_senders(senders, queue, range(3), done)
            await old.aclose()  # Still attached: the writer finds out by trying.
        await start_senders(senders, queue, range(3, 6), done)
        assert not queue.statistics().attached
        async with recording(nursery, second) as new:
            queue.attach(new)
            await trio.testing.wait_all_tasks_blocked()
    assert ids(first) == ["c0", "c1", "c2"]
    assert ids(second) == ["c3", "c4", "c5"]
    assert done == [f"c{n}" for n in range(6)]


async def test_a_full_queue_refuses_at_once() -> None:
    queue = SendQueue(max_size=2)

    async def waiting(n: int) -> None:
        with pytest.raises(SendQueueClosed):
            await queue.send(clear(n))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting, 1)
        nursery.start_soon(waiting, 2)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(SendQueueFull, match="2 events wait"):
            await queue.send(clear(3))
        await queue.aclose()


async def test_fail_tells_every_waiting_and_later_sender() -> None:
    queue = SendQueue()
    errors: list[BaseException] = []

    async def sender(n: int) -> None:
        with pytest.raises(SendQueueClosed) as caught:
            await queue.send(clear(n))
        errors.append(caught.value)

    gave_up = ConnectionRejectedError(401, "bad key")
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(sender, n)
        await trio.testing.wait_all_tasks_blocked()
        queue.fail(gave_up)
    assert len(errors) == 3
    assert all(e.__cause__ is gave_up and "HTTP 401" in str(e) for e in errors)
    with pytest.raises(SendQueueClosed) as caught:
        await queue.send(clear(4))
    assert caught.value.__cause__ is gave_up
    assert queue.statistics().queued == 0


async def test_aclose_tells_waiting_senders_and_stops_the_writer() -> None:
    queue = SendQueue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)

        async def sender() -> None:
            with pytest.raises(SendQueueClosed, match="the session closed"):
                await queue.send(clear(1))

        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        await queue.aclose()
        await queue.aclose()
    assert queue.statistics().closed


async def test_a_cancelled_sender_withdraws_its_event(nursery: trio.Nursery) -> None:
    queue, received = SendQueue(), []  # type: ignore[var-annotated]
    nursery.start_soon(queue.run)
    with trio.move_on_after(0.01):
        await queue.send(clear(1))
    assert queue.statistics().queued == 0
    async with recording(nursery, received) as rt:
        queue.attach(rt)
        await queue.send(clear(2))
    assert ids(received) == ["c2"]


async def test_a_malformed_event_is_refused_before_queueing() -> None:
    queue = SendQueue()
    with pytest.raises(ProtocolError):
        await queue.send({"no": "type"})
    assert queue.statistics().queued == 0


def test_the_size_must_be_a_count() -> None:
    with pytest.raises(ConfigError, match="max_size"):
        SendQueue(max_size=0)


async def test_one_writer_only(nursery: trio.Nursery) -> None:
    queue = SendQueue()
    nursery.start_soon(queue.run)
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(RuntimeError, match="already has a writer"):
        await queue.run()
    await queue.aclose()
