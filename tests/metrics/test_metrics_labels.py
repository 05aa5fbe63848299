"""The bounded labels sessions count by: the cause table, event and error labels, sums.

Synchronous: the classifier and the counts are plain data, tested without a connection.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rtbus.actors import Fatal
from rtbus.protocol import ConnectionClosedError, ErrorEvent, RealtimeError, decode_server_event
from rtbus.session import HandshakeTimeoutError, SessionCounts, UnhandledServerError
from rtbus.session._cause import failure_cause
from rtbus.session._labels import (
    client_event_label,
    close_code_label,
    error_code_label,
    error_type_label,
    server_event_label,
)
from rtbus.transport import (
    CloseStatus,
    ConnectError,
    ConnectionRejectedError,
    ConnectTimeoutError,
    KeepaliveTimeoutError,
)


def caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def server_error(code: str | None, type: str = "invalid_request_error") -> RealtimeError:
    body: dict[str, Any] = {"type": type, "code": code, "message": "m", "param": None}
    event = decode_server_event(orjson.dumps({"type": "error", "event_id": "e", "error": body}))
    assert isinstance(event, ErrorEvent)
    return RealtimeError.from_event(event)


def transport_failure(cause: BaseException) -> RealtimeError:
    """What the emitter's error path hands the session: a wrapper caused by the failure."""
    return caused(RealtimeError(str(cause)), cause)  # type: ignore[return-value]


CASES: list[tuple[str, BaseException]] = [
    ("connect_timeout", ConnectTimeoutError("ws://h/v1/realtime", 10.0)),
    ("connect_refused", caused(ConnectError("could not connect"), OSError("refused"))),
    ("handshake_timeout", HandshakeTimeoutError(5.0)),
    ("http_401", ConnectionRejectedError(401, "bad key")),
    ("http_503", caused(Fatal("gave up"), ConnectionRejectedError(503))),
    ("other", ConnectionRejectedError(999)),
    ("close_1006", transport_failure(ConnectionClosedError(1006))),
    ("close_1011", ConnectionClosedError(1011, "internal")),
    ("other", ConnectionClosedError(7)),
    ("keepalive_timeout", transport_failure(KeepaliveTimeoutError(20.0))),
    ("session_expired", server_error("session_expired")),
    ("server_error_insufficient_quota", caused(Fatal("s1"), server_error("insufficient_quota"))),
    ("server_error_none", server_error(None, type="server_error")),
    ("server_error_other", server_error("a code nobody documented; with free text")),
    ("unhandled_error", caused(Fatal("x"), UnhandledServerError("unhandled"))),
    ("other", ConnectError("the TLS handshake failed")),
    ("other", RealtimeError("no server error object, no cause")),
    ("other", ValueError("not a connection failure at all")),
]


@pytest.mark.parametrize(("expected", "failure"), CASES)
def test_failure_cause(expected: str, failure: BaseException) -> None:
    assert failure_cause(failure) == expected


def test_a_cycle_in_the_cause_chain_ends() -> None:
    a, b = RealtimeError("a"), RealtimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert failure_cause(a) == "other"


def test_every_cause_is_in_the_vocabulary() -> None:
    fixed = {"connect_timeout", "connect_refused", "handshake_timeout", "keepalive_timeout"}
    fixed |= {"session_expired", "recycled", "unhandled_error", "other"}
    prefixes = ("http_", "close_", "server_error_")
    for _, failure in CASES:
        cause = failure_cause(failure)
        assert cause in fixed or cause.startswith(prefixes), cause


@pytest.mark.parametrize(
    ("label", "value", "expected"),
    [
        (server_event_label, "response.done", "response.done"),
        (server_event_label, "rtbus.session.reconnected", "rtbus.session.reconnected"),
        (server_event_label, "sess_8f2a.custom", "other"),
        (client_event_label, "response.create", "response.create"),
        (client_event_label, "response.done", "other"),
        (client_event_label, None, "other"),
        (error_type_label, "invalid_request_error", "invalid_request_error"),
        (error_type_label, None, "none"),
        (error_type_label, "made_up_error", "other"),
        (error_code_label, "invalid_value", "invalid_value"),
        (error_code_label, "invalid_api_key", "invalid_api_key"),
        (error_code_label, None, "none"),
        (error_code_label, "Bearer sk-leaked", "other"),
    ],
)
def test_labels_are_bounded(label: Any, value: object, expected: str) -> None:
    assert label(value) == expected


@pytest.mark.parametrize(
    ("close", "expected"),
    [
        (None, "none"),
        (CloseStatus(1006), "none"),
        (CloseStatus(1006, "keepalive timeout"), "none"),
        (CloseStatus(1000), "1000"),
        (CloseStatus(4001, "app"), "4001"),
        (CloseStatus(999), "other"),
    ],
)
def test_close_code_label(close: CloseStatus | None, expected: str) -> None:
    assert close_code_label(close) == expected


def test_counts_add_field_by_field_and_key_by_key() -> None:
    a = SessionCounts(
        connects=2,
        bytes_received=10,
        decode_seconds=0.5,
        server_events={"response.done": 1},
        server_errors={("invalid_request_error", "invalid_value"): 1},
    )
    b = SessionCounts(
        connects=1,
        bytes_received=5,
        decode_seconds=0.25,
        server_events={"response.done": 2, "session.created": 1},
        server_errors={("invalid_request_error", "invalid_value"): 2},
    )
    total = a + b
    assert (total.connects, total.bytes_received, total.decode_seconds) == (3, 15, 0.75)
    assert total.server_events == {"response.done": 3, "session.created": 1}
    assert total.server_errors == {("invalid_request_error", "invalid_value"): 3}
    assert a.server_events == {"response.done": 1}, "the operands are unchanged"
    assert sum([a, b], start=SessionCounts()) == total


def test_counts_add_only_counts() -> None:
    with pytest.raises(TypeError):
        SessionCounts() + 1  # type: ignore[operator]
