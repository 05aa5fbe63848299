"""The Realtime protocol, sans-IO: event models, the codec, errors, URL and auth rules.

Nothing here does I/O or imports trio. Every GA server and client event is an attrs frozen
class named for its ``type`` (``response.output_audio.delta`` is
``ResponseOutputAudioDeltaEvent``); the nested shapes are re-exported from ``_models``, which
``tools/gen_protocol.py`` generates from the official ``openai`` package.

Decoding is strict about shape and lenient about growth: a missing field or a wrong type is a
``ProtocolError`` naming the event type and field path; an unknown event type decodes to
``UnknownEvent``. A server event's unknown field is kept and re-encoded; a client event is
checked as strictly as the server checks it (an unknown field at any depth, a value out of
range, audio that is not base64 are errors whose ``Violation`` carries the server's code).
JSON ``null`` and an absent optional field both decode to ``None``, which ``encode`` omits;
the fields where ``null`` means something (``turn_detection: null`` switches server VAD off)
take ``NULL``, which encodes as ``null``.
"""

from . import _models
from ._call_events import CALL_EVENTS as CALL_EVENTS
from ._call_events import CALL_LIFECYCLE_TYPES as CALL_LIFECYCLE_TYPES
from ._call_events import ENDED_BY as ENDED_BY
from ._call_events import CallAccepted as CallAccepted
from ._call_events import CallEnded as CallEnded
from ._call_events import CallEvent as CallEvent
from ._call_events import CallIncoming as CallIncoming
from ._call_events import CallReferred as CallReferred
from ._call_events import CallRejected as CallRejected
from ._call_events import EndedBy as EndedBy
from ._calls import CALLS_API as CALLS_API
from ._calls import DEFAULT_REJECT_STATUS as DEFAULT_REJECT_STATUS
from ._calls import CallOperation as CallOperation
from ._calls import Route as Route
from ._calls import call_id_from_location as call_id_from_location
from ._calls import match_route as match_route
from ._calls import rest_base_url as rest_base_url
from ._codec import CLIENT_EVENT_CLASSES as CLIENT_EVENT_CLASSES
from ._codec import CLIENT_EVENT_TYPES as CLIENT_EVENT_TYPES
from ._codec import PREVIEW_EVENT_ALIASES as PREVIEW_EVENT_ALIASES
from ._codec import SERVER_EVENT_CLASSES as SERVER_EVENT_CLASSES
from ._codec import SERVER_EVENT_TYPES as SERVER_EVENT_TYPES
from ._codec import ClientEvent as ClientEvent
from ._codec import ServerEvent as ServerEvent
from ._codec import UnknownEvent as UnknownEvent
from ._codec import client_event_from_dict as client_event_from_dict
from ._codec import decode_client_event as decode_client_event
from ._codec import decode_server_event as decode_server_event
from ._codec import encode as encode
from ._codec import server_event_from_dict as server_event_from_dict
from ._config import AzureConfig as AzureConfig
from ._config import OpenAIConfig as OpenAIConfig
from ._config import RealtimeConfig as RealtimeConfig
from ._config import RealtimeTarget as RealtimeTarget
from ._config import TargetKind as TargetKind
from ._config import auth_headers as auth_headers
from ._config import build_realtime_url as build_realtime_url
from ._config import is_azure as is_azure
from ._disposition import ERROR_CODES as ERROR_CODES
from ._disposition import ERROR_TYPES as ERROR_TYPES
from ._disposition import Disposition as Disposition
from ._disposition import classify_close as classify_close
from ._disposition import classify_error as classify_error
from ._disposition import classify_status as classify_status
from ._disposition import reconnect_close_codes as reconnect_close_codes
from ._disposition import reconnect_error_codes as reconnect_error_codes
from ._disposition import reconnect_http_statuses as reconnect_http_statuses
from ._errors import ConfigError as ConfigError
from ._errors import ConnectionClosedError as ConnectionClosedError
from ._errors import ProtocolError as ProtocolError
from ._errors import RealtimeError as RealtimeError
from ._errors import RtbusError as RtbusError
from ._errors import Violation as Violation
from ._lifecycle import LIFECYCLE_TYPES as LIFECYCLE_TYPES
from ._lifecycle import SESSION_EVENTS as SESSION_EVENTS
from ._lifecycle import SessionBadFrame as SessionBadFrame
from ._lifecycle import SessionClosed as SessionClosed
from ._lifecycle import SessionDisconnected as SessionDisconnected
from ._lifecycle import SessionEvent as SessionEvent
from ._lifecycle import SessionEventRefused as SessionEventRefused
from ._lifecycle import SessionFailed as SessionFailed
from ._lifecycle import SessionReady as SessionReady
from ._lifecycle import SessionReconnected as SessionReconnected
from ._lifecycle import SessionRecycled as SessionRecycled
from ._lifecycle import SessionResumed as SessionResumed
from ._models import *  # noqa: F403  (the generated models; their list is _models.__all__)
from ._models_base import JsonValue as JsonValue
from ._null import NULL as NULL
from ._null import Null as Null
from ._outcome import EventOutcome as EventOutcome
from ._redact import redact as redact
from ._server_rules import VOICES as VOICES
from ._webhook_events import RealtimeCallIncoming as RealtimeCallIncoming
from ._webhook_events import SipHeader as SipHeader
from ._webhook_events import UnknownWebhookEvent as UnknownWebhookEvent
from ._webhook_events import WebhookEvent as WebhookEvent
from ._webhook_events import decode_webhook_event as decode_webhook_event
from ._webhook_inbox import ActOnWebhook as ActOnWebhook
from ._webhook_inbox import WebhookInbox as WebhookInbox
from ._webhook_inbox import WebhookRedelivery as WebhookRedelivery
from ._webhook_inbox import WebhookRefusal as WebhookRefusal
from ._webhook_inbox import WebhookVerdict as WebhookVerdict
from ._webhooks import DeliveryLog as DeliveryLog
from ._webhooks import DeliveryLogStatistics as DeliveryLogStatistics
from ._webhooks import MalformedWebhookError as MalformedWebhookError
from ._webhooks import VerifiedDelivery as VerifiedDelivery
from ._webhooks import WebhookError as WebhookError
from ._webhooks import WebhookSecret as WebhookSecret
from ._webhooks import WebhookSignatureError as WebhookSignatureError
from ._webhooks import WebhookTimestampError as WebhookTimestampError
from ._webhooks import WebhookVerifier as WebhookVerifier
from ._webhooks import sign_webhook as sign_webhook

