"""Deciding a WebSocket handshake: which path, which model, which key, which faults.

Sans-IO: ``admit`` reads the request target and headers and returns an ``Admission`` or a
``Rejection`` (an HTTP status and a JSON body shaped like the real API's REST errors). The
body never repeats the key a client sent.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

from rtbus.protocol import ConfigError

from ._faults import Fault

__all__ = ["REALTIME_PATHS", "Admission", "Rejection", "admit", "check_key"]

#: OpenAI's path, then Azure's preview and GA paths.
REALTIME_PATHS = frozenset({"/v1/realtime", "/openai/realtime", "/openai/v1/realtime"})

_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_WRONG_KEY = (
    "Incorrect API key provided. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)


@attrs.frozen
class Admission:
    """The handshake is accepted: the session's model (or the call it attaches to, whose
    model the accept chose), whether it is a transcription session (``intent=transcription``,
    no model), and this connection's scripted faults."""

    model: str
    faults: tuple[Fault, ...] = ()
    call_id: str | None = None
    transcription: bool = False


@attrs.frozen
class Rejection:
    """The handshake is refused with ``status`` and a JSON ``body``."""

    status: int
    body: bytes

    @classmethod
    def of(cls, status: int, message: str, code: str | None) -> Rejection:
        """A rejection whose body is ``{"error": {...}}`` as the REST API sends."""
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        return cls(status, orjson.dumps({"error": error}))


def admit(
    target: str, headers: list[tuple[bytes, bytes]], api_key: str | None
) -> Admission | Rejection:
    """Judge a handshake for ``target`` (path and query) against the expected ``api_key``."""
    url = urlsplit(target)
    if url.path.rstrip("/") not in REALTIME_PATHS:
        return Rejection.of(404, f"Invalid URL (GET {url.path})", "not_found")
    refusal = _check_key(headers, api_key)
    if refusal is not None:
        return refusal
    query = parse_qs(url.query)
    model = (query.get("model") or query.get("deployment") or [""])[0]
    call_id = (query.get("call_id") or [""])[0]
    intent = (query.get("intent") or [""])[0]
    if intent and intent != "transcription":
        message = f"Invalid value: '{intent}'. Supported values are: 'transcription'."
        return Rejection.of(400, message, "invalid_intent")
    if intent and (model or call_id):
        # One target per connection: a transcription session names no model and no call.
        named = "model" if model else "call_id"
        message = f"'intent' and '{named}' cannot both be given: a connection has one target."
        return Rejection.of(400, message, "invalid_intent")
    if not model and not call_id and not intent:
        return Rejection.of(400, "Missing required parameter: 'model'.", "missing_model")
    try:
        faults = tuple(Fault.parse(spec) for spec in query.get("sim_fault", []))
    except ConfigError as exc:
        return Rejection.of(400, str(exc), "invalid_sim_fault")
    return Admission(model, faults, call_id or None, transcription=bool(intent))


def check_key(headers: list[tuple[bytes, bytes]], api_key: str | None) -> Rejection | None:
    """The 401 a request without ``api_key`` earns (the REST API checks keys as the handshake
    does), or ``None``."""
    return _check_key(headers, api_key)


def _check_key(headers: list[tuple[bytes, bytes]], api_key: str | None) -> Rejection | None:
    if api_key is None:
        return None
    offered = _offered_key(headers)
    if offered is None:
        return Rejection.of(401, _MISSING_KEY, None)
    # Constant-time, so the simulator does not teach timing attacks to its users' tests.
    if not hmac.compare_digest(offered.encode(), api_key.encode()):
        return Rejection.of(401, _WRONG_KEY, "invalid_api_key")
    return None


def _offered_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"api-key":
            return value.decode("latin-1")
        if lowered == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None
