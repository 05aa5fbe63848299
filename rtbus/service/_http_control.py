"""The control API: open, list, inspect and close sessions, and send them client events.

    POST   /v1/sessions              {"model"?, "session"?, "id"?}  201, the session
    GET    /v1/sessions                                             200, {"sessions": [...]}
    GET    /v1/sessions/{id}                                        200, with its statistics
    DELETE /v1/sessions/{id}         graceful close                 200, its final state
    POST   /v1/sessions/{id}/events  a client event                 202, once it went out

A request is checked in full (shape, then the event or the session config against
``rtbus.protocol``, as strictly as the upstream checks them) before the service is asked for
anything, so a bad one changes nothing: no upstream contact, no failure counted, nothing
published. What the service raises becomes
an HTTP error in one place, ``_SERVICE_ERRORS``, the way the transport maps trio-websocket's
exceptions where they enter. A session that cannot start is the upstream's fault: 502, or
504 when it did not become ready in time (a session retries a reachable-but-failing
upstream for as long as its policy says, so the wait is bounded here).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import attrs
import trio

from rtbus._unwrapping import cause_chain
from rtbus.actors import ChildStartFailed, DuplicateChild, UnknownChild
from rtbus.protocol import (
    ClientEvent,
    ConfigError,
    ProtocolError,
    RealtimeConfig,
    UnknownEvent,
    client_event_from_dict,
    redact,
)
from rtbus.redis import RedisUnavailableError
from rtbus.session import EventOutcome, HandshakeTimeoutError, Session, SessionSpec
from rtbus.transport import ConnectTimeoutError, KeepaliveTimeoutError
from rtbus.transport._outbound import SendQueueClosed, SendQueueFull

from ._http_routes import Route
from ._http_wire import HttpError, Request, Response, json_response
from ._placement_config import PlacementRefused, PlacementTimeout
from ._placement_wire import Outcome
from ._service import Service

__all__ = ["SessionsApi"]

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TIMEOUTS: Final = (ConnectTimeoutError, HandshakeTimeoutError, KeepaliveTimeoutError)


class SessionsApi:
    """The control API's handlers over one service."""

    def __init__(self, service: Service, *, start_timeout: float) -> None:
        self._service = service
        self._start_timeout = start_timeout

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("POST", "/v1/sessions", self.open, control=True, takes_body=True),
            Route("GET", "/v1/sessions", self.list, control=True),
            Route("GET", "/v1/sessions/{id}", self.get, control=True),
            Route("DELETE", "/v1/sessions/{id}", self.close, control=True),
            Route("POST", "/v1/sessions/{id}/events", self.send, control=True, takes_body=True),
            Route("GET", "/v1/sessions/{id}/conversation", self.conversation, control=True),
        )

    async def open(self, request: Request) -> Response:
        options = _session_options(request.body)
        with trio.move_on_after(self._start_timeout) as waited, self._start_errors():
            placed = await self._service.place_session(**options)
        if waited.cancelled_caught:
            raise HttpError(
                504,
                "upstream_timeout",
                f"the session did not become ready within {self._start_timeout:g}s",
            )
        location = {"location": f"/v1/sessions/{placed.id}"}
        if placed.session is None:  # opened on another node of the placement group
            body = {"id": placed.id, "state": "ready", "node": placed.node}
        else:
            node = {} if placed.node is None else {"node": placed.node}
            body = {**_summary(placed.session), **node}
        return json_response(201, body, headers=location)

    async def list(self, request: Request) -> Response:
        sessions = [_summary(session) for session in self._sessions().values()]
        return json_response(200, {"sessions": sessions})

    async def get(self, request: Request) -> Response:
        session = self._session(request.params["id"])
        statistics = _jsonable(session.statistics())
        return json_response(200, {**_summary(session), "statistics": statistics})

    async def close(self, request: Request) -> Response:
        session = self._session(request.params["id"])
        with _translated():
            await self._service.close_session(session.id)
        return json_response(200, _summary(session))

    async def send(self, request: Request) -> Response:
        """202 once sent; with ``Prefer: wait=N`` (RFC 7240), the outcome within N seconds:
        200 ``accepted`` (no error about it came), or 422 ``refused_by_upstream`` with the
        server's error. Either way the sender is the control API, so the error is handled."""
        session = self._session(request.params["id"])
        event = _client_event(request.body)
        wait = _preferred_wait(request.headers.get("prefer", ""))
        if wait is None:
            with _translated():
                await session.send(event, sender=_SENDER)
            return json_response(202, {"session": session.id, "type": event.type, "status": "sent"})
        with _translated():
            outcome = await session.submit(event, sender=_SENDER, within=wait)
        return _outcome_response(session, event.type, outcome, wait)

    async def conversation(self, request: Request) -> Response:
        """What the session's conversation record holds: what a new upstream session would
        be given back after a reconnect."""
        snapshot = self._session(request.params["id"]).conversation()
        return json_response(200, _jsonable(snapshot))

    def _sessions(self) -> Mapping[str, Session]:
        try:
            return self._service.sessions
        except (trio.ClosedResourceError, UnknownChild):
            # UnknownChild: the root has no sessions supervisor, so it is down.
            raise HttpError(503, "not_running", "the service is not running") from None

    def _session(self, id: str) -> Session:
        session = self._sessions().get(id)
        if session is None:
            raise HttpError(404, "unknown_session", f"no session with id {_shown(id)}")
        return session

    @contextmanager
    def _start_errors(self) -> Iterator[None]:
        with _translated():
            try:
                yield
            except (ConfigError, ProtocolError) as exc:
                # The spec checks the session config before anything starts.
                raise HttpError(400, "invalid_field", f"session config: {exc}") from exc
            except ChildStartFailed as exc:
                raise _start_failed(exc, self._service.config.upstream) from exc
            except PlacementRefused as exc:
                status = _REFUSED_STATUS.get(exc.outcome, 502)
                raise HttpError(status, exc.outcome.value, str(exc)) from exc


