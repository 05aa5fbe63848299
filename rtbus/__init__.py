"""rtbus: many OpenAI Realtime sessions as supervised trio actors, every event on a bus.

The public surface is re-exported here; the layers live in their own packages
(``rtbus.protocol``, ``rtbus.transport``, ``rtbus.actors``, ``rtbus.bus``, ``rtbus.session``,
``rtbus.metrics``, ``rtbus.service``, ``rtbus.sim``; ``rtbus.redis`` for the Redis Streams
bridge and its consumer groups).
"""

from . import protocol as protocol
from . import redis as redis
from . import sim as sim
from .bus import RemoteBus as RemoteBus
from .bus import connect as connect
from .emitter import RealtimeEmitter as RealtimeEmitter
from .protocol import AzureConfig as AzureConfig
from .protocol import ConfigError as ConfigError
from .protocol import ConnectionClosedError as ConnectionClosedError
from .protocol import OpenAIConfig as OpenAIConfig
from .protocol import ProtocolError as ProtocolError
from .protocol import RealtimeError as RealtimeError
from .protocol import RtbusError as RtbusError
from .protocol import build_realtime_url as build_realtime_url
from .protocol import is_azure as is_azure
from .service import Service as Service
from .service import ServiceConfig as ServiceConfig
from .service import Settings as Settings
from .service import load_settings as load_settings
from .service import open_service as open_service
from .service import run_service as run_service
from .session import Session as Session
from .session import SessionSpec as SessionSpec
from .transport import ConnectOptions as ConnectOptions
from .transport import RealtimeWebSocket as RealtimeWebSocket
from .transport import open_realtime as open_realtime

__all__ = [
    "AzureConfig",
    "ConfigError",
    "ConnectOptions",
    "ConnectionClosedError",
    "OpenAIConfig",
    "ProtocolError",
    "RealtimeEmitter",
    "RealtimeError",
    "RealtimeWebSocket",
    "RemoteBus",
    "RtbusError",
    "Service",
    "ServiceConfig",
    "Session",
    "SessionSpec",
    "Settings",
    "build_realtime_url",
    "connect",
    "is_azure",
    "load_settings",
    "open_realtime",
    "open_service",
    "protocol",
    "redis",
    "run_service",
    "sim",
]
