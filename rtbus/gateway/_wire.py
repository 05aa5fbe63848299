"""The bus gateway's wire format, version 1: what a client sends (sans-IO: no sockets, no
clock, no trio).

A client and a service speak it over one WebSocket (subprotocol ``rtbus.gateway.v1``).
Client messages are requests, one JSON object each, named by ``op``; what the server sends
back is in ``_gateway_frames``. docs/gateway.md is the reference.

Invariants:

* ``parse_request`` raises nothing but ``WireError``: a code from ``ErrorCode`` and a message
  naming the field to blame. It never repeats a long value a client sent, so a secret pasted
  in the wrong place does not reach a log. The ``req`` and ``sub`` of a request are recovered
  before anything else is checked, so even a bad request's error is matched.
* A request is checked against a table of fields per op (``_OPS``): unknown, missing and
  mistyped fields are told apart; filters go through the bus's own parsers, so a subscription
  the gateway accepts is one ``Bus.subscribe`` accepts.
* ``encode_request`` and ``parse_request`` are inverses.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

import attrs
import orjson

from rtbus.bus import BusArgumentError, OverflowPolicy, parse_policy, parse_sessions, parse_types
from rtbus.protocol import RtbusError

__all__ = [
    "PROTOCOL_VERSION",
    "SUBPROTOCOL",
    "CloseSession",
    "Credit",
    "ErrorCode",
    "Hello",
    "Limits",
    "MAX_WAIT",
    "HangupCall",
    "ListCalls",
    "ListSessions",
    "ReferCall",
    "OpenSession",
    "Request",
    "Send",
    "Subscribe",
    "Unsubscribe",
    "WireError",
    "encode_request",
    "parse_request",
]

PROTOCOL_VERSION: Final = 1
SUBPROTOCOL: Final = f"rtbus.gateway.v{PROTOCOL_VERSION}"

_MIB: Final = 1024 * 1024
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_MAX_REQ_INT: Final = 2**53  # what every JSON reader keeps exact


class ErrorCode(enum.StrEnum):
    """Every ``code`` an error frame can carry (a bounded set: it is a metric label)."""

    # The frame itself.
    NOT_JSON = "not_json"
    MALFORMED_FRAME = "malformed_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    UNKNOWN_OP = "unknown_op"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    UNSUPPORTED_VERSION = "unsupported_version"
    # Subscriptions.
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    DUPLICATE_SUBSCRIPTION = "duplicate_subscription"
    UNKNOWN_SUBSCRIPTION = "unknown_subscription"
    SUBSCRIBER_OVERFLOW = "subscriber_overflow"
    SUBSCRIBER_TOO_SLOW = "subscriber_too_slow"
    # Requests that wait (send, open_session, close_session).
    TOO_MANY_REQUESTS = "too_many_requests"
    # What the service's control surface says (rtbus.service's ``STATUS`` gives each its
    # HTTP status: the HTTP control API uses the same codes).
    INVALID_EVENT = "invalid_event"
    UNKNOWN_SESSION = "unknown_session"
    DUPLICATE_ID = "duplicate_id"
    SEND_QUEUE_FULL = "send_queue_full"
    SESSION_CLOSED = "session_closed"
    UPSTREAM_FAILED = "upstream_failed"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    REFUSED_BY_UPSTREAM = "refused_by_upstream"
    DRAINING = "draining"
    NOT_RUNNING = "not_running"
    PLACEMENT_TIMEOUT = "placement_timeout"
    REDIS_UNAVAILABLE = "redis_unavailable"
    INTERNAL_ERROR = "internal_error"


ReqId: TypeAlias = str | int


class WireError(RtbusError):
    """Raised when a message does not fit the wire format (or a request cannot be served).

    ``code`` is an ``ErrorCode``; ``req`` and ``sub`` are the request's, when they could be
    read, so the error frame finds its way back to the caller.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        req: ReqId | None = None,
        sub: str | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}", code, message, req, sub)
        self.code = code
        self.message = message
        self.req = req
        self.sub = sub

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class Limits:
    """What one connection may ask for; the server announces them in its ``hello`` result.

    * ``max_frame_bytes`` -- the largest request the server reads (a larger one is refused).
    * ``max_subscriptions`` -- subscriptions open at once on one connection.
    * ``max_maxsize`` -- the largest ``maxsize`` (and initial ``credit``) of a subscription.
    * ``max_in_flight`` -- requests that wait (``send``, ``open_session``, ``close_session``)
      unanswered at once on one connection.
    * ``max_patterns`` -- entries in one ``types`` or ``sessions`` list.
    * ``max_block_timeout`` -- the longest ``block_timeout`` a subscription may ask for,
      and the one it gets if it asks for none: the service's ``[bus]
      block_timeout_seconds``, so no client holds the sessions up longer than the operator
      allows.
    """

    max_frame_bytes: int = _MIB
    max_subscriptions: int = 64
    max_maxsize: int = 65_536
    max_in_flight: int = 256
    max_patterns: int = 256
    max_block_timeout: float = 5.0

    def as_json(self) -> dict[str, float]:
        return attrs.asdict(self)


