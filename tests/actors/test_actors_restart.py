"""The pure restart logic: intensity windows and backoff, with no clock and no trio."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtbus._backoff import BackoffState
from rtbus.actors import Backoff, RestartIntensity
from rtbus.actors._restart import RestartWindow


def test_window_refuses_the_restart_past_the_intensity() -> None:
    window = RestartWindow(RestartIntensity(max_restarts=3, period=10.0))
    assert [window.admit(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.remaining(2.0) == 0
    assert not window.admit(9.5)
    assert window.restarts_total == 3


def test_window_forgets_restarts_older_than_the_period() -> None:
    window = RestartWindow(RestartIntensity(max_restarts=2, period=10.0))
    assert window.admit(0.0)
    assert window.admit(5.0)
    # The restart at 0.0 stops counting exactly one period later.
    assert window.remaining(9.99) == 0
    assert window.remaining(10.0) == 1
    assert window.admit(10.0)
    assert window.restarts_total == 3


def test_zero_intensity_refuses_every_restart() -> None:
    window = RestartWindow(RestartIntensity(max_restarts=0, period=1.0))
    assert not window.admit(0.0)


@given(
    max_restarts=st.integers(min_value=0, max_value=5),
    period=st.floats(min_value=0.1, max_value=100.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=50.0), max_size=40),
)
def test_window_never_admits_more_than_r_in_any_period(
    max_restarts: int, period: float, gaps: list[float]
) -> None:
    window = RestartWindow(RestartIntensity(max_restarts, period))
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        if window.admit(now):
            admitted.append(now)
    for start in admitted:
        assert sum(start <= t < start + period for t in admitted) <= max_restarts


def test_nominal_delay_grows_geometrically_up_to_max() -> None:
    backoff = Backoff(base=0.5, factor=3.0, max_delay=10.0, jitter=0.0)
    assert [backoff.nominal(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert backoff.nominal(10_000) == 10.0


def test_jitter_draws_from_the_injected_rng() -> None:
    backoff = Backoff(base=1.0, factor=2.0, max_delay=100.0, jitter=0.5)
    draws = random.Random(7)
    expected = [2.0 * (1 - 0.5 * draws.random()) for _ in range(3)]
    rng = random.Random(7)
    assert [backoff.delay(2, rng) for _ in range(3)] == expected


@given(
    base=st.floats(min_value=0.0, max_value=10.0),
    factor=st.floats(min_value=1.0, max_value=10.0),
    headroom=st.floats(min_value=0.0, max_value=100.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempt=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(),
)
def test_delay_stays_within_jitter_of_nominal_and_under_max(
    base: float, factor: float, headroom: float, jitter: float, attempt: int, seed: int
) -> None:
    ceiling = base + headroom  # max_delay below base is a configuration error.
    backoff = Backoff(base=base, factor=factor, max_delay=ceiling, jitter=jitter)
    nominal = backoff.nominal(attempt)
    delay = backoff.delay(attempt, random.Random(seed))
    assert nominal * (1 - jitter) <= delay <= nominal <= ceiling
    assert nominal <= backoff.nominal(attempt + 1)


def test_restart_backoff_resets_after_a_stable_run() -> None:
    tracker = BackoffState(
        Backoff(base=1.0, factor=2.0, max_delay=60.0, jitter=0.0, reset_after=30.0)
    )
    rng = random.Random(0)
    assert [tracker.next_retry(1.0, rng) for _ in range(3)] == [(1, 1.0), (2, 2.0), (3, 4.0)]
    assert tracker.next_retry(30.0, rng) == (1, 1.0)
    assert tracker.next_retry(29.9, rng) == (2, 2.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": -1.0},
        {"base": math.inf},
        {"factor": 0.5},
        {"max_delay": math.nan},
        {"max_delay": 1.0, "base": 2.0},
        {"jitter": 1.5},
        {"reset_after": 0.0},
    ],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    # The message starts with the attribute at fault (the first key).
    with pytest.raises(ValueError, match=f"^{next(iter(kwargs))} "):
        Backoff(**kwargs)


def test_intensity_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartIntensity(max_restarts=-1)
    with pytest.raises(ValueError, match="period"):
        RestartIntensity(period=0.0)


def test_attempts_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        Backoff().nominal(0)
