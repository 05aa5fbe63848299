"""Why a connection was lost, in a small fixed vocabulary: the ``cause`` of lifecycle events.

``reason`` on a lifecycle event is text for people (the server's message, a close reason);
``cause`` is a label for metrics and alerts, so it must come from a bounded set:

================================  ==================================================
``connect_timeout``               opening the connection took too long
``connect_refused``               the host could not be reached (refused, unreachable)
``handshake_timeout``             the WebSocket or the session handshake took too long
``http_<status>``                 the handshake was refused with that HTTP status
``close_<code>``                  the WebSocket closed with that code (1006: dropped)
``keepalive_timeout``             a ping went unanswered
``session_expired``               the server expired the session
``recycled``                      rtbus replaced the session before its time limit
``server_error_<code>``           a server ``error`` event (``_none``/``_other``: no or an
                                  unknown code)
``unhandled_error``               a recoverable server error that no subscription took
``other``                         anything else
================================  ==================================================

One function, :func:`failure_cause`, reads it off a failure: a table keyed by exception
class, looked up along each exception's MRO and then along the ``__cause__`` chain (wrappers
such as ``Fatal`` or the error path's ``RealtimeError`` defer to what they wrap), as the
reconnect policy reads the same failures. Everything labelled here that came from the server
(an error code, a close code, a status) is checked against a known set or range first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar, cast

from rtbus._unwrapping import cause_chain
from rtbus.protocol import ConnectionClosedError, RealtimeError
from rtbus.transport import (
    ConnectionRejectedError,
    ConnectTimeoutError,
    KeepaliveTimeoutError,
)

from ._errors import HandshakeTimeoutError, UnhandledServerError
from ._labels import CLOSE_CODES, OTHER, error_code_label

__all__ = ["RECYCLED", "UNHANDLED_ERROR", "failure_cause"]

RECYCLED: Final = "recycled"
UNHANDLED_ERROR: Final = "unhandled_error"
# The statuses HTTP allows; past them a label would be whatever the server made up.
_STATUSES: Final = range(100, 600)


def _closed(exc: ConnectionClosedError) -> str | None:
    return f"close_{exc.code}" if exc.code in CLOSE_CODES else OTHER


def _rejected(exc: ConnectionRejectedError) -> str | None:
    return f"http_{exc.status}" if exc.status in _STATUSES else OTHER


def _server_error(exc: RealtimeError) -> str | None:
    # No server error object: a wrapper from the error path; what it wraps decides.
    if exc.error is None:
        return None
    code = error_code_label(exc.error.code)
    return "session_expired" if code == "session_expired" else f"server_error_{code}"


def _constant(cause: str) -> Callable[[BaseException], str | None]:
    return lambda exc: cause


_Rule = Callable[[BaseException], str | None]
X = TypeVar("X", bound=BaseException)


def _rule(cls: type[X], rule: Callable[[X], str | None]) -> tuple[type[BaseException], _Rule]:
    # Typed per entry (the class matches what its rule takes); the table erases it.
    return cls, cast(_Rule, rule)


# Looked up along each exception's MRO, so the most specific class wins (a
# ``HandshakeTimeoutError`` is a ``ConnectError``, an ``UnhandledServerError`` a server error).
_RULES: Final = dict(
    [
        _rule(UnhandledServerError, _constant(UNHANDLED_ERROR)),
        _rule(HandshakeTimeoutError, _constant("handshake_timeout")),
        _rule(ConnectTimeoutError, _constant("connect_timeout")),
        _rule(OSError, _constant("connect_refused")),
        _rule(ConnectionRejectedError, _rejected),
        _rule(ConnectionClosedError, _closed),
        _rule(KeepaliveTimeoutError, _constant("keepalive_timeout")),
        _rule(RealtimeError, _server_error),
    ]
)


def failure_cause(failure: BaseException) -> str:
    """The bounded cause label of ``failure`` (see the module's table)."""
    for exc in cause_chain(failure):
        rule = _rule_for(type(exc))
        cause = None if rule is None else rule(exc)
        if cause is not None:
            return cause
    return OTHER


def _rule_for(cls: type[BaseException]) -> _Rule | None:
    return next((_RULES[base] for base in cls.__mro__ if base in _RULES), None)
