"""The control surface: every operation on a service's sessions, written once.

    open_session   {"model"?, "session"?, "id"?}   the session, once it is ready
    sessions       -                               every session's summary
    session        id                              one, with its statistics
    close_session  id                              graceful: its response finishes, then 1000
    send           id, event, sender, wait?        sent, or (waiting) accepted or refused
    conversation   id                              its conversation record
    calls          -                               every call held (``CallView``)
    hangup_call    id                              the call, once the upstream took the hang-up
    refer_call     id, {"target_uri"}              the call, once the upstream took the transfer
    create_call    sdp_offer                       a browser call: its view and the SDP answer
    client_secret  {"expires_after"?}              an ephemeral key for the server's config

The HTTP control API (``_http_control``) and the bus gateway (``_gateway``) are adapters:
each reads its own wire into these arguments, calls one operation, and writes the answer,
or the ``ControlError`` it raised, its own way. Adding an operation means writing it here
once and giving each adapter a line.

Invariants:

* An operation checks its arguments in full (the shape, then the event or the session config
  against ``rtbus.protocol``, as strictly as the upstream checks them) before it asks the
  service for anything, so a bad request changes nothing: no upstream contact, no failure
  counted, nothing published.
* Every failure leaves as a ``ControlError`` whose code is an ``ErrorCode`` (the gateway's
  wire codes: one bounded set, a metric label) and whose HTTP status is ``STATUS[code]``:
  the one table of what each code means. What the service raises is translated in one place,
  ``_SERVICE_ERRORS``, the way the transport maps library exceptions where they enter.
* A session that cannot start is the upstream's fault (502, or 504 when it did not become
  ready in time); its message has the upstream's secrets scrubbed out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import attrs
import trio

from rtbus._unwrapping import cause_chain
from rtbus.actors import ChildStartFailed, DuplicateChild, UnknownChild
from rtbus.calls import (
    CallNotFoundError,
    CallsError,
    CallsRequestError,
    CallsTransportError,
    CallsUpstreamError,
    ClientSecret,
)
from rtbus.gateway import ErrorCode
from rtbus.protocol import (
    ClientEvent,
    ConfigError,
    ErrorDetails,
    ProtocolError,
    RealtimeConfig,
    RtbusError,
    TargetKind,
    UnknownEvent,
    client_event_from_dict,
    redact,
)
from rtbus.redis import RedisUnavailableError
from rtbus.session import (
    ConversationSnapshot,
    HandshakeTimeoutError,
    RefusalHandler,
    Session,
    SessionSpec,
    SessionStatistics,
)
from rtbus.transport import (
    ConnectTimeoutError,
    KeepaliveTimeoutError,
    SendQueueClosed,
    SendQueueFull,
)

from ._placement_config import PlacementRefused, PlacementTimeout
from ._placement_wire import Outcome
from ._service import Service
from ._switchboard import CallView, Switchboard, UnknownCall

__all__ = ["STATUS", "CallView", "Control", "ControlError", "SendResult", "SessionView"]

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TIMEOUTS: Final = (ConnectTimeoutError, HandshakeTimeoutError, KeepaliveTimeoutError)
# The longest a caller may wait for an event's outcome.
MAX_WAIT: Final = 30.0
# Where a call may be transferred, and how long a client secret may live (the API's bounds).
_REFER_SCHEMES: Final = ("tel:", "sip:", "sips:")
_SECRET_SECONDS: Final = range(10, 7201)

#: What each code means over HTTP (the gateway sends the code itself).
STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.UNKNOWN_FIELD: 400,
    ErrorCode.INVALID_FIELD: 400,
    ErrorCode.INVALID_EVENT: 422,
    ErrorCode.REFUSED_BY_UPSTREAM: 422,
    ErrorCode.UNKNOWN_SESSION: 404,
    ErrorCode.DUPLICATE_ID: 409,
    ErrorCode.SESSION_CLOSED: 409,
    ErrorCode.SEND_QUEUE_FULL: 429,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.UPSTREAM_FAILED: 502,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.DRAINING: 503,
    ErrorCode.NOT_RUNNING: 503,
    ErrorCode.PLACEMENT_TIMEOUT: 503,
    ErrorCode.REDIS_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}


class ControlError(RtbusError):
    """Raised by a control operation that cannot be done: ``code`` says whose fault it is
    (``STATUS[code]`` is its HTTP status), ``message`` says why, naming the field to blame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


