"""One upstream connection of a session, held open by a task of its own.

A session reads its connection in its own task, but the connection is opened and closed by a
holder task in the actor's nursery (``open_link``). That is what lets a recycle open the next
upstream session while the current one still streams: the prepared link outlives the
connection it replaces, whichever task opened it.

Invariants:

* ``open_link`` returns once the WebSocket is open, or raises what opening it raised
  (translated by the transport). From then on the link is closed only by ``close`` (or by
  the actor's nursery being cancelled), and ``close`` returns once it is closed, so the
  connection's statistics are final.
* ``next`` reads below the emitter (``RealtimeWebSocket.read``): no handler is bound, so
  each outcome is classified once, here and by the session. A frame that could not be read
  goes to ``on_bad_frame`` and reading goes on; the connection's failure is raised, typed,
  out of ``next``; ``None`` means it closed normally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from rtbus.transport import (
    ConnectOptions,
    ConnectTarget,
    RealtimeWebSocket,
    Received,
    Unreadable,
    open_target,
)

__all__ = ["Link", "open_link"]

BadFrameHandler = Callable[[str], Awaitable[None]]


class Link:
    """An open upstream connection, read straight from the transport."""

    def __init__(self, rt: RealtimeWebSocket, on_bad_frame: BadFrameHandler) -> None:
        self.rt = rt
        self._on_bad_frame = on_bad_frame
        self._release = trio.Event()
        self._closed = trio.Event()

    async def next(self) -> Received | None:
        """The next server event with its bytes and arrival; ``None`` once closed normally.
        Raises the connection's failure (``ConnectionClosedError``, ...) as it is."""
        while (item := await self.rt.read()) is not None:
            if not isinstance(item, Unreadable):
                return item
            await self._on_bad_frame(item.message)
        return None

    async def close(self) -> None:
        """Let the holder close the connection (gracefully if it is still open); wait for it."""
        self._release.set()
        await self._closed.wait()


async def open_link(
    nursery: trio.Nursery,
    target: ConnectTarget,
    options: ConnectOptions,
    on_bad_frame: BadFrameHandler,
) -> Link:
    """Open a connection to ``target``, held by a task in ``nursery``."""
    link: Link = await nursery.start(_holder, target, options, on_bad_frame)
    return link


async def _holder(
    target: ConnectTarget,
    options: ConnectOptions,
    on_bad_frame: BadFrameHandler,
    *,
    task_status: trio.TaskStatus[Link],
) -> None:
    link: Link | None = None
    try:
        async with open_target(target, options=options) as rt:
            link = Link(rt, on_bad_frame)
            task_status.started(link)
            await link._release.wait()
    finally:
        if link is not None:
            link._closed.set()
