"""The simulated calls REST API: a book of calls and their states (sans-IO).

``CallBook`` answers ``POST /v1/realtime/calls...`` and ``POST /v1/realtime/client_secrets``
(routes from ``rtbus.protocol.CALLS_API``) with a ``Reply``, and decides whether a
``?call_id=`` WebSocket may attach. Times come in as ``now``; nothing here does I/O.

A call's life, as a table (``_ALLOWED``): a SIP call rings (``RINGING``) until it is accepted,
rejected, or the caller gives up after ``ring_seconds`` (``MISSED``); a WebRTC call made with
``create`` starts ``ACCEPTED``. An accepted call is ``ACTIVE`` once its control WebSocket
attaches (a later control connection may attach again, as after a drop); ``hangup`` (or the
caller hanging up, or a ``refer``) ends it (``ENDED``).

Invariants:

* An unknown call id, and a call that is over (rejected, missed, ended), get the 404 error
  body ``call_not_found``; an operation the call's state does not allow gets a 400
  ``invalid_request_error`` naming the state. Errors are shaped like the REST API's
  (``{"error": {"message", "type", "param", "code"}}``).
* An accept's session is checked by a throwaway ``SimSession`` exactly as a ``session.update``
  is, so the simulator's one schema judges both; a bad one is a 400 whose ``param`` is the
  dotted path of the field, and the call keeps ringing.
* Each ended call's ``on_end`` callbacks run once (the shell closes the WebSocket there).
"""

from __future__ import annotations

import email.parser
import email.policy
import enum
import random
from collections.abc import Callable
from typing import Final

import attrs
import orjson

from rtbus.protocol import DEFAULT_REJECT_STATUS, CallOperation

from ._ids import IdSource
from ._session import SessionSettings, SimSession

__all__ = ["Call", "CallBook", "CallState", "Reply"]

JSONObject = dict[str, object]


class CallState(enum.Enum):
    """Where a call is in its life."""

    RINGING = "ringing"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    REJECTED = "rejected"
    MISSED = "missed"
    ENDED = "ended"


_OVER: Final = frozenset({CallState.REJECTED, CallState.MISSED, CallState.ENDED})
_LIVE: Final = frozenset({CallState.ACCEPTED, CallState.ACTIVE})

# Which states each operation may act on, and the state it leaves the call in.
_ALLOWED: Final[dict[CallOperation, tuple[frozenset[CallState], CallState]]] = {
    CallOperation.ACCEPT: (frozenset({CallState.RINGING}), CallState.ACCEPTED),
    CallOperation.REJECT: (frozenset({CallState.RINGING}), CallState.REJECTED),
    CallOperation.HANGUP: (_LIVE | {CallState.RINGING}, CallState.ENDED),
    CallOperation.REFER: (_LIVE, CallState.ENDED),
}


@attrs.frozen
class Reply:
    """An HTTP answer: status, headers and body."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: object, *extra: tuple[str, str]) -> Reply:
        """A JSON answer."""
        return cls(status, orjson.dumps(payload), (("content-type", "application/json"), *extra))

    @classmethod
    def error(cls, status: int, message: str, code: str | None, param: str | None = None) -> Reply:
        """An error answer shaped as the REST API's (a 5xx is a ``server_error``)."""
        kind = "server_error" if status >= 500 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": param, "code": code}
        return cls.json(status, {"error": error})


@attrs.define(eq=False)
class Call:
    """One call: its id, state, session config, SIP headers, and who to tell when it ends."""

    call_id: str
    state: CallState
    rang_at: float
    sip_headers: tuple[tuple[str, str], ...] = ()
    session: JSONObject | None = None
    ended_by: str | None = None
    referred_to: str | None = None
    turns_taken: int = 0
    on_end: list[Callable[[], None]] = attrs.Factory(list)

    def end(self, state: CallState, by: str) -> None:
        """Move to a final state and tell every listener, once."""
        if self.state in _OVER:
            return
        self.state, self.ended_by = state, by
        listeners, self.on_end = self.on_end, []
        for listener in listeners:
            listener()


