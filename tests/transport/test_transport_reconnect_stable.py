"""A connection that got as far as ready and lived a while was a working one: the reconnect
count and the backoff start again after it, not only after ``backoff.reset_after``."""

from __future__ import annotations

import random

import pytest

from rtbus.actors import Backoff
from rtbus.protocol import ConfigError, ConnectionClosedError
from rtbus.transport import ReconnectPolicy

DROPPED = ConnectionClosedError(1006)


def test_a_connection_that_lived_past_stable_after_starts_the_count_again() -> None:
    policy = ReconnectPolicy(backoff=Backoff(jitter=0.0, reset_after=3600.0), max_attempts=2)
    attempts = policy.attempts(random.Random(0))
    now = 0.0
    for _ in range(5):  # an hour of drops, each after 30 s of a working connection
        attempts.connected(now)
        now += 30.0
        assert attempts.failed(DROPPED, now) == 0.5, "always the first delay"
        assert attempts.attempt == 1


def test_short_lived_connections_still_climb_and_give_up() -> None:
    policy = ReconnectPolicy(backoff=Backoff(jitter=0.0), max_attempts=2, stable_after=10.0)
    attempts = policy.attempts(random.Random(0))
    delays = []
    for n in range(3):
        attempts.connected(float(n))
        delays.append(attempts.failed(DROPPED, n + 1.0))  # one second up each time
    assert delays == [0.5, 1.0, None]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True])
def test_stable_after_must_be_positive(bad: float) -> None:
    with pytest.raises(ConfigError, match="stable_after"):
        ReconnectPolicy(stable_after=bad)
