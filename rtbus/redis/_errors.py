"""The Redis bridge's exceptions, named for whose fault they are.

* ``RedisUnavailableError`` -- Redis could not be reached, the connection broke, or it did not
  answer in time. Nobody's fault but the network's or the server's: callers wait with backoff
  and try again; the bridge keeps the service running meanwhile.
* ``RedisCommandError`` -- Redis answered and refused: a wrong password, a key of the wrong
  type, out of memory. A fault of the setup that retrying will not fix.
* ``RedisVersionError`` -- the server is older than the bridge needs (Redis 6.2, for
  ``XAUTOCLAIM`` and ``XADD ... MINID``).

All three sit under ``RedisError`` (an ``RtbusError``). Messages name the operation and say
what happened; they pass through the password's redaction, so a server that echoes what it
was sent cannot leak it.
"""

from __future__ import annotations

from rtbus.protocol import RtbusError

__all__ = ["RedisCommandError", "RedisError", "RedisUnavailableError", "RedisVersionError"]


class RedisError(RtbusError):
    """The root of the Redis bridge's errors; ``operation`` is the command that failed."""

    def __init__(self, operation: str, detail: str) -> None:
        super().__init__(f"redis {operation}: {detail}", operation, detail)
        self.operation = operation
        self.detail = detail

    def __str__(self) -> str:
        return str(self.args[0])


class RedisUnavailableError(RedisError):
    """Raised when Redis cannot be reached or stops answering during ``operation``."""


class RedisCommandError(RedisError):
    """Raised when Redis refuses ``operation`` (authentication, wrong type, out of memory)."""


class RedisVersionError(RedisError):
    """Raised at connect when the server is older than ``required`` (a dotted version)."""

    def __init__(self, found: str, required: str) -> None:
        super().__init__(
            "connect", f"the server runs Redis {found}; rtbus needs {required} or newer"
        )
        self.found = found
        self.required = required


class GroupMissingError(RedisCommandError):
    """Raised when a consumer group (or its stream) is gone: Redis lost its data. Internal:
    the consumer makes the group again and goes on."""
