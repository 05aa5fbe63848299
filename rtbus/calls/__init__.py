"""Calls: the Realtime calls REST API on trio, for SIP and WebRTC calls.

``async with CallsClient(config) as calls`` gives ``accept``, ``reject``, ``hangup``,
``refer``, ``create`` (a WebRTC call from an SDP offer) and ``client_secret`` (an ephemeral
key), sending what the ``openai`` package sends. This package sits beside ``rtbus.transport``:
it imports ``rtbus.protocol`` and ``rtbus._backoff`` only.

Incoming calls arrive as webhooks. Judging them is sans-IO and lives in ``rtbus.protocol``
(``WebhookInbox`` over ``WebhookVerifier`` and ``DeliveryLog``; ``decode_webhook_event``),
where the simulator signs with the same code. An accepted call is then served over the
WebSocket ``RealtimeTarget.call(call_id)`` names. The ``rtbus.call.*`` lifecycle events
(``CallIncoming`` ... ``CallEnded``) are protocol values (``rtbus.protocol``), published by
the service. ``docs/calls.md`` describes it all.
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
