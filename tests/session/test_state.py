"""The session's state table: every move is a row, a stop wins, the ends are ends."""

from __future__ import annotations

import itertools

import pytest

from rtbus.session import SessionState
from rtbus.session._state import TRANSITIONS, Happening, LocalStateError, next_state

S, H = SessionState, Happening


def test_a_call_s_life_through_a_drop_a_restart_and_a_stop() -> None:
    state = S.CONNECTING
    for happening, expected in [
        (H.LIVE, S.READY),
        (H.LOST, S.RECONNECTING),
        (H.RESTORING, S.RESUMING),
        (H.LIVE, S.READY),
        (H.FAIL, S.FAILED),
        (H.RESTART, S.RECONNECTING),
        (H.RESTORING, S.RESUMING),
        (H.LIVE, S.READY),
        (H.RESTORING, S.RESUMING),  # a recycle's switch restores what came meanwhile
        (H.LIVE, S.READY),
        (H.STOP, S.CLOSING),
        (H.CLOSE, S.CLOSED),
    ]:
        state = next_state(state, happening)
        assert state is expected, happening


@pytest.mark.parametrize("happening", [H.RESTORING, H.LIVE, H.LOST, H.STOP])
def test_a_stop_wins(happening: Happening) -> None:
    assert next_state(S.CLOSING, happening) is S.CLOSING


def test_closed_is_terminal_and_failed_is_left_only_by_a_restart() -> None:
    for happening in Happening:
        assert (S.CLOSED, happening) not in TRANSITIONS
        if happening not in (H.RESTART, H.FAIL):
            assert (S.FAILED, happening) not in TRANSITIONS
    with pytest.raises(LocalStateError, match="closed cannot live"):
        next_state(S.CLOSED, H.LIVE)


def test_only_a_failed_session_restarts() -> None:
    restartable = {state for state in S if (state, H.RESTART) in TRANSITIONS}
    assert restartable == {S.FAILED}


def test_every_state_is_reached_and_every_row_lands_on_a_state() -> None:
    reached = {S.CONNECTING} | set(TRANSITIONS.values())
    assert reached == set(S)
    assert all(isinstance(TRANSITIONS[key], S) for key in itertools.islice(TRANSITIONS, None))
