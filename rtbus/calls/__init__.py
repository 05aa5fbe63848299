"""Calls: the Realtime calls REST API on trio, for SIP and WebRTC calls.

``async with CallsClient(config) as calls`` gives ``accept``, ``reject``, ``hangup``,
``refer``, ``create`` (a WebRTC call from an SDP offer) and ``client_secret`` (an ephemeral
key). Incoming calls arrive as webhooks; their verification and the dedupe of redeliveries are
sans-IO and live in ``rtbus.protocol`` (``WebhookVerifier``, ``DeliveryLog``,
``decode_webhook_event``), where the simulator can use them too. Once accepted, a call is
served over the WebSocket ``RealtimeTarget.call(call_id)`` names.
"""

from ._client import CallsClient as CallsClient
from ._client import ClientSecret as ClientSecret
from ._client import CreatedCall as CreatedCall
from ._errors import CallNotFoundError as CallNotFoundError
from ._errors import CallsError as CallsError
from ._errors import CallsRequestError as CallsRequestError
from ._errors import CallsTransportError as CallsTransportError
from ._errors import CallsUpstreamError as CallsUpstreamError

__all__ = [
    "CallNotFoundError",
    "CallsClient",
    "CallsError",
    "CallsRequestError",
    "CallsTransportError",
    "CallsUpstreamError",
    "ClientSecret",
    "CreatedCall",
]
