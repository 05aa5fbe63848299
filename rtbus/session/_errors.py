"""The session actor's own exceptions: why a session failed when no connection error says."""

from __future__ import annotations

from rtbus.protocol import RealtimeError
from rtbus.transport import ConnectError

__all__ = ["HandshakeTimeoutError", "UnhandledServerError"]


class HandshakeTimeoutError(ConnectError):
    """Raised when ``session.created`` or ``session.updated`` did not come within
    ``SessionSpec.ready_timeout``; retried like any failed connect."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the session was not ready within {timeout:g}s of connecting")
        self.timeout = timeout


class UnhandledServerError(RealtimeError):
    """Raised out of a session actor when a recoverable server ``error`` was handled by
    nobody: no subscription takes the session's errors and the event's sender did not take
    it (openai-node's rule that an unhandled error fails loudly). A failure of that one
    session, which its supervisor restarts (and the conversation is resumed)."""

    def __str__(self) -> str:
        return f"{super().__str__()} [{_NOBODY}]"


_NOBODY = (
    "handled by nobody: no subscription takes this session's 'error' events and its sender "
    "passed no on_refused"
)
