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
* Failures of the connection that the emitter's one error path hands over (a drop, an
  abnormal close, a keepalive timeout) are kept on the link, not on the session: two links
  can be open at once during a recycle, and each reports its own. Frames that could not be
  read go to ``on_bad_frame`` and reading goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from rtbus.protocol import ProtocolError, RealtimeError
from rtbus.transport import ConnectOptions, ConnectTarget, RealtimeWebSocket, open_target

__all__ = ["Link", "open_link"]

BadFrameHandler = Callable[[str], Awaitable[None]]


class Link:
    """An open upstream connection and what ended it, if it failed."""

    def __init__(self, rt: RealtimeWebSocket, on_bad_frame: BadFrameHandler) -> None:
        self.rt = rt
        self.failure: RealtimeError | None = None
        self._on_bad_frame = on_bad_frame
        self._release = trio.Event()
        self._closed = trio.Event()
        rt.on("error", self._error)

    async def close(self) -> None:
        """Let the holder close the connection (gracefully if it is still open); wait for it."""
        self._release.set()
        await self._closed.wait()

    async def _error(self, error: RealtimeError) -> None:
        """The emitter's error path. Server ``error`` events are handled as events."""
        if error.error is not None:
            return
        if isinstance(error.__cause__, ProtocolError):
            await self._on_bad_frame(str(error))
            return
        self.failure = error


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