class CallBook:
    """Every call the simulated phone network has seen, and the calls REST API over them."""

    def __init__(
        self, *, rng: random.Random, settings: SessionSettings, ring_seconds: float = 30.0
    ) -> None:
        self._ids = IdSource(rng)
        self._rng = rng
        self._settings = settings
        self.ring_seconds = ring_seconds
        self._calls: dict[str, Call] = {}
        self._handlers: dict[CallOperation, Callable[[str | None, Request], Reply]] = {
            CallOperation.ACCEPT: self._accept,
            CallOperation.REJECT: self._reject,
            CallOperation.HANGUP: self._hangup,
            CallOperation.REFER: self._refer,
            CallOperation.CREATE: self._create,
            CallOperation.CLIENT_SECRET: self._client_secret,
        }

    def __getitem__(self, call_id: str) -> Call:
        return self._calls[call_id]

    def ring(self, sip_headers: tuple[tuple[str, str], ...], now: float) -> Call:
        """A new incoming SIP call, ringing."""
        call = Call(self._call_id(), CallState.RINGING, now, sip_headers)
        self._calls[call.call_id] = call
        return call

    def handle(self, operation: CallOperation, call_id: str | None, request: Request) -> Reply:
        """The answer to one calls API request."""
        self._miss_overdue(request.now)
        return self._handlers[operation](call_id, request)

    def attach(self, call_id: str, now: float) -> Call | Reply:
        """The call a ``?call_id=`` WebSocket attaches to, or the refusal (404/400)."""
        self._miss_overdue(now)
        call = self._calls.get(call_id)
        if call is None or call.state in _OVER:
            return _not_found(call_id)
        if call.state is CallState.RINGING:
            return _wrong_state(call, "attach to")
        # An active call takes a new control connection: the old one dropped and reconnects.
        call.state = CallState.ACTIVE
        return call

    def _call_id(self) -> str:
        # The real service's shape: rtc_u1_ and 32 hex digits.
        return f"rtc_u1_{self._rng.getrandbits(128):032x}"

    # The operations on a call.

    def _accept(self, call_id: str | None, request: Request) -> Reply:
        call = self._live_call(call_id, CallOperation.ACCEPT)
        if isinstance(call, Reply):
            return call
        checked = self._checked_session(request.json())
        if isinstance(checked, Reply):
            return checked
        call.session, call.state = checked, CallState.ACCEPTED
        return Reply(200)

    def _reject(self, call_id: str | None, request: Request) -> Reply:
        call = self._live_call(call_id, CallOperation.REJECT)
        if isinstance(call, Reply):
            return call
        status = request.json().get("status_code", DEFAULT_REJECT_STATUS)
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 699:
            return Reply.error(400, "Invalid 'status_code': expected a SIP status from 400 to 699.",
                               "invalid_value", "status_code")  # fmt: skip
        call.end(CallState.REJECTED, f"rejected with SIP {status}")
        return Reply(200)

    def _hangup(self, call_id: str | None, request: Request) -> Reply:
        call = self._live_call(call_id, CallOperation.HANGUP)
        if isinstance(call, Reply):
            return call
        call.end(CallState.ENDED, "hangup")
        return Reply(200)

    def _refer(self, call_id: str | None, request: Request) -> Reply:
        target = request.json().get("target_uri")
        if not isinstance(target, str) or not target.startswith(("tel:", "sip:")):
            return Reply.error(400, "Invalid 'target_uri': expected a tel: or sip: URI.",
                               "invalid_value", "target_uri")  # fmt: skip
        call = self._live_call(call_id, CallOperation.REFER)
        if isinstance(call, Reply):
            return call
        call.referred_to = target
        call.end(CallState.ENDED, f"referred to {target}")
        return Reply(200)

    def _create(self, call_id: str | None, request: Request) -> Reply:
        parts = request.form()
        offer = parts.get("sdp", b"").decode(errors="replace")
        if not offer.startswith("v=0"):
            return Reply.error(400, "Invalid 'sdp': expected an SDP offer.", "invalid_offer", "sdp")
        update = _json_object(parts.get("session", b'{"type": "realtime"}'))
        if update is None:
            return Reply.error(400, "Invalid 'session': expected a JSON object.",
                               "invalid_value", "session")  # fmt: skip
        session = self._checked_session(update)
        if isinstance(session, Reply):
            return session
        call = Call(self._call_id(), CallState.ACCEPTED, request.now, session=session)
        self._calls[call.call_id] = call
        location = ("location", f"/v1/realtime/calls/{call.call_id}")
        return Reply(201, _sdp_answer(offer, self._rng).encode(),
                     (("content-type", "application/sdp"), location))  # fmt: skip

    def _client_secret(self, call_id: str | None, request: Request) -> Reply:
        body = request.json()
        update = body.get("session", {"type": "realtime"})
        update = update if isinstance(update, dict) else {}
        # A browser may be given a transcription session; a call's session is a conversation.
        session = self._probe(update, transcription=update.get("type") == "transcription")
        if isinstance(session, Reply):
            return session
        ttl = _dig_seconds(body.get("expires_after"))
        payload = {
            "value": self._ids.new("ek"),
            "expires_at": int(request.now + ttl),
            "session": session.session,
        }
        return Reply.json(200, payload)

    # Helpers.

    def _live_call(self, call_id: str | None, operation: CallOperation) -> Call | Reply:
        call = self._calls.get(call_id or "")
        if call is None or call.state in _OVER:
            return _not_found(call_id or "")
        allowed, _ = _ALLOWED[operation]
        if call.state not in allowed:
            return _wrong_state(call, operation.value)
        return call

    def _checked_session(self, update: JSONObject) -> JSONObject | Reply:
        probe = self._probe(update)
        return probe if isinstance(probe, Reply) else update

    def _probe(self, update: JSONObject, *, transcription: bool = False) -> SimSession | Reply:
        """A session (of the kind asked) with ``update`` applied, or the 400 it earns."""
        model = update.get("model", "gpt-realtime")
        probe = SimSession(
            model=str(model),
            settings=self._settings,
            rng=self._rng,
            now=0.0,
            transcription=transcription,
        )
        frame = orjson.dumps({"type": "session.update", "session": update})
        events = probe.receive(frame)
        errors = [e["error"] for e in events if e.get("type") == "error"]
        if errors and isinstance(errors[0], dict):
            error = errors[0]
            param = error.get("param")
            return Reply.error(400, str(error.get("message")), _text(error.get("code")),
                               _text(param))  # fmt: skip
        return probe

    def _miss_overdue(self, now: float) -> None:
        # A caller gives up after ``ring_seconds``: an accept after that is too late.
        for call in list(self._calls.values()):
            if call.state is CallState.RINGING and now - call.rang_at > self.ring_seconds:
                call.end(CallState.MISSED, "caller gave up")


