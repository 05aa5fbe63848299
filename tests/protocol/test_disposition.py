"""The failure classifier is a table; these cases pin the rows the README and
docs/architecture.md name."""

from __future__ import annotations

import pytest

from rtbus.protocol import Disposition, classify_close, classify_error, classify_status

R, C, F, E = (
    Disposition.RECOVERABLE,
    Disposition.RECONNECT,
    Disposition.FATAL,
    Disposition.ENDED,
)


@pytest.mark.parametrize(
    ("error_type", "code", "expected"),
    [
        ("invalid_request_error", "invalid_value", R),
        ("invalid_request_error", None, R),
        ("invalid_request_error", "session_expired", C),
        ("invalid_request_error", "conversation_already_has_active_response", R),
        ("invalid_request_error", "invalid_api_key", F),
        ("insufficient_quota", "insufficient_quota", F),
        ("invalid_request_error", "account_deactivated", F),
        ("authentication_error", None, F),
        ("server_error", None, R),
        ("some_future_error", "some_future_code", R),
    ],
)
def test_error_events(error_type: str, code: str | None, expected: Disposition) -> None:
    assert classify_error(error_type, code) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [(1000, E), (1001, C), (1006, C), (1011, C), (1012, C), (1013, C), (1008, F), (1002, F),
     (4000, F)],
)  # fmt: skip
def test_close_codes(code: int, expected: Disposition) -> None:
    assert classify_close(code) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, F), (403, F), (404, F), (400, F), (408, C), (429, C), (500, C), (503, C), (302, F)],
)
def test_handshake_statuses(status: int, expected: Disposition) -> None:
    assert classify_status(status) is expected


def test_reconnect_policy_defaults_are_the_tables_reconnect_rows() -> None:
    from rtbus.transport import ReconnectPolicy

    policy = ReconnectPolicy()
    assert policy.retry_close_codes == {1001, 1005, 1006, 1011, 1012, 1013, 1015}
    assert policy.retry_error_codes == {"session_expired"}
    assert policy.retry_http_statuses == {408, 429, *range(500, 600)}
