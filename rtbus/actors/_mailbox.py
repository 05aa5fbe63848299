"""Mailboxes: the bounded queue of messages an actor reads.

A mailbox is a trio memory channel with a fixed capacity, so a fast sender waits for a slow
actor (back-pressure) instead of growing memory without bound. ``send_nowait`` is for callers
that must not wait: it raises ``trio.WouldBlock`` when the mailbox is full, and they decide.

A mailbox belongs to whoever creates it, not to one incarnation of an actor: created outside the
actor function (next to its ``ChildSpec``), it survives restarts, so senders keep one handle while
the actor behind it comes and goes. ``close()`` closes intake: senders then get
``trio.ClosedResourceError`` and the reader drains what is queued before iteration ends.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
import trio

__all__ = ["Mailbox", "MailboxStatistics"]

T = TypeVar("T")


@attrs.frozen
class MailboxStatistics:
    """A snapshot of a mailbox, for introspection and scrape-time metrics."""

    queued: int
    capacity: int
    senders_waiting: int
    receivers_waiting: int
    closed: bool


class Mailbox(Generic[T]):
    """A bounded mailbox holding at most ``capacity`` messages (0: every send waits for a
    receive)."""

    __slots__ = ("_closed", "_receiver", "_sender")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"a mailbox capacity is an int >= 0, got {capacity!r}")
        self._sender, self._receiver = trio.open_memory_channel[T](capacity)
        self._closed = False

    async def send(self, message: T) -> None:
        """Queue ``message``, waiting while the mailbox is full."""
        await self._sender.send(message)

    def send_nowait(self, message: T) -> None:
        """Queue ``message`` now; raises ``trio.WouldBlock`` if the mailbox is full."""
        self._sender.send_nowait(message)

    async def receive(self) -> T:
        """Take the next message; raises ``trio.EndOfChannel`` once closed and drained."""
        return await self._receiver.receive()

    def receive_nowait(self) -> T:
        """Take the next message now; raises ``trio.WouldBlock`` if there is none."""
        return self._receiver.receive_nowait()

    def close(self) -> None:
        """Close intake. Idempotent; queued messages can still be received."""
        self._closed = True
        self._sender.close()

    def __aiter__(self) -> Mailbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def statistics(self) -> MailboxStatistics:
        """How full the mailbox is and who is waiting on it."""
        stats = self._receiver.statistics()
        return MailboxStatistics(
            queued=stats.current_buffer_used,
            capacity=int(stats.max_buffer_size),
            senders_waiting=stats.tasks_waiting_send,
            receivers_waiting=stats.tasks_waiting_receive,
            closed=self._closed,
        )
