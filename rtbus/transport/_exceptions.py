"""The transport's exceptions, and the translation of websockets' and the OS's where they enter.

Whose fault each one is:

* ``ConnectError`` -- the connection could not be opened: the host is unreachable, the TLS
  handshake failed (an untrusted certificate), the WebSocket handshake failed.
  ``ConnectTimeoutError`` -- that took longer than ``connect_timeout``.
  ``ConnectionRejectedError`` -- the server answered the handshake with an HTTP error (401 for
  a bad key, 403, 429...); keeps the status and the body, scrubbed of the connection's secrets.
* ``KeepaliveTimeoutError`` -- the server did not answer a ping in time; the connection was
  aborted.
* ``ConnectionClosedError`` (in ``rtbus.protocol``) -- the WebSocket closed; code and reason.

All are ``RealtimeError``. :func:`map_exceptions` is the one place the handshake's (websockets')
and the OS's exceptions become these, with ``raise ... from`` so the original stays the cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, TypeVar, cast

import trio
import websockets.exceptions

from rtbus.protocol import RealtimeError, redact

from ._target import ConnectTarget

__all__ = [
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionRejectedError",
    "KeepaliveTimeoutError",
    "map_exceptions",
    "translate",
]

# Enough of a rejection body to carry the server's error message, not a whole HTML page.
_BODY_LIMIT: Final = 1000


class ConnectError(RealtimeError):
    """Raised when a connection could not be opened (unreachable host, TLS, handshake)."""


class ConnectTimeoutError(ConnectError):
    """Raised when opening a connection took longer than ``connect_timeout``."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(f"connecting to {url} timed out after {timeout:g}s")
        self.timeout = timeout


class ConnectionRejectedError(ConnectError):
    """Raised when the server refused the WebSocket handshake with HTTP ``status``.

    ``body`` is the start of the response body with the connection's secrets scrubbed out.
    """

    def __init__(self, status: int, body: str = "") -> None:
        detail = f": {body}" if body else ""
        super().__init__(f"the server rejected the connection with HTTP {status}{detail}")
        self.status = status
        self.body = body


class KeepaliveTimeoutError(RealtimeError):
    """Raised when a ping got no pong within ``pong_timeout``; the connection was aborted."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no pong within {timeout:g}s of a ping; the connection was aborted")
        self.timeout = timeout


def _rejected(exc: websockets.exceptions.InvalidStatus, target: ConnectTarget) -> RealtimeError:
    response = exc.response
    body = bytes(response.body or b"")[:_BODY_LIMIT].decode("utf-8", errors="replace")
    return ConnectionRejectedError(response.status_code, redact(body.strip(), target.secrets))


def _handshake_failed(
    exc: websockets.exceptions.InvalidHandshake, target: ConnectTarget
) -> RealtimeError:
    # The detail (a header, the answer's first line) may quote the server: scrubbed.
    detail = redact(str(exc), target.secrets)
    return ConnectError(f"the WebSocket handshake with {target.display_url} failed: {detail}")


def _unreachable(exc: OSError, target: ConnectTarget) -> RealtimeError:
    detail = redact(str(exc), target.secrets)
    return ConnectError(f"could not connect to {target.display_url}: {detail}")


def _tls_failed(exc: trio.BrokenResourceError, target: ConnectTarget) -> RealtimeError:
    # trio wraps the ssl error; its text says what went wrong (an unknown CA, a bad name).
    detail = redact(str(exc.__cause__ or exc), target.secrets)
    return ConnectError(f"the TLS handshake with {target.display_url} failed: {detail}")


_Translator = Callable[[BaseException, ConnectTarget], RealtimeError]
X = TypeVar("X", bound=BaseException)


def _entry(
    cls: type[X], translator: Callable[[X, ConnectTarget], RealtimeError]
) -> tuple[type[BaseException], _Translator]:
    # Typed per entry (the class matches what its translator takes); the table erases it.
    return cls, cast(_Translator, translator)


# Looked up along the exception's MRO, so the most specific class wins
# (InvalidStatus before InvalidHandshake).
_TRANSLATORS: Final = dict(
    [
        _entry(websockets.exceptions.InvalidStatus, _rejected),
        _entry(websockets.exceptions.InvalidHandshake, _handshake_failed),
        _entry(OSError, _unreachable),
        _entry(trio.BrokenResourceError, _tls_failed),
    ]
)


def translate(exc: BaseException, target: ConnectTarget) -> BaseException:
    """The rtbus error for a handshake or OS error; any other exception unchanged."""
    for cls in type(exc).__mro__:
        translator = _TRANSLATORS.get(cls)
        if translator is not None:
            return translator(exc, target)
    return exc


@contextmanager
def map_exceptions(target: ConnectTarget) -> Iterator[None]:
    """Translate the handshake's and the OS's exceptions raised inside, ``from`` the original."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, target)
        if error is exc:
            raise
        raise error from exc
