"""The public surface of ``rtbus.calls`` and the calls names in ``rtbus.protocol``."""

from __future__ import annotations

import rtbus.calls
import rtbus.protocol

CALLS = {
    "CallNotFoundError",
    "CallsClient",
    "CallsError",
    "CallsRequestError",
    "CallsTransportError",
    "CallsUpstreamError",
    "ClientSecret",
    "CreatedCall",
}

PROTOCOL = {
    "CALL_EVENTS",
    "CALL_LIFECYCLE_TYPES",
    "ENDED_BY",
    "CallAccepted",
    "CallEnded",
    "CallEvent",
    "CallIncoming",
    "CallReferred",
    "CallRejected",
    "EndedBy",
    "ActOnWebhook",
    "WebhookInbox",
    "WebhookRedelivery",
    "WebhookRefusal",
    "WebhookVerdict",
    "CALLS_API",
    "DEFAULT_REJECT_STATUS",
    "CallOperation",
    "DeliveryLog",
    "DeliveryLogStatistics",
    "MalformedWebhookError",
    "RealtimeCallIncoming",
    "RealtimeTarget",
    "Route",
    "SipHeader",
    "TargetKind",
    "UnknownWebhookEvent",
    "VerifiedDelivery",
    "WebhookError",
    "WebhookEvent",
    "WebhookSecret",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "WebhookVerifier",
    "call_id_from_location",
    "decode_webhook_event",
    "match_route",
    "rest_base_url",
    "sign_webhook",
}


def test_calls_names() -> None:
    assert set(rtbus.calls.__all__) == CALLS


def test_protocol_names() -> None:
    assert set(rtbus.protocol.__all__) >= PROTOCOL


def test_calls_errors_are_rtbus_errors() -> None:
    assert issubclass(rtbus.calls.CallNotFoundError, rtbus.calls.CallsRequestError)
    for name in CALLS:
        value = getattr(rtbus.calls, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, rtbus.protocol.RtbusError)
