"""The HTTP surface of a service, on one port: hypercorn on trio, and the bus gateway's
WebSocket beside it, straight off the socket (``_http_door`` tells them apart).

    GET /metrics          the service's own registry, Prometheus text format   (no token)
    GET /healthz          200 while the process serves                         (no token)
    GET /readyz           200 when ready, 503 with every check when not        (no token)
    /v1/sessions...       the control API (``_http_control``)                  (bearer token)
    /v1/calls..., /v1/client_secrets   calls (``_http_calls``)                 (bearer token)
    POST /v1/webhooks/openai   call webhooks, verified by their signature      (no token)
    WebSocket /v1/bus     the bus gateway (``_gateway``), which checks the token itself;
                          served beside hypercorn, not through it

A hand-written ASGI application around one routing table (``_http_routes``): a request is
routed (404/405), admitted (401 without the token, 503 once the service drains), its body
read within the limit (413) and parsed (415, 400), then handled. Every answer it gives is
counted in ``rtbus_http_requests_total`` by route template (the gateway's own answers to a
bad upgrade, 400 and 426, are not: it is not an HTTP route). Hypercorn's access log is off
and its error log goes to the ``rtbus.http.server`` logger, so nothing it prints carries a
header; the surface itself logs one debug line per request, without headers.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
import hypercorn.config
import orjson
import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
    WebsocketScope,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rtbus.protocol import ConfigError

from ._gateway import gateway_counts, gateway_endpoint
from ._http_calls import CallsApi
from ._http_control import SessionsApi
from ._http_door import BUS_PATH, Door
from ._http_metrics import UNROUTED, RequestCounts
from ._http_routes import Route, Router
from ._http_wire import (
    HttpError,
    Request,
    Response,
    check_bearer,
    error_response,
    header_map,
    json_response,
    parse_json_object,
    read_body,
    send_response,
)
from ._service import Service

__all__ = ["HttpAddress", "HttpConfig", "serve_http"]

logger = logging.getLogger("rtbus.http")

_MIB: Final = 1024 * 1024
_BACKLOG: Final = 100  # hypercorn's


def _redacted(value: str | None) -> str:
    return "None" if value is None else "'***'"


def _port(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError("http.port", f"must be an integer 0..65535, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0 < value < math.inf:  # type: ignore[operator]
        raise ConfigError(f"http.{attribute.name}", f"must be a positive number, got {value!r}")


def _host(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("http.host", f"must be a host name or address, got {value!r}")


def _token(_: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    # Never shown: a wrong value may be a real secret pasted in the wrong place.
    if value is not None and (not isinstance(value, str) or not value or value != value.strip()):
        raise ConfigError("http.token", "must be a non-empty string without surrounding spaces")


@attrs.frozen
class HttpConfig:
    """Where the HTTP surface listens and what it takes.

    ``token``: when set, the control API and the bus gateway want ``Authorization: Bearer
    <token>``; probes and ``/metrics`` never do. ``session_start_timeout`` bounds how long
    ``POST /v1/sessions`` (and the gateway's ``open_session``) waits for the session to be
    ready before it answers 504 (``upstream_timeout``).
    """

    host: str = attrs.field(default="127.0.0.1", validator=_host)
    port: int = attrs.field(default=9464, validator=_port)
    token: str | None = attrs.field(default=None, repr=_redacted, validator=_token)
    max_body_bytes: int = attrs.field(default=_MIB, validator=_positive)
    session_start_timeout: float = attrs.field(default=30.0, validator=_positive)


@attrs.frozen
class HttpAddress:
    """Where the surface listens: the real port when 0 was asked for."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{_netloc(self.host, self.port)}"


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_http(
    service: Service,
    config: HttpConfig,
    *,
    task_status: trio.TaskStatus[HttpAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` over HTTP until cancelled (nursery start protocol; the start value
    is the bound ``HttpAddress``)."""
    app = _HttpApp(service, config)
    registry = service.metrics.registry
    registry.register(app.counts)
    gateway_counts(service)  # so the gateway's metrics show at the first scrape
    bus = functools.partial(
        gateway_endpoint, service, config.token, start_timeout=config.session_start_timeout
    )
    door = Door(app, _hypercorn_config(), bus)
    try:
        listener = await _listen(config.host, config.port)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, door, [listener])
            task_status.started(_address(listener))
    finally:
        registry.unregister(app.counts)


async def _listen(host: str, port: int) -> trio.SocketListener:
    """One listening socket, as hypercorn made it: IPv6 when the host has a colon (``::``
    takes IPv4 too), IPv4 otherwise, so a name is one address and port 0 one port."""
    ipv6 = ":" in host
    sock = trio.socket.socket(trio.socket.AF_INET6 if ipv6 else trio.socket.AF_INET)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        if ipv6:
            sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 0)
        await sock.bind((host, port))
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def _hypercorn_config() -> hypercorn.config.Config:
    server = hypercorn.config.Config()
    server.accesslog = None
    server.errorlog = logging.getLogger("rtbus.http.server")
    server.include_server_header = False
    return server


def _address(listener: trio.SocketListener) -> HttpAddress:
    """Where ``listener`` listens: ``http://127.0.0.1:9464`` or ``http://[::1]:9464``."""
    host, port = listener.socket.getsockname()[:2]
    return HttpAddress(host, port)


class _HttpApp:
    """The ASGI application: one routing table for HTTP; a WebSocket here is refused (the
    bus's do not come through hypercorn)."""

    def __init__(self, service: Service, config: HttpConfig) -> None:
        self._service = service
        self._config = config
        self.counts = RequestCounts()
        sessions = SessionsApi(service, start_timeout=config.session_start_timeout)
        calls = CallsApi(service, start_timeout=config.session_start_timeout)
        probes = (
            Route("GET", "/metrics", self._metrics),
            Route("GET", "/healthz", self._healthz),
            Route("GET", "/readyz", self._readyz),
        )
        self._router = Router((*probes, *sessions.routes(), *calls.routes()))

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        await _SCOPES[scope["type"]](self, scope, receive, send)

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        method, path = scope["method"], scope["path"]
        route_name = self._router.template(path) or UNROUTED
        try:
            route, params = self._router.match(method, path)
            response = await route.handler(await self._request(route, params, scope, receive))
        except HttpError as error:
            response = error_response(error)
        except Exception:
            logger.exception("%s %s failed", method, route_name)
            failed = HttpError(500, "internal_error", "the request failed inside rtbus")
            response = error_response(failed)
        self.counts.count(route_name, method, response.status)
        logger.debug("%s %s -> %d", method, route_name, response.status)
        await send_response(send, response)

    async def _request(
        self,
        route: Route,
        params: Mapping[str, str],
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
    ) -> Request:
        headers = header_map(scope["headers"])
        if route.control:
            self._admit(headers)
        body: dict[str, Any] = {}
        raw = b""
        if route.takes_body or route.raw_body:
            raw = await read_body(receive, headers, self._config.max_body_bytes)
        if route.takes_body:
            body = parse_json_object(raw, headers)
        return Request(scope["method"], scope["path"], headers, params, body, raw)

    def _admit(self, headers: Mapping[str, str]) -> None:
        """The control API's door: the token first, so a stranger learns nothing more."""
        if self._config.token is not None:
            check_bearer(headers, self._config.token)
        if self._service.draining:
            raise HttpError(503, "draining", "the service is draining and takes no more work")

    async def _metrics(self, request: Request) -> Response:
        exposition = generate_latest(self._service.metrics.registry)
        return Response(200, exposition, content_type=CONTENT_TYPE_LATEST)

    async def _healthz(self, request: Request) -> Response:
        return json_response(200, {"status": "alive"})

    async def _readyz(self, request: Request) -> Response:
        readiness = self._service.readiness()
        status, word = (200, "ready") if readiness.ready else (503, "not_ready")
        return json_response(status, {"status": word, "checks": dict(readiness.checks)})

    async def _websocket(
        self, scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        # The bus comes here only on a connection that served a request before: its door
        # reads the first request line of a connection only (``_http_door``).
        if scope["path"] == BUS_PATH:
            self.counts.count(BUS_PATH, "GET", 400)
            message = f"the bus at {BUS_PATH} takes a connection of its own: open a new one"
            await _refuse_websocket(scope, send, 400, "bus_needs_own_connection", message)
            return
        self.counts.count(UNROUTED, "GET", 404)
        message = f"no WebSocket endpoint at {scope['path']}; the bus is at {BUS_PATH}"
        await _refuse_websocket(scope, send, 404, "not_found", message)


async def _refuse_websocket(
    scope: WebsocketScope, send: ASGISendCallable, status: int, code: str, message: str
) -> None:
    """``status`` before the handshake where the server can say so, else close 1008."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008, "reason": message})
        return
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


_ScopeHandler = Callable[[_HttpApp, Any, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
_SCOPES: Final[Mapping[str, _ScopeHandler]] = {
    "http": _HttpApp._http,
    "websocket": _HttpApp._websocket,
}
