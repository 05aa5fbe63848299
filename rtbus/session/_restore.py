"""Giving a conversation record back to a new upstream session.

The ``conversation.item.create`` events go out pipelined, from a task of their own, while
this task reads the answers: sending them all before reading could fill both directions of
the socket with a large record. Every event read is handed to ``take`` (the session
publishes it, or a recycle holds it back until the switch), in the order it came.

Invariant: ``restore`` returns once every create was answered, by the item being added
(``conversation.item.added`` with its id) or by an ``error`` naming the create's
``event_id``; a refused item is counted, never retried, and does not fail the session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.protocol import (
    ConversationItemAddedEvent,
    ErrorEvent,
    RealtimeError,
    ServerEvent,
    UnknownEvent,
)
from rtbus.transport import Received

from ._link import Link
from ._record import RestorePlan

__all__ = ["Restored", "Take", "restore"]

AnyServerEvent = ServerEvent | UnknownEvent
Take = Callable[[Received], Awaitable[None]]
"""What to do with each event read during a restore (publish it, or hold it back)."""


@attrs.frozen
class Restored:
    """How a restore went: items the upstream added, and items it refused."""

    restored: int = 0
    refused: int = 0


async def restore(
    link: Link, plan: RestorePlan, event_id: Callable[[], str], take: Take
) -> Restored:
    """Send ``plan``'s items to ``link`` and wait until the upstream answered each."""
    events = plan.events(event_id)
    if not events:
        return Restored()
    with unwrap_lone_exception():
        return await _restore(link, events, take)


async def _restore(link: Link, events: list[dict[str, Any]], take: Take) -> Restored:
    waiting = {event["event_id"]: event["item"]["id"] for event in events}
    items = set(waiting.values())
    refused = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_send_all, link, events)
        while (received := await link.next()) is not None:
            await take(received)
            event = received.event
            if isinstance(event, ConversationItemAddedEvent):
                items.discard(event.item.id or "")
            elif isinstance(event, ErrorEvent) and event.error.event_id in waiting:
                items.discard(waiting[event.error.event_id])
                refused += 1
            if not items:
                return Restored(len(events) - refused, refused)
    raise RealtimeError("the connection closed while the conversation was restored")


async def _send_all(link: Link, events: list[dict[str, Any]]) -> None:
    for event in events:
        await link.rt.send(event)
