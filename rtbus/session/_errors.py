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
    """Raised out of a session actor when a recoverable server ``error`` reached no
    subscription (the seed's rule): a failure its supervisor decides about."""
