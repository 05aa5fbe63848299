"""The abstract Realtime emitter: handlers, the send/close contract, and the one error path.

Carried over from the openai-node realtime base (``OpenAIRealtimeEmitter``), re-cut for trio:

* Handlers are bound per name: ``"event"`` (every server event), ``"error"`` (a
  :class:`~rtbus.RealtimeError`), or one server event type such as ``"response.done"``.
  They may be sync or async, and run in the task that reads the connection, in the order they
  were bound: a slow handler slows reading, which is the back-pressure you want. Fan-out to many
  consumers belongs on the bus, not here.
* A server ``error`` event reaches the ``"event"`` handlers and then the error path; it is not
  dispatched by type (the ``"error"`` name is reserved for the error path).
* The one error path, :meth:`RealtimeEmitter._on_error`: every failure -- a server ``error``
  event, an unreadable frame, a transport failure, a handler that raised -- goes through it. With
  an ``"error"`` handler bound the error is handed to it and reading goes on; with none, it is
  raised, with a hint on how to bind one, out of whatever drives the connection.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._emitter_overloads import Handler, TypedHandlers
from .protocol import (
    SERVER_EVENT_TYPES,
    ClientEvent,
    ErrorEvent,
    RealtimeError,
    ServerEvent,
    UnknownEvent,
)

__all__ = ["Handler", "RealtimeEmitter"]

_EVERY_EVENT: Final = "event"
_ERROR: Final = "error"
_RESERVED: Final = frozenset({_EVERY_EVENT, _ERROR})


@attrs.frozen(eq=False)
class _Binding:
    handler: Handler[Any]
    once: bool


def _check_name(name: str) -> None:
    if name not in _RESERVED and name not in SERVER_EVENT_TYPES:
        raise ValueError(
            f"{name!r} is not a Realtime server event type, 'event' or 'error'; for event types "
            "rtbus does not model, bind 'event' and look at event.type"
        )


class RealtimeEmitter(TypedHandlers, abc.ABC):
    """The handler registry and error rule shared by every Realtime connection.

    ``on`` and ``once`` (typed per event type in :class:`TypedHandlers`) bind handlers.
    Subclasses implement :meth:`send` and :meth:`aclose`, read frames, and hand each decoded
    server event to :meth:`_dispatch` and each failure to :meth:`_on_error`.
    """

    def __init__(self) -> None:
        self._bindings: dict[str, list[_Binding]] = {}

    def off(self, name: str, handler: Handler[Any] | None = None) -> None:
        """Unbind ``handler`` from ``name``, or every handler of ``name`` when none is given."""
        _check_name(name)
        bindings = self._bindings.get(name, [])
        kept = [] if handler is None else [b for b in bindings if b.handler != handler]
        self._bindings[name] = kept

    def listener_count(self, name: str) -> int:
        """How many handlers are bound to ``name``."""
        return len(self._bindings.get(name, ()))

    @abc.abstractmethod
    async def send(self, event: ClientEvent | Mapping[str, Any]) -> None:
        """Send one client event: an rtbus client event or a plain dict in its JSON shape."""

    @abc.abstractmethod
    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason``; idempotent."""

    def _bind(self, name: str, handler: Handler[Any], *, once: bool) -> Handler[Any]:
        _check_name(name)
        if not callable(handler):
            raise TypeError(f"handler for {name!r} must be callable, got {handler!r}")
        # Copy on write: a dispatch in progress keeps iterating the list it started with.
        self._bindings[name] = [*self._bindings.get(name, ()), _Binding(handler, once)]
        return handler

    async def _dispatch(self, event: ServerEvent | UnknownEvent) -> None:
        """Hand one server event to its handlers; an ``error`` event takes the error path.

        An event of a type rtbus does not model reaches the ``"event"`` handlers only.
        """
        # Every event passes here: look before awaiting, most names have no handlers.
        bindings = self._bindings
        if bindings.get(_EVERY_EVENT):
            await self._emit(_EVERY_EVENT, event)
        if isinstance(event, ErrorEvent):
            await self._on_error(event)
        elif bindings.get(event.type):
            await self._emit(event.type, event)

    async def _on_error(
        self,
        event: ErrorEvent | None,
        message: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        """The one error path: hand the error to the ``error`` handlers, or raise it.

        A ``RealtimeError`` given as the only ``cause`` (a closed connection, a keepalive
        timeout) is handed on as it is, so ``except ConnectionClosedError`` works on it.
        """
        error = self._error_for(event, message, cause)
        if not self._bindings.get(_ERROR):
            raise error.with_unhandled_hint()
        for binding in self._take(_ERROR):
            # An error handler that raises is not sent round the error path again: it escapes.
            await _call(binding.handler, error)

    @staticmethod
    def _error_for(
        event: ErrorEvent | None, message: str | None, cause: BaseException | None
    ) -> RealtimeError:
        if event is not None:
            error = RealtimeError.from_event(event)
        elif message is None and isinstance(cause, RealtimeError):
            return cause
        else:
            error = RealtimeError(message or "unknown error")
        error.__cause__ = cause
        return error

    async def _emit(self, name: str, argument: object) -> None:
        for binding in self._take(name):
            try:
                await _call(binding.handler, argument)
            except Exception as exc:
                label = getattr(binding.handler, "__qualname__", type(binding.handler).__name__)
                message = f"handler {label} for {name!r} raised {type(exc).__name__}: {exc}"
                await self._on_error(None, message, exc)

    def _take(self, name: str) -> list[_Binding]:
        """The bindings to call for ``name`` now; ``once`` ones are unbound before they run.

        Lists are never mutated in place, so returning one without a copy is safe.
        """
        bindings = self._bindings.get(name)
        if not bindings:
            return []
        if any(b.once for b in bindings):
            self._bindings[name] = [b for b in bindings if not b.once]
        return bindings


async def _call(handler: Handler[Any], argument: object) -> None:
    result = handler(argument)
    if inspect.isawaitable(result):
        await result
