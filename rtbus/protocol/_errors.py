"""The exceptions of rtbus, named for whose fault they are.

``RtbusError`` is the root. Its children say who is to blame:

* ``RealtimeError`` -- the Realtime connection failed or the server said no: an ``error``
  event, a frame the server sent that we cannot read, a transport failure. It keeps the
  server's error object and the error event's id, as ``OpenAIRealtimeError`` of openai-node's
  realtime base module does.
* ``ConnectionClosedError`` -- the WebSocket closed; keeps the close code and reason.
* ``ProtocolError`` -- a payload does not fit the Realtime protocol (a missing field, a wrong
  type, not JSON, no ``type``; for a client event also an unknown field or a value out of the
  server's range). Raised by the codec; names the event type and field path, and carries a
  ``Violation`` saying what kind of problem it is, in the server's own error codes.
* ``ConfigError`` -- the configuration is wrong; names the key and the problem.

No message built here ever contains a secret: the only inputs are server payloads and names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import attrs

if TYPE_CHECKING:
    from ._models import ErrorDetails, ErrorEvent

__all__ = [
    "ConfigError",
    "ConnectionClosedError",
    "ProtocolError",
    "RealtimeError",
    "RtbusError",
    "Violation",
]

_UNHANDLED_HINT = (
    "\n\nThis error was raised because no `error` handler is bound. To handle errors and keep "
    "reading, bind one, e.g. `rt.on('error', lambda err: ...)`."
)


class RtbusError(Exception):
    """The root of every exception rtbus raises on purpose."""


class RealtimeError(RtbusError):
    """Raised when the Realtime connection fails or the server reports an error.

    ``error`` is the server's error object (``None`` when the failure was ours or the
    transport's), ``event_id`` the id of the server ``error`` event that carried it.
    """

    error: ErrorDetails | None
    event_id: str | None

    def __init__(self, message: str, event: ErrorEvent | None = None) -> None:
        super().__init__(message, event)
        self.error = event.error if event is not None else None
        self.event_id = event.event_id if event is not None else None

    @classmethod
    def from_event(cls, event: ErrorEvent) -> Self:
        """The error an ``error`` event carries, with the message in openai-node's form."""
        return cls(describe_error(event.error), event)

    def with_unhandled_hint(self) -> Self:
        """A copy whose message says how to bind an ``error`` handler (openai-node's rule: an
        error nobody handles fails loudly)."""
        hinted = type(self).__new__(type(self))
        hinted.__dict__.update(self.__dict__)
        hinted.args = (str(self) + _UNHANDLED_HINT, *self.args[1:])
        hinted.__cause__ = self.__cause__
        return hinted

    def __str__(self) -> str:
        return str(self.args[0])


class ConnectionClosedError(RealtimeError):
    """Raised when the WebSocket closes; ``code`` and ``reason`` are the close frame's.

    ``code`` is 1006 when the connection dropped without a close frame.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"connection closed with code {code}{detail}")
        self.code = code
        self.reason = reason


@attrs.frozen
class Violation:
    """What is wrong with one field, in the terms the Realtime server uses for it.

    ``code`` is the server's error code for the problem: ``unknown_parameter``,
    ``missing_required_parameter``, ``invalid_type``, ``invalid_value``,
    ``integer_below_min_value`` / ``integer_above_max_value`` (and ``decimal_*``), or
    ``array_above_max_length``. ``segments`` is the field's path, outermost first (``("session",
    "tools", 0, "name")``). ``expected`` says in words what fits (``"a string"``), ``allowed``
    lists the values an enum takes, ``limit`` is the bound a number or array broke.
    """

    code: str
    segments: tuple[str | int, ...] = ()
    expected: str | None = None
    allowed: tuple[object, ...] = ()
    limit: float | None = None


class ProtocolError(RtbusError, ValueError):
    """Raised when a payload does not fit the Realtime protocol.

    ``event_type`` is the payload's ``type`` when it had one, ``path`` the dotted path of
    the offending field (``"response.output[0].content"``) when one field is to blame, and
    ``violation`` what is wrong with it (``None`` for a frame that is not JSON or has no
    ``type``); ``code`` is the violation's code. ``reason`` is the message without the where.
    """

    def __init__(
        self,
        message: str,
        *,
        event_type: str | None = None,
        path: str | None = None,
        violation: Violation | None = None,
    ):
        where = "".join(
            [
                f" in {event_type!r}" if event_type else "",
                f" at {path!r}" if path else "",
            ]
        )
        super().__init__(f"{message}{where}", event_type, path, violation)
        self.reason = message
        self.event_type = event_type
        self.path = path
        self.violation = violation

    @property
    def code(self) -> str | None:
        """The server's error code for the problem (``unknown_parameter``...), if one field."""
        return self.violation.code if self.violation is not None else None

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(RtbusError, ValueError):
    """Raised when configuration is missing or wrong; ``key`` names the setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}", key, problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return str(self.args[0])


def describe_error(error: ErrorDetails) -> str:
    """openai-node's message form: message, code, param, type and the client event's id."""
    return (
        f"{error.message} code={error.code} param={error.param} "
        f"type={error.type} event_id={error.event_id}"
    )