# -- requests (client -> server) -------------------------------------------------------------

Filter: TypeAlias = str | tuple[str, ...]


@attrs.frozen(kw_only=True)
class Hello:
    """Which protocol versions the client speaks; answered with the version and the limits."""

    req: ReqId
    versions: tuple[int, ...] = (PROTOCOL_VERSION,)


@attrs.frozen(kw_only=True)
class Subscribe:
    """Open subscription ``sub`` on the service's bus: the same filters, ``maxsize`` and
    ``overflow`` as ``Bus.subscribe``. ``credit`` is how many events the server may send
    before the client grants more (``Credit``). ``block_timeout`` (seconds, at most
    ``Limits.max_block_timeout``, which is also the default) bounds how long a publisher
    waits on it under ``block`` before it is cut loose with ``subscriber_too_slow``. There
    is no ``raw``: every event frame carries the upstream frame as it came, and the client
    decodes it or not."""

    req: ReqId
    sub: str
    types: Filter = "*"
    sessions: Filter = "*"
    maxsize: int = 256
    overflow: OverflowPolicy = OverflowPolicy.BLOCK
    credit: int = 64
    block_timeout: float | None = None
    #: Only watches (``rtbus tail``): not counted as handling the sessions' errors.
    observe: bool = False


@attrs.frozen(kw_only=True)
class Unsubscribe:
    """Close subscription ``sub``; answered with its last statistics."""

    req: ReqId
    sub: str


@attrs.frozen(kw_only=True)
class Credit:
    """The client took ``n`` more events of ``sub``: the server may send ``n`` more.

    Flow control, not a request: it has no ``req`` and gets no answer (an error only).
    """

    sub: str
    n: int


@attrs.frozen(kw_only=True)
class Send:
    """Send a client event to a session. ``event`` is the event's JSON object (a mapping, or
    already encoded bytes on the client side)."""

    req: ReqId
    session: str
    event: Mapping[str, Any] | bytes
    #: Seconds to wait for the event's outcome (``accepted`` or ``refused``); ``None``:
    #: answer once it went out, and push a ``refused`` frame if the upstream refuses it.
    wait: float | None = None


@attrs.frozen(kw_only=True)
class OpenSession:
    """Open a session, as ``Service.open_session``; answered once it is ready."""

    req: ReqId
    model: str | None = None
    session: Mapping[str, Any] | None = None
    id: str | None = None


@attrs.frozen(kw_only=True)
class CloseSession:
    """Close session ``id`` gracefully."""

    req: ReqId
    id: str


@attrs.frozen(kw_only=True)
class ListSessions:
    """The sessions the service runs."""

    req: ReqId


@attrs.frozen(kw_only=True)
class ListCalls:
    """The calls the service holds (phone and browser calls)."""

    req: ReqId


@attrs.frozen(kw_only=True)
class HangupCall:
    """Hang call ``id`` up."""

    req: ReqId
    id: str


@attrs.frozen(kw_only=True)
class ReferCall:
    """Transfer SIP call ``id`` to ``target_uri`` (``tel:`` or ``sip:``)."""

    req: ReqId
    id: str
    target_uri: str