@attrs.frozen
class SessionView:
    """A session as the control surface shows it; ``node`` when placement put it elsewhere."""

    id: str
    state: str
    model: str | None
    node: str | None = None

    @classmethod
    def of(cls, session: Session, node: str | None = None) -> SessionView:
        spec = session.spec
        # A transcription session has no model of its own (its config names the transcriber).
        transcribing = spec.connects_to.kind is TargetKind.TRANSCRIPTION
        return cls(session.id, session.state.value, None if transcribing else spec.model, node)

    def as_json(self) -> dict[str, Any]:
        shown = {"id": self.id, "state": self.state, "model": self.model}
        return shown if self.node is None else {**shown, "node": self.node}


@attrs.frozen
class SendResult:
    """What became of a client event: ``sent`` (not waited for), ``accepted`` (no error
    named it within the wait) or ``refused`` (``error`` is the upstream's)."""

    session: str
    type: str
    event_id: str
    status: str
    error: ErrorDetails | None = None

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"session": self.session, "type": self.type}
        shown |= {"event_id": self.event_id, "status": self.status}
        if self.error is not None:
            shown["error"] = refusal_json(self.error)
        return shown


def refusal_json(error: ErrorDetails) -> dict[str, Any]:
    """The upstream's refusal of a client event, as the adapters show it: our code, and the
    upstream's error object as it sent it."""
    code = ErrorCode.REFUSED_BY_UPSTREAM.value
    return {"code": code, "message": error.message, "upstream": upstream_error(error)}


def upstream_error(error: ErrorDetails) -> dict[str, Any]:
    """The upstream's error object, as it sent it."""
    return {name: getattr(error, name) for name in ("type", "code", "message", "param", "event_id")}


