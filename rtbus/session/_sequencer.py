"""Response sequencing: an in-band ``response.create`` waits while a response is active.

The Realtime API refuses a second in-band response while one runs
(``conversation_already_has_active_response``). The session's single writer asks
:meth:`ResponseSequencer.may_send` before each client event and waits while it says no, so a
held ``response.create`` holds back everything queued after it: nothing is reordered, and the
response it asks for sees exactly the conversation its sender meant. Sans-IO: the session feeds
it what went out and what the server said.

Invariants:

* At most one in-band response is requested (sent, ``response.created`` not yet seen) or
  active (created, ``response.done`` not yet seen) at a time.
* Out-of-band requests (``response.conversation == "none"``) never wait: the API runs them
  beside an in-band response.
* A response the server starts by itself (server VAD) makes the upstream busy too. A request
  racing such a response can still be refused upstream; that error is the server's doing and
  is published like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from rtbus.protocol import ClientEvent, ResponseCreateEvent

__all__ = ["ResponseSequencer", "is_in_band_response_create"]


def is_in_band_response_create(event: ClientEvent | Mapping[str, Any]) -> bool:
    """Whether ``event`` asks for a response in the default conversation."""
    if isinstance(event, ResponseCreateEvent):
        return event.response is None or event.response.conversation != "none"
    if not isinstance(event, Mapping) or event.get("type") != "response.create":
        return False
    response = event.get("response")
    return not isinstance(response, Mapping) or response.get("conversation") != "none"


@attrs.define
class ResponseSequencer:
    """Tracks whether an in-band response is requested or running upstream."""

    _requested: str | None = None
    _active: str | None = None

    @property
    def busy(self) -> bool:
        """Whether an in-band response is requested or running upstream."""
        return self._requested is not None or self._active is not None

    def may_send(self, event: ClientEvent | Mapping[str, Any]) -> bool:
        """Whether ``event`` may go out now."""
        return not (self.busy and is_in_band_response_create(event))

    def sent(self, event: ClientEvent | Mapping[str, Any], event_id: str) -> None:
        """``event``, with this ``event_id``, went out."""
        if is_in_band_response_create(event):
            self._requested = event_id

    def on_created(self, response_id: str, *, in_band: bool) -> None:
        """The server said ``response.created``."""
        if in_band:
            self._requested = None
            self._active = response_id

    def on_done(self, response_id: str) -> None:
        """The server said ``response.done``."""
        if response_id == self._active:
            self._active = None

    def on_error(self, client_event_id: str | None) -> None:
        """The server refused a client event; if it was the request, the upstream is free."""
        if client_event_id is not None and client_event_id == self._requested:
            self._requested = None

    def reset(self) -> None:
        """The upstream session is new (a reconnect): nothing runs there any more."""
        self._requested = self._active = None
