"""A connection's life: its states, what happens to it, and the table between them.

h11's ``_state.py`` is the model: the connection never assigns a state, it says what
happened and ``next_state`` looks the result up.

Invariants:

* Reading happens only while OPEN. Its end is reported once, on the move OPEN -> ENDED (the
  peer closed, or the connection dropped: a failure unless the close was a normal one);
  a close of ours ends reading quietly (OPEN -> CLOSING: a reader gets nothing more).
* CLOSING is entered once, by the first ``aclose``; a second waits for CLOSED. CLOSED (the
  stream released) is terminal.
* A move with no row is a bug in rtbus (``LocalStateError``), never ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["TRANSITIONS", "ConnectionState", "Happening", "next_state"]


class ConnectionState(enum.Enum):
    """Where a connection is in its life."""

    OPEN = "open"  # reading and sending
    ENDED = "ended"  # reading reported its end; a close of ours may still go out
    CLOSING = "closing"  # our close started: no more reading
    CLOSED = "closed"  # our close finished: the stream is released


class Happening(enum.Enum):
    """What happens to a connection."""

    READ_ENDED = "read_ended"
    CLOSE_STARTED = "close_started"
    RELEASED = "released"


_S, _H = ConnectionState, Happening

TRANSITIONS: Final[Mapping[tuple[ConnectionState, Happening], ConnectionState]] = {
    (_S.OPEN, _H.READ_ENDED): _S.ENDED,
    (_S.OPEN, _H.CLOSE_STARTED): _S.CLOSING,
    (_S.ENDED, _H.CLOSE_STARTED): _S.CLOSING,
    (_S.CLOSING, _H.RELEASED): _S.CLOSED,
}


def next_state(state: ConnectionState, happening: Happening) -> ConnectionState:
    """The state after ``happening``; raises ``LookupError`` for a move with no row."""
    try:
        return TRANSITIONS[state, happening]
    except KeyError:
        raise LookupError(f"a connection {state.value} cannot {happening.value}") from None
