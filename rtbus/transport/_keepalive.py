"""Keepalive: a ping every ``interval`` seconds; one unanswered for ``pong_timeout`` ends it.

A Realtime session can sit silent for minutes (the user is thinking) while a NAT or load
balancer between us and the server forgets the TCP connection; nothing notices until the next
send fails. Regular pings keep the path warm and detect a dead one within
``interval + pong_timeout`` seconds.
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
) -> None:
    """Ping every ``interval`` seconds, reporting each round trip to ``on_pong``.

    Returns when a ping got no pong within ``pong_timeout`` seconds; whatever ``ping`` raises
    (the connection closed) propagates.
    """
    while True:
        await trio.sleep(interval)
        sent = trio.current_time()
        with trio.move_on_after(pong_timeout) as waiting:
            await ping()
        if waiting.cancelled_caught:
            return
        on_pong(trio.current_time() - sent)
