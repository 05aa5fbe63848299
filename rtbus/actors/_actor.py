"""Actors: async functions run as supervised trio tasks, and the specs that describe them.

An actor is an async function ``fn(ctx, *, task_status)``, started with trio's nursery start
protocol. We chose plain functions over an ``Actor`` base class because:

* it is exactly the shape trio already uses for servers (``serve_websocket``, ``serve_tcp``), so
  readiness means what it means everywhere in trio: the function calls
  ``task_status.started(handle)`` once it can serve (a session, after its upstream answered),
  and whoever starts it waits for that, receiving ``handle``;
* a restart calls the function again with a fresh ``ActorContext``, so nothing from a failed
  incarnation leaks into the next; state meant to survive (a ``Mailbox``) is created next to the
  ``ChildSpec`` and closed over;
* a supervisor is itself such a function, which is all nesting needs.

``ActorContext`` is how the runner talks back to the actor: its place in the tree, which
incarnation it is, and a stop request it can watch (``wait_stop_requested``, ``messages``,
``cancel_on_stop``). A stop request is graceful: the actor finishes what it is doing and
returns; if it has not returned after its ``ChildSpec.shutdown`` seconds it is cancelled.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Literal, Protocol, TypeVar

import attrs
import trio

from rtbus._backoff import Backoff

from ._mailbox import Mailbox
from ._restart import RestartIntensity

__all__ = ["ActorContext", "ActorFn", "ChildSpec", "RestartType"]

T = TypeVar("T")
H = TypeVar("H")
H_co = TypeVar("H_co", covariant=True)

#: permanent: always restarted; transient: restarted only after an exception;
#: temporary: never restarted, not even when a sibling's failure stops it.
RestartType = Literal["permanent", "transient", "temporary"]


class ActorFn(Protocol[H_co]):
    """An actor: runs until done, after calling ``task_status.started(handle)`` when ready."""

    def __call__(
        self, ctx: ActorContext, /, *, task_status: trio.TaskStatus[H_co]
    ) -> Awaitable[None]: ...


class ActorContext:
    """What a running actor knows of its runner: its path, its incarnation, its stop request."""

    __slots__ = ("_stop", "_stop_scopes", "incarnation", "path")

    def __init__(self, path: tuple[str, ...], *, incarnation: int = 1) -> None:
        if not path:
            raise ValueError("an actor path names at least the actor itself")
        self.path = path
        self.incarnation = incarnation
        self._stop = trio.Event()
        self._stop_scopes: set[trio.CancelScope] = set()

    @property
    def id(self) -> str:
        """The actor's id among its siblings."""
        return self.path[-1]

    @property
    def name(self) -> str:
        """The actor's path in the supervision tree, e.g. ``"root/sessions/s-42"``."""
        return "/".join(self.path)

    @property
    def stop_requested(self) -> bool:
        """True once the runner has asked the actor to stop."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the actor to stop gracefully. Idempotent."""
        self._stop.set()
        for scope in self._stop_scopes:
            scope.cancel()

    async def wait_stop_requested(self) -> None:
        """Wait until the runner asks the actor to stop."""
        await self._stop.wait()

    @contextmanager
    def cancel_on_stop(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that a stop request cancels (at once if one was already made)."""
        with trio.CancelScope() as scope:
            if self.stop_requested:
                scope.cancel()
            self._stop_scopes.add(scope)
            try:
                yield scope
            finally:
                self._stop_scopes.discard(scope)

    def messages(self, mailbox: Mailbox[T]) -> AsyncIterator[T]:
        """Iterate ``mailbox`` until a stop is requested or it is closed and drained.

        A message is never lost to the stop: a cancelled receive takes nothing off the queue.
        """
        return _Messages(self, mailbox)


class _Messages(Generic[T]):
    __slots__ = ("_ctx", "_mailbox")

    def __init__(self, ctx: ActorContext, mailbox: Mailbox[T]) -> None:
        self._ctx = ctx
        self._mailbox = mailbox

    def __aiter__(self) -> _Messages[T]:
        return self

    async def __anext__(self) -> T:
        with self._ctx.cancel_on_stop():
            try:
                return await self._mailbox.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        # Only the stop request cancels that scope.
        raise StopAsyncIteration


def _shutdown_seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if math.isnan(value) or value < 0:
        raise ValueError(f"{attribute.name} is seconds >= 0 (or math.inf), got {value!r}")


def _nothing_held() -> int:
    return 0


@attrs.frozen
class ChildSpec(Generic[H_co]):
    """How a supervisor starts, restarts and stops one child.

    ``shutdown`` is the grace period in seconds between the stop request and cancellation
    (``math.inf``: wait for as long as it takes, as OTP does for supervisors).

    ``intensity`` gives the child a restart budget of its own: its restarts are counted
    against it and never against the supervisor's, and past it the supervisor gives up on
    this child alone (it is removed, ``abandon`` is called, ``ActorGaveUp`` is emitted) and
    goes on supervising the others. Without one, its restarts count against the supervisor's
    intensity (OTP's behaviour). ``backoff``, if set, replaces the supervisor's for this child.

    ``abandon`` is called once, from the supervisor's task, when it gives up on the child: it
    releases what the child held beyond its incarnations (a worker's subscription) and returns
    how many messages the child leaves unhandled. It must neither raise nor block.
    """

    id: str = attrs.field(validator=attrs.validators.min_len(1))
    start: ActorFn[H_co]
    restart: RestartType = attrs.field(
        default="permanent",
        validator=attrs.validators.in_(("permanent", "transient", "temporary")),
    )
    shutdown: float = attrs.field(default=5.0, validator=_shutdown_seconds)
    intensity: RestartIntensity | None = None
    backoff: Backoff | None = None
    abandon: Callable[[], int] = attrs.field(default=_nothing_held, eq=False, repr=False)
