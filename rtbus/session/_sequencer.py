"""Response sequencing: an in-band ``response.create`` waits while a response is active.

The Realtime API refuses a second in-band response while one is running
(``conversation_already_has_active_response``). The session actor passes every
``response.create`` through a :class:`ResponseSequencer` so rtbus's own traffic never meets
that error. Sans-IO: the actor feeds it what it sends and what the server says, and sends
what it releases.

Invariants:

* At most one in-band response is requested (sent, ``response.created`` not yet seen) or
  active (created, ``response.done`` not yet seen) at a time.
* Held requests are released in the order they were made, one each time the upstream is free.
* Out-of-band requests (``response.conversation == "none"``) never wait: the API runs them
  beside an in-band response.
* A response the server starts by itself (server VAD) makes the upstream busy too. A request
  racing such a response can still be refused upstream; that error is the server's doing and
  is published like any other.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import attrs

__all__ = ["ResponseSequencer"]

T = TypeVar("T")


@attrs.define
class ResponseSequencer(Generic[T]):
    """Decides when each ``response.create`` may go out. ``T`` is whatever the actor sends."""

    _requested: str | None = None
    _active: str | None = None
    _held: deque[tuple[str, T]] = attrs.field(factory=deque)

    @property
    def held(self) -> int:
        """How many requests wait for the upstream to be free."""
        return len(self._held)

    @property
    def busy(self) -> bool:
        """Whether an in-band response is requested or running upstream."""
        return self._requested is not None or self._active is not None

    def request(self, event_id: str, item: T, *, in_band: bool = True) -> T | None:
        """Offer a ``response.create`` with this ``event_id``; returns it if it may go now."""
        if not in_band:
            return item
        self._held.append((event_id, item))
        return self._release()

    def on_created(self, response_id: str, *, in_band: bool) -> None:
        """The server said ``response.created``."""
        if in_band:
            self._requested = None
            self._active = response_id

    def on_done(self, response_id: str) -> T | None:
        """The server said ``response.done``; returns a held request that may go now."""
        if response_id != self._active:
            return None
        self._active = None
        return self._release()

    def on_error(self, client_event_id: str | None) -> T | None:
        """The server refused a client event; if it was our request, the upstream is free."""
        if client_event_id is None or client_event_id != self._requested:
            return None
        self._requested = None
        return self._release()

    def reset(self) -> T | None:
        """The upstream session is new (a reconnect): nothing runs there any more."""
        self._requested = self._active = None
        return self._release()

    def drain(self) -> list[T]:
        """Take every held request (the session is closing and will not send them)."""
        items = [item for _, item in self._held]
        self._held.clear()
        return items

    def _release(self) -> T | None:
        if self.busy or not self._held:
            return None
        self._requested, item = self._held.popleft()
        return item