def _start_failed(exc: ChildStartFailed, upstream: RealtimeConfig) -> HttpError:
    """502 (504 for a timeout) naming why, with the upstream's secrets scrubbed out."""
    causes = list(cause_chain(exc))
    timed_out = any(isinstance(cause, _TIMEOUTS) for cause in causes)
    reason = redact(str(causes[1] if len(causes) > 1 else exc), _secrets(upstream))
    status, code = (504, "upstream_timeout") if timed_out else (502, "upstream_failed")
    return HttpError(status, code, f"the session could not start: {reason}")


def _secrets(upstream: RealtimeConfig) -> list[str]:
    return [s for name in ("api_key", "ad_token") if (s := getattr(upstream, name, None))]


#: How a node's refusal to open a placed session reads over HTTP (else 502: upstream's fault).
_REFUSED_STATUS: Final[Mapping[Outcome, int]] = {
    Outcome.INVALID: 400,
    Outcome.NOT_RUNNING: 503,
}

# -- what the service raises, as HTTP --------------------------------------------------------

_Translation = tuple[int, str, Callable[[Any], str]]
_SERVICE_ERRORS: Final[Mapping[type[Exception], _Translation]] = {
    DuplicateChild: (409, "duplicate_id", lambda e: f"a session with id {e.child!r} exists"),
    UnknownChild: (404, "unknown_session", lambda e: f"no session with id {e.child!r}"),
    SendQueueFull: (429, "send_queue_full", str),
    SendQueueClosed: (409, "session_closed", str),
    trio.ClosedResourceError: (503, "not_running", lambda e: "the service is not running"),
    PlacementTimeout: (503, "placement_timeout", str),
    RedisUnavailableError: (503, "redis_unavailable", str),
}


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except tuple(_SERVICE_ERRORS) as exc:
        kind = next(k for k in type(exc).__mro__ if k in _SERVICE_ERRORS)
        status, code, message = _SERVICE_ERRORS[kind]
        raise HttpError(status, code, message(exc)) from exc


# -- checking requests -----------------------------------------------------------------------


def _is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


_OPTIONS: Final[Mapping[str, tuple[Callable[[object], bool], str]]] = {
    "model": (_is_text, "a non-empty string of at most 128 characters"),
    "session": (lambda value: isinstance(value, dict), "a JSON object (the session config)"),
    "id": (_is_id, "1-128 letters, digits, '.', '_', ':' or '-', not starting with a symbol"),
}


def _session_options(body: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in body.items():
        if name not in _OPTIONS:
            expected = ", ".join(_OPTIONS)
            raise HttpError(400, "unknown_field", f"unknown field {_shown(name)}; use {expected}")
        check, expected = _OPTIONS[name]
        if not check(value):
            raise HttpError(400, "invalid_field", f"{name} must be {expected}")
    if "session" in body:
        _check_session_config(body["session"])
    return dict(body)


def _check_session_config(session: Mapping[str, Any]) -> None:
    """400 naming the key (``session.audio.output.voice``) of a session config the upstream
    would refuse; checked here so a placed session is refused before it travels too."""
    try:
        SessionSpec(session=session)
    except ConfigError as exc:
        raise HttpError(400, "invalid_field", f"session config: {exc}") from None


def _client_event(body: Mapping[str, Any]) -> ClientEvent:
    try:
        event = client_event_from_dict(body)
    except ProtocolError as exc:
        raise HttpError(422, "invalid_event", str(exc)) from None
    if isinstance(event, UnknownEvent):
        message = f"{_shown(event.type)} is not a client event type"
        raise HttpError(422, "invalid_event", message)
    return event


def _shown(value: str) -> str:
    """A client's value in a message: quoted, and cut short."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


# -- answers ---------------------------------------------------------------------------------

_SENDER = "control-api"
# The longest an HTTP client may wait for an event's outcome.
_MAX_WAIT = 30.0


def _preferred_wait(prefer: str) -> float | None:
    """The seconds of a ``Prefer: wait=N`` header (RFC 7240), capped; None without one."""
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            raise HttpError(
                400, "bad_prefer", f"Prefer: wait needs seconds, got {_shown(value)}"
            ) from None
        if not 0 <= seconds <= _MAX_WAIT:
            raise HttpError(400, "bad_prefer", f"Prefer: wait must be 0 to {_MAX_WAIT:g} seconds")
        return seconds
    return None


def _outcome_response(session: Session, type: str, outcome: EventOutcome, wait: float) -> Response:
    applied = {"preference-applied": f"wait={wait:g}"}
    body: dict[str, Any] = {"session": session.id, "type": type, "event_id": outcome.event_id}
    if outcome.error is None:
        return json_response(200, {**body, "status": "accepted"}, headers=applied)
    error = outcome.error
    refused = {
        "code": "refused_by_upstream",
        "message": error.message,
        "upstream_code": error.code,
        "param": error.param,
    }
    return json_response(422, {**body, "status": "refused", "error": refused}, headers=applied)


def _summary(session: Session) -> dict[str, Any]:
    return {"id": session.id, "state": session.state.value, "model": session.spec.model}


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
