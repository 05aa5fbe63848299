"""rtbus: many OpenAI Realtime sessions as supervised trio actors, every event on a bus.

The public surface is re-exported here; the layers live in their own packages
(``rtbus.protocol``, ``rtbus.transport``, ``rtbus.actors``, ``rtbus.bus``, ``rtbus.session``,
``rtbus.metrics``, ``rtbus.service``, ``rtbus.sim``; ``rtbus.redis`` for the Redis Streams
bridge and its consumer groups).

Names are imported when first used (PEP 562), so ``import rtbus.protocol`` (sans-IO) loads no
trio, hypercorn, coredis or prometheus_client: only what a caller touches is loaded.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from . import protocol as protocol
    from . import redis as redis
    from . import sim as sim
    from .emitter import RealtimeEmitter as RealtimeEmitter
    from .gateway import RemoteBus as RemoteBus
    from .gateway import connect as connect
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

# name -> the module that defines it (a module itself when the name is a submodule's).
_EXPORTS: dict[str, str] = {
    "protocol": "rtbus.protocol",
    "redis": "rtbus.redis",
    "sim": "rtbus.sim",
    "RemoteBus": "rtbus.gateway",
    "connect": "rtbus.gateway",
    "RealtimeEmitter": "rtbus.emitter",
    "AzureConfig": "rtbus.protocol",
    "ConfigError": "rtbus.protocol",
    "ConnectionClosedError": "rtbus.protocol",
    "OpenAIConfig": "rtbus.protocol",
    "ProtocolError": "rtbus.protocol",
    "RealtimeError": "rtbus.protocol",
    "RtbusError": "rtbus.protocol",
    "build_realtime_url": "rtbus.protocol",
    "is_azure": "rtbus.protocol",
    "Service": "rtbus.service",
    "ServiceConfig": "rtbus.service",
    "Settings": "rtbus.service",
    "load_settings": "rtbus.service",
    "open_service": "rtbus.service",
    "run_service": "rtbus.service",
    "Session": "rtbus.session",
    "SessionSpec": "rtbus.session",
    "ConnectOptions": "rtbus.transport",
    "RealtimeWebSocket": "rtbus.transport",
    "open_realtime": "rtbus.transport",
}

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


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtbus' has no attribute {name!r}")
    loaded = _importlib.import_module(module)
    value = loaded if module == f"rtbus.{name}" else getattr(loaded, name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