Request: TypeAlias = (
    Hello
    | Subscribe
    | Unsubscribe
    | Credit
    | Send
    | OpenSession
    | CloseSession
    | ListSessions
    | ListCalls
    | HangupCall
    | ReferCall
)


# -- checking fields -------------------------------------------------------------------------

_Check = Callable[[Any, Limits], Any]  # returns the value to use, or raises _Invalid


class _Invalid(Exception):
    """A field's value is wrong; ``expected`` says what it must be."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _req(value: object, limits: Limits) -> ReqId:
    if _is_int(value) and 0 <= value < _MAX_REQ_INT:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    raise _Invalid("a string of 1-64 characters or an integer 0..2**53")


def _name(value: object, limits: Limits) -> str:
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    raise _Invalid("1-128 letters, digits, '.', '_', ':', '/' or '-', not starting with a symbol")


def _text(value: object, limits: Limits) -> str:
    if isinstance(value, str) and 0 < len(value) <= 128:
        return value
    raise _Invalid("a non-empty string of at most 128 characters")


def _object(value: object, limits: Limits) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return value
    raise _Invalid("a JSON object")


def _count(low: int, high: Callable[[Limits], int]) -> _Check:
    def check(value: object, limits: Limits) -> int:
        top = high(limits)
        if _is_int(value) and low <= value <= top:  # type: ignore[operator]
            return value  # type: ignore[return-value]
        raise _Invalid(f"an integer {low}..{top}")

    return check


#: The longest a client may wait for an event's outcome.
MAX_WAIT: Final = 30.0


def _wait(value: object, limits: Limits) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_WAIT:
        return float(value)
    raise _Invalid(f"a number of seconds 0..{MAX_WAIT:g}")


def _flag(value: object, limits: Limits) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("true or false")


def _seconds(value: object, limits: Limits) -> float:
    top = limits.max_block_timeout
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= top:
        return float(value)
    raise _Invalid(f"a number of seconds above 0, at most {top:g}")


def _filter(parse: Callable[[Iterable[str]], object]) -> _Check:
    def check(value: object, limits: Limits) -> Filter:
        # Not any iterable: a JSON object would pass as the list of its keys.
        if isinstance(value, list) and len(value) <= limits.max_patterns:
            value = tuple(value)
        elif not isinstance(value, str):
            raise _Invalid(f"'*', a string or a list of at most {limits.max_patterns} strings")
        try:
            parse(value)
        except BusArgumentError as exc:
            raise _Invalid(f"'*', a string or a list of strings ({exc.problem})") from None
        return value

    return check


_POLICIES: Final = ", ".join(repr(policy.value) for policy in OverflowPolicy)


def _policy(value: object, limits: Limits) -> OverflowPolicy:
    try:
        return parse_policy(value)  # type: ignore[arg-type]
    except BusArgumentError:
        raise _Invalid(f"one of {_POLICIES}") from None


def _versions(value: object, limits: Limits) -> tuple[int, ...]:
    if isinstance(value, list) and value and len(value) <= 16 and all(map(_is_int, value)):
        return tuple(value)
    raise _Invalid("a non-empty list of integers")


@attrs.frozen
class _Op:
    """One op's shape: its class and, per field, the check and whether it is required."""

    cls: type[Any]
    fields: Mapping[str, tuple[_Check, bool]]