class Control:
    """The operations on one service's sessions (see the module)."""

    def __init__(self, service: Service, *, start_timeout: float) -> None:
        self._service = service
        self._start_timeout = start_timeout

    async def open_session(self, options: Mapping[str, Any]) -> SessionView:
        """Open a session (placed on a node with room, when the service runs a placement)
        and return it once it is ready."""
        checked = _session_options(options)
        with trio.move_on_after(self._start_timeout) as waited, self._start_errors():
            placed = await self._service.place_session(**checked)
        if waited.cancelled_caught:
            message = f"the session did not become ready within {self._start_timeout:g}s"
            raise ControlError(ErrorCode.UPSTREAM_TIMEOUT, message)
        if placed.session is None:  # opened on another node of the placement group
            return SessionView(placed.id, "ready", checked.get("model"), placed.node)
        return SessionView.of(placed.session, placed.node)

    def sessions(self) -> list[SessionView]:
        return [SessionView.of(session) for session in self._sessions().values()]

    def session(self, id: str) -> tuple[SessionView, SessionStatistics]:
        found = self._session(id)
        return SessionView.of(found), found.statistics()

    async def close_session(self, id: str) -> SessionView:
        """Close a session; a call's session hangs its call up first."""
        session = self._session(id)
        board = self._service.switchboard
        with _translated():
            call_id = None if board is None else await board.hang_up_session(session.id)
            try:
                await self._service.close_session(session.id)
            except UnknownChild:
                if call_id is None:
                    raise
                # The hang-up ended the call's session first: closed, as asked.
        return SessionView.of(session)

    async def send(
        self,
        id: str,
        event: Mapping[str, Any],
        *,
        sender: str,
        wait: float | None = None,
        on_refused: RefusalHandler | None = None,
    ) -> SendResult:
        """Send a client event. Without ``wait``, once it went out (``sent``); a refusal
        later reaches ``on_refused`` and the bus. With ``wait`` seconds, its outcome."""
        session = self._session(id)
        checked = _client_event(event)
        if wait is not None and not 0 <= wait <= MAX_WAIT:
            raise ControlError(ErrorCode.INVALID_FIELD, f"wait must be 0 to {MAX_WAIT:g} seconds")
        with _translated():
            if wait is None:
                event_id = await session.send(checked, sender=sender, on_refused=on_refused)
                return SendResult(session.id, checked.type, event_id, "sent")
            outcome = await session.submit(checked, sender=sender, within=wait)
        return SendResult(session.id, checked.type, outcome.event_id, outcome.status, outcome.error)

    def conversation(self, id: str) -> ConversationSnapshot:
        """What the session's conversation record holds: what a new upstream session would
        be given back after a reconnect."""
        return self._session(id).conversation()

    # -- calls (``_switchboard``) -------------------------------------------------------

    def calls(self) -> list[CallView]:
        """Every call the switchboard holds now."""
        return self._switchboard().calls()

    async def hangup_call(self, id: str) -> CallView:
        """Hang a call up; its session ends (``rtbus.call.ended``, by rtbus) when the
        upstream closes the call's connection."""
        board = self._switchboard()
        with _translated():
            return await board.hangup(id)

    async def refer_call(self, id: str, options: Mapping[str, Any]) -> CallView:
        """Transfer a SIP call to ``options["target_uri"]`` (``tel:`` or ``sip:``)."""
        target = _only(options, "target_uri", required=True)
        if not (isinstance(target, str) and target.startswith(_REFER_SCHEMES)) or len(target) > 256:
            raise ControlError(ErrorCode.INVALID_FIELD, "target_uri must be a tel: or sip: URI")
        board = self._switchboard()
        with _translated():
            return await board.refer(id, target)

    async def create_call(self, sdp_offer: str) -> tuple[CallView, str]:
        """A browser (WebRTC) call from its SDP offer, with the server's session config:
        the call, its session attached, and the SDP answer to hand back."""
        if not sdp_offer.startswith("v=0"):
            raise ControlError(ErrorCode.INVALID_FIELD, "sdp must be an SDP offer (v=0 ...)")
        board = self._switchboard()
        with self._start_errors():
            return await board.create(sdp_offer)

    async def client_secret(self, options: Mapping[str, Any]) -> ClientSecret:
        """An ephemeral key for a browser; its session config is the server's (the request
        may only say ``expires_after``, in seconds)."""
        given = _only(options, "expires_after", required=False)
        seconds = given if type(given) is int else None
        if given is not None and seconds not in _SECRET_SECONDS:
            message = f"expires_after must be {_SECRET_SECONDS.start}-{_SECRET_SECONDS.stop - 1}"
            raise ControlError(ErrorCode.INVALID_FIELD, message + " seconds")
        board = self._switchboard()
        with _translated():
            return await board.client_secret(seconds)

    def _switchboard(self) -> Switchboard:
        board = self._service.switchboard
        if board is None:
            raise ControlError(ErrorCode.NOT_RUNNING, "calls are not running in this service")
        return board

    def _sessions(self) -> Mapping[str, Session]:
        try:
            return self._service.sessions
        except (trio.ClosedResourceError, UnknownChild):
            # UnknownChild: the root has no sessions supervisor, so it is down.
            raise ControlError(ErrorCode.NOT_RUNNING, "the service is not running") from None

    def _session(self, id: str) -> Session:
        session = self._sessions().get(id)
        if session is None:
            raise ControlError(ErrorCode.UNKNOWN_SESSION, f"no session with id {_shown(id)}")
        return session

    @contextmanager
    def _start_errors(self) -> Iterator[None]:
        with _translated():
            try:
                yield
            except (ConfigError, ProtocolError) as exc:
                # The spec checks the session config before anything starts.
                raise ControlError(ErrorCode.INVALID_FIELD, f"session config: {exc}") from exc
            except ChildStartFailed as exc:
                raise _start_failed(exc, self._service.config.upstream) from exc
            except PlacementRefused as exc:
                code = _REFUSED.get(exc.outcome, ErrorCode.UPSTREAM_FAILED)
                raise ControlError(code, str(exc)) from exc


def _start_failed(exc: ChildStartFailed, upstream: RealtimeConfig) -> ControlError:
    """Naming why, with the upstream's secrets scrubbed out."""
    causes = list(cause_chain(exc))
    timed_out = any(isinstance(cause, _TIMEOUTS) for cause in causes)
    reason = redact(str(causes[1] if len(causes) > 1 else exc), _secrets(upstream))
    code = ErrorCode.UPSTREAM_TIMEOUT if timed_out else ErrorCode.UPSTREAM_FAILED
    return ControlError(code, f"the session could not start: {reason}")


def _secrets(upstream: RealtimeConfig) -> list[str]:
    return [s for name in ("api_key", "ad_token") if (s := getattr(upstream, name, None))]


#: How a node's refusal to open a placed session reads (else the upstream's fault).
_REFUSED: Final[Mapping[Outcome, ErrorCode]] = {
    Outcome.DUPLICATE: ErrorCode.DUPLICATE_ID,
    Outcome.INVALID: ErrorCode.INVALID_FIELD,
    Outcome.NOT_RUNNING: ErrorCode.NOT_RUNNING,
    Outcome.EXPIRED: ErrorCode.UPSTREAM_TIMEOUT,
}

