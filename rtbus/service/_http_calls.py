"""Calls over HTTP: a thin adapter over the control surface's call operations, and the
webhook intake.

    POST /v1/webhooks/openai        a signed webhook (no token)   200 ack; 400/401 refused;
                                                                   503 draining or busy
    GET  /v1/calls                                                 200, {"calls": [...]}
    POST /v1/calls                  a browser's SDP offer          201, the SDP answer
                                    (application/sdp, or JSON      (application/sdp) and
                                    {"sdp": "v=0..."})             Location: /v1/calls/{id}
    POST /v1/calls/{id}/hangup                                     200, the call
    POST /v1/calls/{id}/refer       {"target_uri": "tel:..."}      200, the call
    POST /v1/client_secrets         {"expires_after"?: seconds}    200, {"value", "expires_at",
                                                                   "session"}

The webhook route is outside the control API's door (no bearer token): its signature is its
credential, checked by the switchboard's ``WebhookInbox`` before anything else. Every other
route is behind the token like ``/v1/sessions``. A ``ControlError`` is answered as the HTTP
error its code means (``STATUS``).
"""

from __future__ import annotations

from typing import Final

from ._control import Control
from ._http_control import control_errors
from ._http_routes import Route
from ._http_wire import (
    JSON,
    HttpError,
    Request,
    Response,
    json_response,
    media_type,
    parse_json_object,
)
from ._service import Service

__all__ = ["WEBHOOK_PATH", "CallsApi"]

#: Where OpenAI (or the simulator's phone network) delivers call webhooks.
WEBHOOK_PATH: Final = "/v1/webhooks/openai"
_SDP: Final = "application/sdp"


class CallsApi:
    """The calls routes over one service's control surface."""

    def __init__(self, service: Service, *, start_timeout: float) -> None:
        self._service = service
        self._control = Control(service, start_timeout=start_timeout)

    def routes(self) -> tuple[Route, ...]:
        control = {"control": True}
        return (
            Route("POST", WEBHOOK_PATH, self.webhook, raw_body=True),
            Route("GET", "/v1/calls", control_errors(self.list), **control),
            Route("POST", "/v1/calls", control_errors(self.create), raw_body=True, **control),
            Route("POST", "/v1/calls/{id}/hangup", control_errors(self.hangup), **control),
            Route(
                "POST",
                "/v1/calls/{id}/refer",
                control_errors(self.refer),
                takes_body=True,
                **control,
            ),
            Route(
                "POST",
                "/v1/client_secrets",
                control_errors(self.client_secret),
                takes_body=True,
                **control,
            ),
        )

    async def webhook(self, request: Request) -> Response:
        board = self._service.switchboard
        if board is None and self._service.draining:  # the switchboard stopped first
            raise HttpError(503, "draining", "the service is draining and takes no calls")
        if board is None:
            raise HttpError(404, "not_found", "calls are not running in this service")
        answer = board.receive_webhook(request.headers, request.raw)
        if answer.status >= 300:
            raise HttpError(answer.status, answer.code, answer.message)
        return json_response(answer.status, {"status": "received"})

    async def list(self, request: Request) -> Response:
        return json_response(200, {"calls": [view.as_json() for view in self._control.calls()]})

    async def create(self, request: Request) -> Response:
        view, answer = await self._control.create_call(_sdp_offer(request))
        headers = {"location": f"/v1/calls/{view.call_id}"}
        return Response(201, answer.encode(), content_type=_SDP, headers=headers)

    async def hangup(self, request: Request) -> Response:
        view = await self._control.hangup_call(request.params["id"])
        return json_response(200, view.as_json())

    async def refer(self, request: Request) -> Response:
        view = await self._control.refer_call(request.params["id"], request.body)
        return json_response(200, view.as_json())

    async def client_secret(self, request: Request) -> Response:
        secret = await self._control.client_secret(request.body)
        shown = {"value": secret.value, "expires_at": secret.expires_at, "session": secret.session}
        return json_response(200, shown, headers={"cache-control": "no-store"})


def _sdp_offer(request: Request) -> str:
    """The offer, sent as ``application/sdp`` or as JSON ``{"sdp": ...}``."""
    sent_as = media_type(request.headers)
    if sent_as == _SDP:
        return request.raw.decode("utf-8", errors="replace")
    if sent_as != JSON:
        message = f'send the offer as {_SDP} (or {JSON} {{"sdp": ...}}), not {sent_as or "none"}'
        raise HttpError(415, "unsupported_media_type", message)
    body = parse_json_object(request.raw, request.headers)
    offer = body.get("sdp")
    if set(body) != {"sdp"} or not isinstance(offer, str):
        raise HttpError(400, "invalid_field", 'the JSON body must be {"sdp": "<the offer>"}')
    return offer
