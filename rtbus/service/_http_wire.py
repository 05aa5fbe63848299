"""HTTP plumbing for the control surface, between ASGI and the routes.

Requests come in as ``Request`` values and leave as ``Response`` values; everything a client
can get wrong is an ``HttpError``, which becomes ``{"error": {"code": ..., "message": ...}}``.

Invariants:

* A body is read incrementally and never past the limit: a ``Content-Length`` over it is
  refused before a byte is read, a chunked body as soon as it passes it.
* A body must be a JSON object sent as ``application/json``; an empty body is ``{}`` (so
  ``curl -X POST .../v1/sessions`` opens a session with the defaults).
* Bearer tokens are compared in constant time and never repeated in a message.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import orjson
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

__all__ = [
    "HttpError",
    "Request",
    "Response",
    "check_bearer",
    "error_response",
    "header_map",
    "json_response",
    "media_type",
    "parse_json_object",
    "read_body",
    "send_response",
]

JSON: Final = "application/json"
_CHALLENGE: Final = 'Bearer realm="rtbus"'


class HttpError(Exception):
    """Raised when a request cannot be served: the client's fault (4xx) or an upstream's
    (502, 504), or the service is not taking work (503). ``code`` is stable, for programs;
    ``message`` says what was wrong, for people."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message}"


@attrs.frozen
class Request:
    """One HTTP request as the routes see it: header names lowercased (the first of repeated
    headers wins), ``params`` from the route template, ``body`` the parsed JSON object, ``raw``
    the body's bytes for a route that reads them itself."""

    method: str
    path: str
    headers: Mapping[str, str]
    params: Mapping[str, str] = attrs.field(factory=dict)
    body: Mapping[str, Any] = attrs.field(factory=dict)
    raw: bytes = attrs.field(default=b"", repr=False)


@attrs.frozen
class Response:
    """One HTTP response; ``content_type`` None for a response without a body."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON
    headers: Mapping[str, str] = attrs.field(factory=dict)


def json_response(
    status: int, payload: object, *, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(status, orjson.dumps(payload), headers=dict(headers or {}))


def error_response(error: HttpError) -> Response:
    payload = {"error": {"code": error.code, "message": error.message}}
    return json_response(error.status, payload, headers=error.headers)


def header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def check_bearer(headers: Mapping[str, str], token: str) -> None:
    """Raise 401 unless ``Authorization: Bearer <token>`` carries ``token``."""
    given = headers.get("authorization")
    if given is None:
        raise _unauthorized("missing Authorization header: use 'Authorization: Bearer <token>'")
    scheme, _, credentials = given.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _unauthorized("the Authorization header must use the Bearer scheme")
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        raise _unauthorized("the bearer token is not valid", error="invalid_token")


def _unauthorized(message: str, *, error: str | None = None) -> HttpError:
    challenge = _CHALLENGE if error is None else f'{_CHALLENGE}, error="{error}"'
    return HttpError(401, "unauthorized", message, headers={"www-authenticate": challenge})


async def read_body(receive: ASGIReceiveCallable, headers: Mapping[str, str], limit: int) -> bytes:
    """The request body, read chunk by chunk; 413 as soon as it is over ``limit`` bytes."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise HttpError(400, "incomplete_body", "the client went away before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "body_too_large", f"the request body is over {limit} bytes")


def media_type(headers: Mapping[str, str]) -> str:
    """The request's media type, lowercased, without parameters ("" when none)."""
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def parse_json_object(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The body as a JSON object: 415 if it is not sent as JSON, 400 if it is not an object."""
    if not body:
        return {}
    sent_as = media_type(headers)
    if sent_as != JSON:
        shown = sent_as or "none"
        raise HttpError(415, "unsupported_media_type", f"send {JSON}, not {shown}")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        kind = _JSON_KINDS.get(type(parsed), "a value")
        raise HttpError(400, "invalid_body", f"the body must be a JSON object, not {kind}")
    return parsed


_JSON_KINDS: Final[Mapping[type, str]] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


async def send_response(send: ASGISendCallable, response: Response) -> None:
    headers = [(name.encode(), value.encode()) for name, value in response.headers.items()]
    if response.content_type is not None:
        headers.append((b"content-type", response.content_type.encode()))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
