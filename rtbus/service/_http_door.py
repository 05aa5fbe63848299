"""The HTTP surface's door: one port, and each new connection to the server that reads it.

The first bytes of a connection are its request line. A ``GET`` of ``/v1/bus`` (as hypercorn
would route it: the method in any case, the path percent-decoded, a query or not) is the bus
gateway's WebSocket, served straight off the socket (``_gateway_socket``); anything else goes
to hypercorn, which reads those bytes first. So the gateway's hot path
costs neither hypercorn's ASGI layers nor wsproto, which cost the service about as much per
gateway message as the message's own frames (BENCHMARKS.md), and the HTTP surface stays one
port, one address, one thing to deploy.

Hypercorn has no public API for serving one connection: ``TCPServer`` is the connection
handler of its trio worker (``hypercorn.trio.run.worker_serve``), built here as it builds it;
pyproject.toml pins hypercorn's minor version for that.

Invariants:

* The request line decides, read within hypercorn's ``keep_alive_timeout`` (a connection
  that has not sent it by then is closed, as hypercorn closes an idle one) and up to
  ``_LINE_LIMIT`` bytes (a longer one is hypercorn's to refuse).
* Every connection's stream is closed when its handler returns, and a handler's failure is
  logged and costs its own connection only.
* A ``/v1/bus`` upgrade that comes on a connection which already served a request reaches
  hypercorn: ``_http`` refuses it, saying the bus wants a connection of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import unquote, urlsplit

import hypercorn.config
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework

from rtbus._replay import ReplayStream, read_until

__all__ = ["BUS_PATH", "Door"]

logger = logging.getLogger("rtbus.http")

BUS_PATH: Final = "/v1/bus"
_LINE_LIMIT: Final = 8 * 1024

Handler = Callable[[trio.SocketStream, bytes], Awaitable[None]]


class Door:
    """Serves each connection of a listener: the bus's to ``bus``, the rest to ``app`` on
    hypercorn (configured by ``config``)."""

    def __init__(self, app: ASGIFramework, config: hypercorn.config.Config, bus: Handler) -> None:
        self._app = ASGIWrapper(app)
        self._config = config
        self._context = WorkerContext(None)
        self._bus = bus

    async def __call__(self, stream: trio.SocketStream) -> None:
        try:
            first = await self._first_bytes(stream)
            if first is not None and _for_bus(first):
                await self._bus(stream, first)
            elif first is not None:
                replayed = ReplayStream(stream, first)
                await TCPServer(self._app, self._config, self._context, {}, replayed).run()  # type: ignore[arg-type]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # The client went away.
        except Exception:
            logger.exception("a connection to the HTTP surface failed inside rtbus")
        finally:
            await trio.aclose_forcefully(stream)

    async def _first_bytes(self, stream: trio.SocketStream) -> bytes | None:
        """The bytes read until the request line is whole (or ``_LINE_LIMIT`` bytes); None
        if the connection ended, or said nothing for ``keep_alive_timeout``, first."""
        with trio.move_on_after(self._config.keep_alive_timeout):
            return await read_until(stream, b"\n", _LINE_LIMIT)
        return None


def _for_bus(first: bytes) -> bool:
    """Whether the request line asks for the bus: as hypercorn reads it, so a request it would
    route to ``/v1/bus`` never reaches it on a fresh connection."""
    method, _, rest = first.partition(b"\n")[0].partition(b" ")
    target = rest.partition(b" ")[0].decode("latin-1")
    return method.upper() == b"GET" and unquote(urlsplit(target).path) == BUS_PATH
