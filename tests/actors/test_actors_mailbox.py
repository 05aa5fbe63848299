"""Mailboxes and the actor context's stop request."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from rtbus.actors import ActorContext, Mailbox, MailboxStatistics


async def test_a_full_mailbox_makes_the_sender_wait() -> None:
    mailbox: Mailbox[int] = Mailbox(2)
    await mailbox.send(1)
    await mailbox.send(2)
    sent = trio.Event()

    async def third() -> None:
        await mailbox.send(3)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(third)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert mailbox.statistics() == MailboxStatistics(
            queued=2, capacity=2, senders_waiting=1, receivers_waiting=0, closed=False
        )
        assert await mailbox.receive() == 1
    assert sent.is_set()
    assert [mailbox.receive_nowait(), mailbox.receive_nowait()] == [2, 3]


def test_send_nowait_refuses_when_full() -> None:
    mailbox: Mailbox[str] = Mailbox(1)
    mailbox.send_nowait("a")
    with pytest.raises(trio.WouldBlock):
        mailbox.send_nowait("b")
    assert mailbox.statistics().queued == 1


async def test_closing_stops_intake_but_drains_what_is_queued() -> None:
    mailbox: Mailbox[str] = Mailbox(4)
    mailbox.send_nowait("a")
    mailbox.send_nowait("b")
    mailbox.close()
    mailbox.close()
    with pytest.raises(trio.ClosedResourceError):
        await mailbox.send("c")
    assert [message async for message in mailbox] == ["a", "b"]
    assert mailbox.statistics().closed


@pytest.mark.parametrize("capacity", [-1, 1.5, True, float("inf")])
def test_a_mailbox_is_bounded(capacity: object) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(capacity)  # type: ignore[arg-type]


async def test_messages_end_on_a_stop_request_without_losing_one() -> None:
    ctx = ActorContext(("root", "worker"))
    mailbox: Mailbox[int] = Mailbox(4)
    received: list[int] = []

    async def actor() -> None:
        async for message in ctx.messages(mailbox):
            received.append(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor)
        mailbox.send_nowait(1)
        await trio.testing.wait_all_tasks_blocked()
        ctx.request_stop()
    mailbox.send_nowait(2)
    assert received == [1]
    assert mailbox.receive_nowait() == 2


async def test_messages_end_when_the_mailbox_closes() -> None:
    ctx = ActorContext(("worker",))
    mailbox: Mailbox[int] = Mailbox(4)
    mailbox.send_nowait(1)
    mailbox.close()
    assert [message async for message in ctx.messages(mailbox)] == [1]


async def test_cancel_on_stop_cancels_at_once_after_a_stop() -> None:
    ctx = ActorContext(("worker",))
    ctx.request_stop()
    ctx.request_stop()
    with ctx.cancel_on_stop() as scope:
        await trio.sleep(math.inf)
    assert scope.cancelled_caught
    assert ctx.stop_requested


def test_context_names_its_place_in_the_tree() -> None:
    ctx = ActorContext(("root", "sessions", "s-1"), incarnation=3)
    assert (ctx.id, ctx.name, ctx.incarnation) == ("s-1", "root/sessions/s-1", 3)
    with pytest.raises(ValueError, match="path"):
        ActorContext(())
