"""The control API over HTTP: a thin adapter over the control surface (``_control``).

    POST   /v1/sessions                   {"model"?, "session"?, "id"?}  201, the session
    GET    /v1/sessions                                                  200, {"sessions": [...]}
    GET    /v1/sessions/{id}                                             200, with its statistics
    DELETE /v1/sessions/{id}              graceful close                 200, its final state
    POST   /v1/sessions/{id}/events       a client event                 202 once it went out;
                                          with ``Prefer: wait=N``        200 accepted, 422 refused
    GET    /v1/sessions/{id}/conversation                                200, its record

Each handler reads the request into the operation's arguments, calls it, and writes its
answer; a ``ControlError`` becomes an HTTP error with the status ``STATUS`` gives its code.
Only what is HTTP's own is decided here: routes, status codes of success, and the ``Prefer``
header (RFC 7240) with which a client waits for an event's outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import attrs

from ._control import Control, ControlError, SendResult
from ._http_routes import Route
from ._http_wire import HttpError, Request, Response, json_response
from ._service import Service

__all__ = ["SessionsApi", "control_errors"]

SENDER: Final = "control-api"
_WAIT_PREFERENCE: Final = "wait"

Handler = Callable[[Request], Awaitable[Response]]


class SessionsApi:
    """The control API's routes over one service's control surface."""

    def __init__(self, service: Service, *, start_timeout: float) -> None:
        self._control = Control(service, start_timeout=start_timeout)

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("POST", "/v1/sessions", control_errors(self.open), control=True, takes_body=True),
            Route("GET", "/v1/sessions", control_errors(self.list), control=True),
            Route("GET", "/v1/sessions/{id}", control_errors(self.get), control=True),
            Route("DELETE", "/v1/sessions/{id}", control_errors(self.close), control=True),
            Route(
                "POST",
                "/v1/sessions/{id}/events",
                control_errors(self.send),
                control=True,
                takes_body=True,
            ),
            Route(
                "GET",
                "/v1/sessions/{id}/conversation",
                control_errors(self.conversation),
                control=True,
            ),
        )

    async def open(self, request: Request) -> Response:
        view = await self._control.open_session(request.body)
        location = {"location": f"/v1/sessions/{view.id}"}
        return json_response(201, view.as_json(), headers=location)

    async def list(self, request: Request) -> Response:
        views = [view.as_json() for view in self._control.sessions()]
        return json_response(200, {"sessions": views})

    async def get(self, request: Request) -> Response:
        view, statistics = self._control.session(request.params["id"])
        return json_response(200, {**view.as_json(), "statistics": _jsonable(statistics)})

    async def close(self, request: Request) -> Response:
        view = await self._control.close_session(request.params["id"])
        return json_response(200, view.as_json())

    async def send(self, request: Request) -> Response:
        wait = _preferred_wait(request.headers.get("prefer", ""))
        result = await self._control.send(
            request.params["id"], request.body, sender=SENDER, wait=wait
        )
        return _sent(result, wait)

    async def conversation(self, request: Request) -> Response:
        snapshot = self._control.conversation(request.params["id"])
        return json_response(200, _jsonable(snapshot))


def control_errors(handler: Handler) -> Handler:
    """The handler, with a ``ControlError`` answered as the HTTP error its code means."""

    async def handle(request: Request) -> Response:
        try:
            return await handler(request)
        except ControlError as exc:
            raise HttpError(exc.status, exc.code.value, exc.message) from exc

    return handle


def _preferred_wait(prefer: str) -> float | None:
    """The seconds of a ``Prefer: wait=N`` header, if there is one."""
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() != _WAIT_PREFERENCE:
            continue
        try:
            return float(value.strip().strip('"'))
        except ValueError:
            message = "Prefer: wait needs a number of seconds"
            raise HttpError(400, "invalid_field", message) from None
    return None


def _sent(result: SendResult, wait: float | None) -> Response:
    if wait is None:
        return json_response(202, result.as_json())
    applied = {"preference-applied": f"wait={wait:g}"}
    status = 422 if result.error is not None else 200
    return json_response(status, result.as_json(), headers=applied)


def _jsonable(value: object) -> object:
    """Statistics as JSON: attrs classes as objects, enums as their values, tuple keys joined
    with ``/`` (errors are counted by (type, code))."""
    cls = type(value)
    if attrs.has(cls):
        return {field.name: _jsonable(getattr(value, field.name)) for field in attrs.fields(cls)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_key(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _key(key: object) -> str:
    if isinstance(key, tuple):
        return "/".join(str(_jsonable(part)) for part in key)
    return str(_jsonable(key))
