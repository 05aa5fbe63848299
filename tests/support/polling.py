"""Waiting on another process (redis-server, prometheus, an ``rtbus`` subprocess): it has no
event to wait on, so ask it until it says yes, within a deadline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

__all__ = ["eventually", "poll_until"]

T = TypeVar("T")


def _nothing_to_show() -> str | None:
    return None


def poll_until(
    condition: Callable[[], T],
    failure: str,
    timeout: float,
    check: Callable[[], str | None] = _nothing_to_show,
    *,
    interval: float = 0.05,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that (blocking: for
    fixtures outside trio).

    ``check`` runs between polls: it raises when waiting is pointless (the process died) and
    returns what to show (a log) should ``timeout`` pass, which raises ``TimeoutError``.
    """
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        context = check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{failure} in {timeout}s\n{context or ''}")
        time.sleep(interval)
    return result


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], seconds: float = 10.0, *, interval: float = 0.01
) -> None:
    """Poll ``check`` until it holds, failing with ``trio.TooSlowError`` after ``seconds``.

    For state that changes in another process or on real time (reclaim idle times).
    """
    with trio.fail_after(seconds):
        while True:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
            await trio.sleep(interval)