@attrs.frozen
class Request:
    """The parts of an HTTP request the calls API reads."""

    body: bytes
    content_type: str
    now: float

    def json(self) -> JSONObject:
        """The body as a JSON object (an empty or unreadable body reads as ``{}``, which the
        operations then judge field by field)."""
        return _json_object(self.body) or {}

    def form(self) -> dict[str, bytes]:
        """The fields of a ``multipart/form-data`` body, by name; a bare ``application/sdp``
        body (what the ``openai`` package sends when there is no session) is the ``sdp``."""
        if self.content_type.startswith("application/sdp"):
            return {"sdp": self.body}
        head = f"Content-Type: {self.content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        fields: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        return fields


def _json_object(data: bytes) -> JSONObject | None:
    if not data:
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _not_found(call_id: str) -> Reply:
    return Reply.error(404, f"Call '{call_id}' not found.", "call_not_found", "call_id")


def _wrong_state(call: Call, verb: str) -> Reply:
    message = f"Cannot {verb} call '{call.call_id}': the call is {call.state.value}."
    return Reply.error(400, message, "invalid_call_state")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dig_seconds(expires_after: object) -> float:
    seconds = expires_after.get("seconds") if isinstance(expires_after, dict) else None
    return float(seconds) if isinstance(seconds, int) and 10 <= seconds <= 7200 else 600.0


def _sdp_answer(offer: str, rng: random.Random) -> str:
    """A well-formed SDP answer: one audio m-line (Opus) and the data channel if offered."""
    session_id = rng.getrandbits(62)
    lines = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0" + (" 1" if "m=application" in offer else ""),
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=sendrecv",
        f"a=ice-ufrag:{rng.getrandbits(32):08x}",
        f"a=ice-pwd:{rng.getrandbits(128):032x}",
        "a=fingerprint:sha-256 " + ":".join(f"{rng.getrandbits(8):02X}" for _ in range(32)),
        "a=setup:active",
        "a=rtpmap:111 opus/48000/2",
    ]
    if "m=application" in offer:
        lines += ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:1"]
    return "\r\n".join(lines) + "\r\n"
