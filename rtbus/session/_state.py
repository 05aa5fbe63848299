"""A session's life: its states, what happens to it, and the transition table between them.

h11's ``_state.py`` is the model: the session never assigns a state, it says what happened
(``Happening``) and ``next_state`` looks the result up.

Invariants:

* Every change of state is a row of ``TRANSITIONS``; a happening with no row for the current
  state is a bug in rtbus (``LocalStateError``), never ignored.
* A stop wins: once CLOSING, the connection coming up, being lost or restoring leaves the
  session CLOSING; only its end (CLOSED, or FAILED if the close itself failed) moves it on.
* CLOSED is terminal. FAILED is left only by a restart of the actor (its supervisor decides),
  which counts as a reconnect: the conversation is resumed.
* RESUMING is the time between the config being applied on a new upstream session and the
  conversation record restored into it: client events wait, as while RECONNECTING.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["TRANSITIONS", "Happening", "LocalStateError", "SessionState", "next_state"]


class SessionState(enum.Enum):
    """Where a session is in its life."""

    CONNECTING = "connecting"
    RESUMING = "resuming"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class Happening(enum.Enum):
    """What happens to a session."""

    RESTORING = "restoring"  # config applied on a new upstream session; the record goes back
    LIVE = "live"  # client events flow on a connection
    LOST = "lost"  # the connection failed; a reconnect is due
    STOP = "stop"  # asked to stop: finish the response, close with 1000
    CLOSE = "close"  # ended normally
    FAIL = "fail"  # the actor failed
    RESTART = "restart"  # the supervisor runs the actor again


class LocalStateError(Exception):
    """Raised when rtbus itself moves a session in a way its state table does not allow: a
    bug in rtbus, never a peer's fault."""


_S, _H = SessionState, Happening
_MOVING: Final = (_S.CONNECTING, _S.RESUMING, _S.READY, _S.RECONNECTING)

TRANSITIONS: Final[Mapping[tuple[SessionState, Happening], SessionState]] = {
    **{(state, _H.RESTORING): _S.RESUMING for state in _MOVING},
    **{(state, _H.LIVE): _S.READY for state in _MOVING},
    **{(state, _H.LOST): _S.RECONNECTING for state in _MOVING},
    **{(state, _H.STOP): _S.CLOSING for state in (*_MOVING, _S.CLOSING)},
    **{(_S.CLOSING, happening): _S.CLOSING for happening in (_H.RESTORING, _H.LIVE, _H.LOST)},
    **{(state, _H.CLOSE): _S.CLOSED for state in (*_MOVING, _S.CLOSING)},
    **{(state, _H.FAIL): _S.FAILED for state in (*_MOVING, _S.CLOSING, _S.FAILED)},
    (_S.FAILED, _H.RESTART): _S.RECONNECTING,
}


def next_state(state: SessionState, happening: Happening) -> SessionState:
    """The state after ``happening``; raises ``LocalStateError`` for a move with no row."""
    try:
        return TRANSITIONS[state, happening]
    except KeyError:
        raise LocalStateError(f"a session {state.value} cannot {happening.value}") from None
