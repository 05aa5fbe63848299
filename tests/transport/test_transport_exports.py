"""The public surface of rtbus.transport is what we meant, and redact scrubs secrets."""

from __future__ import annotations

import rtbus.transport
from rtbus.protocol._redact import REDACTED, redact

PUBLIC = {
    "Unreadable",
    "keep_alive",
    "CloseStatus",
    "ConnectError",
    "ConnectOptions",
    "ConnectTarget",
    "ConnectTimeoutError",
    "ConnectionRejectedError",
    "ConnectionStatistics",
    "FrameSink",
    "KeepaliveTimeoutError",
    "RealtimeWebSocket",
    "Received",
    "ReconnectAttempts",
    "ReconnectPolicy",
    "SendQueue",
    "SendQueueClosed",
    "SendQueueFull",
    "SendQueueStatistics",
    "TargetHook",
    "open_realtime",
    "open_target",
    "open_wire",
    "Wire",
}


def test_the_public_names_are_exactly_these() -> None:
    names = {name for name in vars(rtbus.transport) if not name.startswith("_")}
    assert names == PUBLIC


def test_every_public_class_and_function_has_a_docstring() -> None:
    for name in PUBLIC - {"TargetHook"}:  # A type alias carries no docstring of its own.
        obj = getattr(rtbus.transport, name)
        assert obj.__doc__, f"{name} has no docstring"


def test_redact_replaces_every_secret() -> None:
    text = "key sk-abc, token Bearer tok-1 and sk-abc again"
    assert redact(text, ["sk-abc", "Bearer tok-1", "tok-1", ""]) == (
        f"key {REDACTED}, token {REDACTED} and {REDACTED} again"
    )


def test_redact_takes_the_longer_secret_first() -> None:
    assert redact("Bearer tok-1", ["tok-1", "Bearer tok-1"]) == REDACTED


def test_redact_without_secrets_is_the_identity() -> None:
    assert redact("nothing to hide", []) == "nothing to hide"
