"""The connection's state table: reading ends once, a close of ours ends it quietly, CLOSED
is terminal, and a move with no row is refused."""

from __future__ import annotations

import pytest

from rtbus.transport._state import TRANSITIONS, ConnectionState, Happening, next_state

S, H = ConnectionState, Happening


def test_a_connection_the_peer_closes_then_we_close() -> None:
    state = S.OPEN
    for happening, expected in [
        (H.READ_ENDED, S.ENDED),
        (H.CLOSE_STARTED, S.CLOSING),
        (H.RELEASED, S.CLOSED),
    ]:
        state = next_state(state, happening)
        assert state is expected


def test_reading_ends_once_and_never_after_a_close_of_ours() -> None:
    assert (S.ENDED, H.READ_ENDED) not in TRANSITIONS
    assert (S.CLOSING, H.READ_ENDED) not in TRANSITIONS


def test_closed_is_terminal_and_a_close_starts_once() -> None:
    assert not [key for key in TRANSITIONS if key[0] is S.CLOSED]
    with pytest.raises(LookupError, match="closing cannot close_started"):
        next_state(S.CLOSING, H.CLOSE_STARTED)


def test_every_state_is_reached() -> None:
    assert {S.OPEN, *TRANSITIONS.values()} == set(S)
