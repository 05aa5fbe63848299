"""The calls REST client on trio: accept, reject, hang up, refer, create calls; client secrets.

``async with CallsClient(config) as calls: await calls.accept(call_id, session)``. Requests are
built from ``rtbus.protocol.CALLS_API`` (the routes the ``openai`` package uses) and sent with
httpx2, which runs on trio through anyio.

Invariants:

* Every request carries the config's auth headers and nothing else that is secret; no URL
  carries a secret, and no log line or exception shows a header value or a secret (server
  text is passed through ``redact`` with the request's credentials first).
* A 429 or 5xx answer, or no answer (connection error, timeout), is retried up to
  ``max_retries`` times after ``backoff`` (``Retry-After`` is honoured up to the backoff's
  ``max_delay``); any other 4xx is raised at once. Past the retries the last failure is raised.
  Each failure becomes exactly one ``CallsError`` subclass, raised ``from`` its cause.
* ``aclose`` is idempotent; a client that owns its httpx2 client closes it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Final, Self

import attrs
import httpx2
import orjson
import trio

from rtbus._backoff import Backoff
from rtbus.protocol import (
    CALLS_API,
    DEFAULT_REJECT_STATUS,
    CallOperation,
    RealtimeConfig,
    auth_headers,
    call_id_from_location,
    redact,
    rest_base_url,
)
from rtbus.protocol import ProtocolError as _ProtocolError  # the Location is malformed

from ._errors import (
    CallNotFoundError,
    CallsError,
    CallsRequestError,
    CallsTransportError,
    CallsUpstreamError,
)

__all__ = ["CallsClient", "ClientSecret", "CreatedCall"]

log = logging.getLogger("rtbus.calls")

JSONObject = Mapping[str, object]

_RETRY_STATUSES: Final = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "api-key"})
_JSON: Final = "application/json"


@attrs.frozen
class CreatedCall:
    """A WebRTC call made with ``create``: its id and the SDP answer for the caller."""

    call_id: str
    sdp_answer: str = attrs.field(repr=lambda sdp: f"<{len(sdp)} chars of SDP>")


@attrs.frozen
class ClientSecret:
    """An ephemeral key (``ek_...``) for a browser or phone app; ``value`` is never shown."""

    value: str = attrs.field(repr=False)
    expires_at: int
    session: dict[str, object]


class CallsClient(trio.abc.AsyncResource):
    """The calls API of the upstream ``config`` names.

    ``timeout`` bounds each phase of each attempt (connect, write, each read); ``max_retries``
    and ``backoff`` govern retries. ``http`` lets a caller share one httpx2 client (it is then
    not closed here).
    """

    def __init__(
        self,
        config: RealtimeConfig,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        http: httpx2.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._base = rest_base_url(config)
        self._headers = dict(auth_headers(config))
        self._secrets = _secrets_of(self._headers)
        self._max_retries = max_retries
        self._backoff = backoff or Backoff(base=0.5, max_delay=8.0)
        self._rng = rng or random.Random()
        self._owns_http = http is None
        self._timeout = timeout
        self._http = http or httpx2.AsyncClient()
        self._closed = False

    def __repr__(self) -> str:
        return f"<CallsClient {self._base}>"

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    # The operations.

    async def accept(self, call_id: str, session: JSONObject) -> None:
        """Accept an incoming call with ``session`` (a realtime session config,
        ``{"type": "realtime", "model": ..., ...}``)."""
        await self._send(CallOperation.ACCEPT, call_id, _Body.json(session))

    async def reject(self, call_id: str, status_code: int = DEFAULT_REJECT_STATUS) -> None:
        """Decline an incoming call; the caller hears SIP ``status_code`` (603 Decline)."""
        await self._send(CallOperation.REJECT, call_id, _Body.json({"status_code": status_code}))

    async def hangup(self, call_id: str) -> None:
        """End an active call (SIP or WebRTC)."""
        await self._send(CallOperation.HANGUP, call_id, _Body())

    async def refer(self, call_id: str, target_uri: str) -> None:
        """Transfer an active SIP call to ``target_uri`` (``tel:`` or ``sip:``)."""
        await self._send(CallOperation.REFER, call_id, _Body.json({"target_uri": target_uri}))

    async def create(self, sdp_offer: str, session: JSONObject | None = None) -> CreatedCall:
        """Start a WebRTC call from the caller's SDP offer: the answer and the new call's id.

        As the ``openai`` package sends it: with a session, multipart ``sdp`` and ``session``
        fields; without one, the bare offer as ``application/sdp``."""
        body: _Body
        if session is None:
            body = _Body(content=sdp_offer.encode(), content_type="application/sdp")
        else:
            sdp = (None, sdp_offer.encode(), "application/sdp")
            body = _Body(files={"sdp": sdp, "session": (None, orjson.dumps(session), _JSON)})
        response = await self._send(CallOperation.CREATE, None, body, accept="application/sdp")
        return CreatedCall(_location_call_id(response), response.text)

    async def client_secret(
        self, session: JSONObject, *, expires_after: JSONObject | None = None
    ) -> ClientSecret:
        """An ephemeral key for ``session`` (``{"type": "realtime", ...}`` or a transcription
        session), with ``expires_after`` (``{"anchor": "created_at", "seconds": 600}``)."""
        body: dict[str, object] = {"session": session}
        if expires_after is not None:
            body["expires_after"] = expires_after
        response = await self._send(CallOperation.CLIENT_SECRET, None, _Body.json(body))
        return _client_secret(response, CALLS_API[CallOperation.CLIENT_SECRET].name)

    # Sending, retrying, translating.

    async def _send(
        self,
        operation: CallOperation,
        call_id: str | None,
        body: _Body,
        *,
        accept: str = "*/*",
    ) -> httpx2.Response:
        route = CALLS_API[operation]
        url = self._base + route.path(call_id)  # a missing call id is a ProtocolError here
        headers = {**self._headers, "Accept": accept}
        attempt = 0
        while True:
            # A fresh request per attempt: a multipart body is a stream, read once.
            request = body.request(self._http, url, headers, self._timeout)
            outcome = await self._attempt(request, route.name, call_id)
            if isinstance(outcome, httpx2.Response):
                return outcome
            if not _retryable(outcome) or attempt >= self._max_retries:
                raise outcome
            attempt += 1
            delay = self._delay(attempt, outcome)
            log.info("%s failed (%s); retry %d in %.2fs", route.name, outcome, attempt, delay)
            await trio.sleep(delay)

    def _delay(self, attempt: int, failure: CallsError) -> float:
        delay = self._backoff.delay(attempt, self._rng)
        asked = failure.retry_after if isinstance(failure, CallsUpstreamError) else None
        # The server's Retry-After is honoured, but never past our own longest wait.
        return max(delay, min(asked or 0.0, self._backoff.max_delay))

    async def _attempt(
        self, request: httpx2.Request, endpoint: str, call_id: str | None
    ) -> httpx2.Response | CallsError:
        try:
            response = await self._http.send(request)
        except httpx2.TransportError as exc:
            error = CallsTransportError(f"no answer ({type(exc).__name__})", endpoint, call_id)
            error.__cause__ = exc  # raised later, after the retries: keep the cause now
            return error
        log.debug("%s -> %d", endpoint, response.status_code)
        if response.is_success:
            return response
        return _status_error(response, endpoint, call_id, self._secrets)


@attrs.frozen
class _Body:
    """A request body: JSON, raw content of a type, multipart files, or nothing."""

    content: bytes | None = None
    content_type: str | None = None
    files: Mapping[str, tuple[None, bytes, str]] | None = None

    @classmethod
    def json(cls, payload: JSONObject) -> _Body:
        return cls(orjson.dumps(payload), _JSON)

    def request(
        self, http: httpx2.AsyncClient, url: str, headers: Mapping[str, str], timeout: float
    ) -> httpx2.Request:
        if self.content_type is not None:
            headers = {**headers, "Content-Type": self.content_type}
        return http.build_request(
            "POST", url, headers=headers, content=self.content, files=self.files, timeout=timeout
        )


def _retryable(error: CallsError) -> bool:
    if isinstance(error, CallsTransportError):
        return True
    return isinstance(error, CallsUpstreamError)


_STATUS_ERRORS: Final[dict[int, type[CallsRequestError]]] = {404: CallNotFoundError}


def _status_error(
    response: httpx2.Response, endpoint: str, call_id: str | None, secrets: frozenset[str]
) -> CallsError:
    message, code = _error_details(response)
    message = redact(message, secrets)
    status = response.status_code
    if status in _RETRY_STATUSES:
        error = CallsUpstreamError(message, endpoint, call_id, status=status, code=code)
        error.retry_after = _retry_after(response)
        return error
    kind = _STATUS_ERRORS.get(status, CallsRequestError)
    return kind(message, endpoint, call_id, status=status, code=code)


def _retry_after(response: httpx2.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # an HTTP date, or nothing: our own backoff decides


def _error_details(response: httpx2.Response) -> tuple[str, str | None]:
    """The ``{"error": {"message", "code"}}`` the API sends, or the reason phrase."""
    try:
        error = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return response.reason_phrase or "error", None
    code = error.get("code")
    return str(error.get("message") or "error"), code if isinstance(code, str) else None


def _location_call_id(response: httpx2.Response) -> str:
    endpoint = CALLS_API[CallOperation.CREATE].name
    location = response.headers.get("location", "")
    try:
        return call_id_from_location(location)
    except _ProtocolError as exc:
        raise CallsUpstreamError(
            "the answer has no Location naming the call",
            endpoint,
            None,
            status=response.status_code,
        ) from exc


def _client_secret(response: httpx2.Response, endpoint: str) -> ClientSecret:
    try:
        body = orjson.loads(response.content)
        return ClientSecret(
            value=str(body["value"]),
            expires_at=int(body["expires_at"]),
            session=dict(body["session"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CallsUpstreamError(
            "the answer is not a client secret", endpoint, None, status=response.status_code
        ) from exc


def _secrets_of(headers: Mapping[str, str]) -> frozenset[str]:
    values = {v for n, v in headers.items() if n.lower() in _CREDENTIAL_HEADERS}
    return frozenset(values | {v.partition(" ")[2] for v in values if " " in v})
