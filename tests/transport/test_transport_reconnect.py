"""Backoff and ReconnectPolicy: pure decisions, tested without a clock or a socket."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtbus._backoff import Backoff, BackoffState
from rtbus.protocol import (
    ConfigError,
    ConnectionClosedError,
    ErrorDetails,
    ErrorEvent,
    ProtocolError,
    RealtimeError,
)
from rtbus.transport import (
    ConnectError,
    ConnectionRejectedError,
    ConnectTarget,
    ConnectTimeoutError,
    KeepaliveTimeoutError,
    ReconnectPolicy,
)

backoffs = st.builds(
    Backoff,
    base=st.floats(0.001, 10),
    factor=st.floats(1, 10),
    max_delay=st.floats(10, 1000),
    jitter=st.floats(0, 1),
    reset_after=st.floats(0, 1000, exclude_min=True),
)


@given(backoffs, st.integers(1, 10_000), st.integers())
def test_a_delay_stays_between_zero_and_the_cap(backoff: Backoff, attempt: int, seed: int) -> None:
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0 <= delay <= backoff.max_delay
    assert delay >= backoff.nominal(attempt) * (1 - backoff.jitter) - 1e-9


@given(backoffs, st.integers(1, 200))
def test_the_nominal_delay_never_shrinks(backoff: Backoff, attempt: int) -> None:
    assert backoff.nominal(attempt) <= backoff.nominal(attempt + 1)


@given(backoffs, st.integers(1, 100), st.integers())
def test_a_delay_is_a_pure_function_of_the_rng(backoff: Backoff, attempt: int, seed: int) -> None:
    assert backoff.delay(attempt, random.Random(seed)) == backoff.delay(
        attempt, random.Random(seed)
    )


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, factor=2, max_delay=3, jitter=0)
    rng = random.Random(0)
    assert [backoff.delay(n, rng) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"base": -0.5}, "base"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 1.5}, "jitter"),
        ({"reset_after": -1}, "reset_after"),
        ({"base": 5, "max_delay": 1}, "max_delay"),
    ],
)
def test_bad_backoff_names_the_field(fields: dict[str, float], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} "):
        Backoff(**fields)


def test_a_stable_run_resets_the_attempts() -> None:
    state = BackoffState(Backoff(base=1, jitter=0, reset_after=60))
    rng = random.Random(0)
    assert state.next_retry(1, rng) == (1, 1)
    assert state.next_retry(1, rng) == (2, 2)
    assert state.next_retry(60, rng) == (1, 1)  # Up for 60 s: stable, so the sequence starts again.
    assert state.attempt == 1


def _server_error(code: str) -> RealtimeError:
    details = ErrorDetails(message="m", type="invalid_request_error", code=code)
    return RealtimeError.from_event(ErrorEvent(error=details, event_id="ev_1"))


def _wrapped(error: BaseException) -> RealtimeError:
    """As the error path hands a transport failure on: a RealtimeError caused by it."""
    outer = RealtimeError(str(error))
    outer.__cause__ = error
    return outer


@pytest.mark.parametrize(
    ("failure", "retried"),
    [
        (ConnectionClosedError(1006), True),
        (ConnectionClosedError(1011, "server error"), True),
        (ConnectionClosedError(1012), True),
        (ConnectionClosedError(1008, "policy"), False),
        (ConnectionClosedError(1000), False),
        (_wrapped(ConnectionClosedError(1001)), True),
        (_wrapped(ConnectionClosedError(4000)), False),
        (ConnectionRejectedError(503), True),
        (ConnectionRejectedError(429), True),
        (ConnectionRejectedError(401, "bad key"), False),
        (ConnectError("unreachable"), True),
        (ConnectTimeoutError("wss://x", 10), True),
        (_wrapped(KeepaliveTimeoutError(20)), True),
        (_server_error("session_expired"), True),
        (_server_error("invalid_api_key"), False),
        (_wrapped(ProtocolError("bad frame")), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_failures_are_retried(failure: BaseException, retried: bool) -> None:
    assert ReconnectPolicy().retries(failure) is retried


def test_the_retried_codes_are_configurable() -> None:
    policy = ReconnectPolicy(retry_close_codes=frozenset({4000}), retry_error_codes=frozenset())
    assert policy.retries(ConnectionClosedError(4000))
    assert not policy.retries(ConnectionClosedError(1006))
    assert not policy.retries(_server_error("session_expired"))


def test_attempts_give_up_after_max_attempts_in_a_row() -> None:
    policy = ReconnectPolicy(max_attempts=2, backoff=Backoff(base=1, jitter=0, reset_after=30))
    attempts = policy.attempts(random.Random(0))
    dropped = ConnectionClosedError(1006)
    attempts.connected(0)
    assert attempts.failed(dropped, 1) == 1
    assert attempts.failed(dropped, 2) == 2
    assert attempts.failed(dropped, 4) is None
    attempts.connected(10)
    assert attempts.failed(dropped, 50) == 1  # Stable for 40 s: counting starts again.
    assert attempts.attempt == 1


def test_a_fatal_failure_is_never_retried() -> None:
    attempts = ReconnectPolicy().attempts()
    assert attempts.failed(ConnectionRejectedError(401), 0) is None
    assert attempts.attempt == 0


def test_max_attempts_must_be_a_count() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        ReconnectPolicy(max_attempts=-1)


DEFAULT = ConnectTarget("wss://api.example/v1/realtime?model=m", [("Authorization", "Bearer a")])


async def test_without_a_hook_the_target_stays() -> None:
    assert await ReconnectPolicy().target(1, DEFAULT) is DEFAULT


async def test_a_hook_may_refresh_the_target_sync_or_async() -> None:
    seen: list[int] = []

    def sync_hook(attempt: int) -> ConnectTarget:
        seen.append(attempt)
        return DEFAULT.with_headers([("Authorization", f"Bearer t{attempt}")])

    async def async_hook(attempt: int) -> ConnectTarget:
        return sync_hook(attempt)

    for hook in (sync_hook, async_hook):
        target = await ReconnectPolicy(before_attempt=hook).target(3, DEFAULT)
        assert target.headers == (("Authorization", "Bearer t3"),)
    assert seen == [3, 3]


async def test_a_hook_must_return_a_target() -> None:
    policy = ReconnectPolicy(before_attempt=lambda attempt: "wss://x")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="ConnectTarget"):
        await policy.target(1, DEFAULT)