__all__ = [
    "LIFECYCLE_TYPES",
    "SESSION_EVENTS",
    "SessionEvent",
    "SessionBadFrame",
    "SessionClosed",
    "SessionDisconnected",
    "SessionFailed",
    "SessionReady",
    "SessionEventRefused",
    "SessionReconnected",
    "SessionRecycled",
    "SessionResumed",
    "ERROR_CODES",
    "ERROR_TYPES",
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
    "CLIENT_EVENT_CLASSES",
    "CLIENT_EVENT_TYPES",
    "NULL",
    "PREVIEW_EVENT_ALIASES",
    "SERVER_EVENT_CLASSES",
    "SERVER_EVENT_TYPES",
    "AzureConfig",
    "ClientEvent",
    "ConfigError",
    "ConnectionClosedError",
    "Disposition",
    "EventOutcome",
    "JsonValue",
    "Null",
    "OpenAIConfig",
    "ProtocolError",
    "RealtimeConfig",
    "RealtimeError",
    "RealtimeTarget",
    "RtbusError",
    "ServerEvent",
    "TargetKind",
    "UnknownEvent",
    "VOICES",
    "Violation",
    "auth_headers",
    "build_realtime_url",
    "classify_close",
    "classify_error",
    "classify_status",
    "reconnect_close_codes",
    "reconnect_error_codes",
    "reconnect_http_statuses",
    "client_event_from_dict",
    "decode_client_event",
    "decode_server_event",
    "encode",
    "is_azure",
    "redact",
    "server_event_from_dict",
    "RealtimeCallIncoming",
    "SipHeader",
    "UnknownWebhookEvent",
    "WebhookEvent",
    "decode_webhook_event",
    "DeliveryLog",
    "DeliveryLogStatistics",
    "MalformedWebhookError",
    "VerifiedDelivery",
    "WebhookError",
    "WebhookSecret",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "WebhookVerifier",
    "sign_webhook",
    "ActOnWebhook",
    "WebhookInbox",
    "WebhookRedelivery",
    "WebhookRefusal",
    "WebhookVerdict",
    "CALLS_API",
    "DEFAULT_REJECT_STATUS",
    "CallOperation",
    "Route",
    "call_id_from_location",
    "match_route",
    "rest_base_url",
    *_models.__all__,
]