# -- what the service raises, as control errors ---------------------------------------------

_Translation = tuple[ErrorCode, Callable[[Any], str]]
_SERVICE_ERRORS: Final[Mapping[type[Exception], _Translation]] = {
    DuplicateChild: (ErrorCode.DUPLICATE_ID, lambda e: f"a session with id {e.child!r} exists"),
    UnknownChild: (ErrorCode.UNKNOWN_SESSION, lambda e: f"no session with id {e.child!r}"),
    SendQueueFull: (ErrorCode.SEND_QUEUE_FULL, str),
    SendQueueClosed: (ErrorCode.SESSION_CLOSED, str),
    trio.ClosedResourceError: (ErrorCode.NOT_RUNNING, lambda e: "the service is not running"),
    PlacementTimeout: (ErrorCode.PLACEMENT_TIMEOUT, str),
    RedisUnavailableError: (ErrorCode.REDIS_UNAVAILABLE, str),
    # Calls: the call is unknown or over; the upstream refused; it failed; it did not answer.
    UnknownCall: (ErrorCode.UNKNOWN_SESSION, str),
    CallNotFoundError: (ErrorCode.UNKNOWN_SESSION, str),
    CallsRequestError: (ErrorCode.REFUSED_BY_UPSTREAM, str),
    CallsUpstreamError: (ErrorCode.UPSTREAM_FAILED, str),
    CallsTransportError: (ErrorCode.UPSTREAM_FAILED, str),
    CallsError: (ErrorCode.UPSTREAM_FAILED, str),
}


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except tuple(_SERVICE_ERRORS) as exc:
        kind = next(k for k in type(exc).__mro__ if k in _SERVICE_ERRORS)
        code, message = _SERVICE_ERRORS[kind]
        raise ControlError(code, message(exc)) from exc


# -- checking requests -----------------------------------------------------------------------


def _is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


_OPTIONS: Final[Mapping[str, tuple[Callable[[object], bool], str]]] = {
    "model": (_is_text, "a non-empty string of at most 128 characters"),
    "session": (lambda value: isinstance(value, Mapping), "a JSON object (the session config)"),
    "id": (_is_id, "1-128 letters, digits, '.', '_', ':' or '-', not starting with a symbol"),
}


def _session_options(options: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in options.items():
        if name not in _OPTIONS:
            expected = ", ".join(_OPTIONS)
            message = f"unknown field {_shown(name)}; use {expected}"
            raise ControlError(ErrorCode.UNKNOWN_FIELD, message)
        check, expected = _OPTIONS[name]
        if not check(value):
            raise ControlError(ErrorCode.INVALID_FIELD, f"{name} must be {expected}")
    if "session" in options:
        _check_session_config(options["session"])
        if "model" in options and options["session"].get("type") == "transcription":
            message = (
                "model: a transcription session has no model; name its transcription model "
                "in session.audio.input.transcription.model"
            )
            raise ControlError(ErrorCode.INVALID_FIELD, message)
    return dict(options)


def _check_session_config(session: Mapping[str, Any]) -> None:
    """Name the key (``session.audio.output.voice``) of a session config the upstream would
    refuse; checked here so a placed session is refused before it travels too."""
    try:
        SessionSpec(session=session)
    except ConfigError as exc:
        raise ControlError(ErrorCode.INVALID_FIELD, f"session config: {exc}") from None


def _only(options: Mapping[str, Any], name: str, *, required: bool) -> object:
    """The one field ``options`` may hold; any other is refused, naming it."""
    for other in options:
        if other != name:
            message = f"unknown field {_shown(other)}; use {name} (the server fixes the rest)"
            raise ControlError(ErrorCode.UNKNOWN_FIELD, message)
    if required and name not in options:
        raise ControlError(ErrorCode.INVALID_FIELD, f"{name} is required")
    return options.get(name)


def _client_event(body: Mapping[str, Any]) -> ClientEvent:
    try:
        event = client_event_from_dict(body)
    except ProtocolError as exc:
        raise ControlError(ErrorCode.INVALID_EVENT, str(exc)) from None
    if isinstance(event, UnknownEvent):
        message = f"{_shown(event.type)} is not a client event type"
        raise ControlError(ErrorCode.INVALID_EVENT, message)
    return event


def _shown(value: str) -> str:
    """A caller's value in a message: quoted, and cut short."""
    return repr(value if len(value) <= 60 else value[:57] + "...")