_REQ: Final = {"req": (_req, True)}
_OPS: Final[Mapping[str, _Op]] = {
    "hello": _Op(Hello, {**_REQ, "versions": (_versions, False)}),
    "subscribe": _Op(
        Subscribe,
        {
            **_REQ,
            "sub": (_name, True),
            "types": (_filter(parse_types), False),
            "sessions": (_filter(parse_sessions), False),
            "maxsize": (_count(1, lambda limits: limits.max_maxsize), False),
            "overflow": (_policy, False),
            "credit": (_count(0, lambda limits: limits.max_maxsize), False),
            "block_timeout": (_seconds, False),
            "observe": (_flag, False),
        },
    ),
    "unsubscribe": _Op(Unsubscribe, {**_REQ, "sub": (_name, True)}),
    "credit": _Op(Credit, {"sub": (_name, True), "n": (_count(1, lambda _: 2**31), True)}),
    "send": _Op(
        Send,
        {**_REQ, "session": (_name, True), "event": (_object, True), "wait": (_wait, False)},
    ),
    "open_session": _Op(
        OpenSession,
        {**_REQ, "model": (_text, False), "session": (_object, False), "id": (_name, False)},
    ),
    "close_session": _Op(CloseSession, {**_REQ, "id": (_name, True)}),
    "list_sessions": _Op(ListSessions, _REQ),
    "list_calls": _Op(ListCalls, _REQ),
    "hangup_call": _Op(HangupCall, {**_REQ, "id": (_name, True)}),
    "refer_call": _Op(ReferCall, {**_REQ, "id": (_name, True), "target_uri": (_text, True)}),
}
_OP_NAMES: Final[Mapping[type[Any], str]] = {op.cls: name for name, op in _OPS.items()}
_OPS_LISTED: Final = ", ".join(_OPS)


def parse_request(data: bytes | str, limits: Limits) -> Request:
    """The request in one client message; raises ``WireError`` saying what is wrong."""
    if len(data) > limits.max_frame_bytes:
        message = f"the frame is {len(data)} bytes; the limit is {limits.max_frame_bytes}"
        raise WireError(ErrorCode.FRAME_TOO_LARGE, message)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(ErrorCode.NOT_JSON, f"the frame is not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise WireError(ErrorCode.MALFORMED_FRAME, "a frame must be a JSON object")
    return _structure(obj, limits)


def _structure(obj: dict[str, Any], limits: Limits) -> Request:
    req, sub = _recover_ids(obj, limits)
    op_name = obj.pop("op", None)
    if op_name is None:
        raise WireError(ErrorCode.MISSING_FIELD, "the frame has no 'op'", req=req, sub=sub)
    op = _OPS.get(op_name) if isinstance(op_name, str) else None
    if op is None:
        message = f"unknown op {_shown(op_name)}; use one of {_OPS_LISTED}"
        raise WireError(ErrorCode.UNKNOWN_OP, message, req=req, sub=sub)
    try:
        return op.cls(**_fields(op_name, op, obj, limits))  # type: ignore[no-any-return]
    except WireError as exc:
        raise WireError(exc.code, exc.message, req=req, sub=sub) from None


def _recover_ids(obj: Mapping[str, Any], limits: Limits) -> tuple[ReqId | None, str | None]:
    """``req`` and ``sub`` if they are well formed, so that any error can be matched."""
    found: list[Any] = []
    for field, check in (("req", _req), ("sub", _name)):
        try:
            found.append(check(obj.get(field), limits))
        except _Invalid:
            found.append(None)
    return found[0], found[1]


def _fields(op_name: str, op: _Op, obj: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    for field in obj:
        if field not in op.fields:
            known = ", ".join(op.fields) or "none"
            message = f"{op_name} has no field {_shown(field)}; its fields are {known}"
            raise WireError(ErrorCode.UNKNOWN_FIELD, message)
    values: dict[str, Any] = {}
    for field, (check, required) in op.fields.items():
        if field not in obj:
            if required:
                raise WireError(ErrorCode.MISSING_FIELD, f"{op_name} needs '{field}'")
            continue
        try:
            values[field] = check(obj[field], limits)
        except _Invalid as exc:
            message = f"{op_name}: '{field}' must be {exc.expected}"
            raise WireError(ErrorCode.INVALID_FIELD, message) from None
    return values


def _shown(value: object) -> str:
    """A client's value in a message: a short string quoted, anything else by its kind."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return f"of type {type(value).__name__}"


def encode_request(request: Request) -> bytes:
    """The JSON bytes of ``request`` (the client's side); ``None`` fields are left out."""
    fields: dict[str, Any] = {"op": _OP_NAMES[type(request)]}
    for name, value in attrs.asdict(request, recurse=False).items():
        if value is not None:
            fields[name] = _wire_value(value)
    return orjson.dumps(fields)


def _wire_value(value: object) -> object:
    if isinstance(value, bytes):
        return orjson.Fragment(value)  # an event the client encoded already
    if isinstance(value, tuple):
        return list(value)
    return value
