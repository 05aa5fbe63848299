"""What ``rtbus serve`` says when the service cannot start: one line, naming the fault.

The HTTP port is tried before the service starts, so that the commonest fault (another
process holds the port) is said before any other line is logged. A fault found later (the
port taken meanwhile, anything else raised before the service served) is described from the
exception, never with its traceback.
"""

from __future__ import annotations

import errno
import socket

from rtbus._unwrapping import leaves

__all__ = ["http_port_problem", "startup_fault"]

_HINTS = {
    errno.EADDRINUSE: "another process listens there (another rtbus?); "
    "choose a port with --http HOST:PORT or RTBUS_HTTP_PORT",
    errno.EACCES: "a port under 1024 needs privileges; choose another with --http HOST:PORT",
    errno.EADDRNOTAVAIL: "that address is not one of this machine's",
}


def http_port_problem(host: str, port: int) -> str | None:
    """Why HTTP could not listen on ``host:port``, or ``None`` if it can (port 0 always can)."""
    if port == 0:
        return None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            # As the HTTP server binds: a port in TIME_WAIT is free to it.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        return f"cannot serve HTTP on {_netloc(host, port)}: {describe(exc)}"
    return None


def startup_fault(group: BaseExceptionGroup[BaseException]) -> str:
    """One line for the first fault in ``group``."""
    return describe(next(leaves(group)))


def describe(exc: BaseException) -> str:
    """An exception as a person reads it: the OS's words and a hint for an ``OSError``."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        hint = _HINTS.get(exc.errno or 0)
        text = exc.strerror[0].lower() + exc.strerror[1:]
        return f"{text} ({hint})" if hint else text
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
