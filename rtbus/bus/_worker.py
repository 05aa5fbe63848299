"""Workers: supervised subscriber actors made from a handler.

A ``Worker`` owns a subscription that outlives its incarnations, so under ``block`` the
events buffered for it are not lost when its handler raises and the supervisor restarts it:
an envelope leaves the buffer only once the handler returned (``Subscription.delivery``), and
the one being handled when it failed is handed to the next incarnation first.

A stop request lets the handler in progress finish (the supervisor's shutdown grace bounds it)
and cancels only the wait for the next envelope. Under ``disconnect`` a subscriber that fell
behind fails; its next incarnation starts on a fresh subscription. When its supervisor gives
up on it, ``abandon`` closes the subscription and says how many envelopes it never handled.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable

import trio

from rtbus.actors import ActorContext

from ._bus import Bus
from ._envelope import Envelope
from ._overflow import OverflowPolicy
from ._subscription import Subscription, SubscriptionStatistics

__all__ = ["Worker", "WorkerHandler"]

WorkerHandler = Callable[[Envelope], object]
"""Takes one envelope; may be async. Raising fails the worker (a supervised failure)."""


class Worker:
    """A handler run over a subscription, as a supervised actor (``run``)."""

    def __init__(
        self,
        id: str,
        bus: Bus,
        handler: WorkerHandler,
        *,
        types: str | Iterable[str] = "*",
        sessions: str | Iterable[str] = "*",
        maxsize: int = 256,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"a worker's handler must be callable, got {handler!r}")
        self.id = id
        self._handler = handler
        self._subscribe = functools.partial(
            bus.subscribe,
            types=_frozen(types),
            sessions=_frozen(sessions),
            maxsize=maxsize,
            overflow=overflow,
        )
        # Made now, not when the actor starts: events published from here on are kept.
        self._subscription: Subscription = self._subscribe()
        self.handled = 0

    def statistics(self) -> SubscriptionStatistics:
        """The worker's subscription statistics (delivered, dropped, lag, queued, ...)."""
        return self._subscription.statistics()

    async def run(self, ctx: ActorContext, *, task_status: trio.TaskStatus[Worker]) -> None:
        """The actor: hand each envelope to the handler until stopped or the bus closes."""
        if self._subscription.closed:
            self._subscription = self._subscribe()
        task_status.started(self)
        with contextlib.suppress(trio.EndOfChannel):
            while await self._handle_next(ctx):
                self.handled += 1

    def close(self) -> None:
        """Close the subscription: the worker is gone for good, so it must not hold back
        publishers under ``block``."""
        self._subscription.close()

    def abandon(self) -> int:
        """The worker is given up on: close its subscription and return how many envelopes
        it leaves unhandled (those queued, the one it failed on included)."""
        lost = 0 if self._subscription.closed else self._subscription.statistics().queued
        self.close()
        return lost

    async def aclose(self) -> None:
        """Like :meth:`close`, as an ``AsyncResource``."""
        self.close()
        await trio.lowlevel.checkpoint()

    async def _handle_next(self, ctx: ActorContext) -> bool:
        async with contextlib.AsyncExitStack() as stack:
            with ctx.cancel_on_stop() as waiting:
                envelope = await stack.enter_async_context(self._subscription.delivery())
            if waiting.cancelled_caught:
                return False
            result = self._handler(envelope)
            if inspect.isawaitable(result):
                await result
        return True


def _frozen(value: str | Iterable[str]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)
