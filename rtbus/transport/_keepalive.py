"""Keepalive: a ping after ``interval`` seconds; one unanswered for ``pong_timeout`` ends it.

A Realtime session can sit silent for minutes (the user is thinking) while a NAT or load
balancer between us and the server forgets the TCP connection; nothing notices until the next
send fails. Regular pings keep the path warm and detect a dead one within
``interval + pong_timeout`` seconds. Given ``heard_at`` (when the peer last sent anything),
only a connection idle for ``interval`` is pinged: a streaming server already proves the path
is alive, and costs no pings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["keep_alive"]


async def keep_alive(
    ping: Callable[[], Awaitable[None]],
    on_pong: Callable[[float], None],
    *,
    interval: float,
    pong_timeout: float,
    heard_at: Callable[[], float] | None = None,
) -> None:
    """Ping every ``interval`` seconds (of silence, with ``heard_at``), reporting each round
    trip to ``on_pong``; ``ping`` returns when its pong arrived.

    Returns when a ping got no pong within ``pong_timeout`` seconds; whatever ``ping`` raises
    (the connection closed) propagates.
    """
    due = trio.current_time() + interval
    while True:
        await trio.sleep_until(due)
        if heard_at is not None and heard_at() + interval > trio.current_time():
            due = heard_at() + interval
            continue
        sent = trio.current_time()
        with trio.move_on_after(pong_timeout) as waiting:
            await ping()
        if waiting.cancelled_caught:
            return
        on_pong(trio.current_time() - sent)
        due = trio.current_time() + interval
