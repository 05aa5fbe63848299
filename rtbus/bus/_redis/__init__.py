"""The Redis Streams bridge: the bus's events on Redis, consumed by groups anywhere.

Layout, trimming and delivery rules are documented in docs/redis.md. The public names are
re-exported by ``rtbus.redis``.
"""

from ._bridge import BridgeStatistics as BridgeStatistics
from ._bridge import RedisBridge as RedisBridge
from ._client import LinkStatistics as LinkStatistics
from ._config import DEFAULT_STREAMS as DEFAULT_STREAMS
from ._config import RedisConfig as RedisConfig
from ._config import TrimStrategy as TrimStrategy
from ._consumer import ConsumerStatistics as ConsumerStatistics
from ._consumer import LostEntries as LostEntries
from ._consumer import RedisSubscription as RedisSubscription
from ._errors import RedisCommandError as RedisCommandError
from ._errors import RedisError as RedisError
from ._errors import RedisUnavailableError as RedisUnavailableError
from ._errors import RedisVersionError as RedisVersionError
from ._layout import RedisEnvelope as RedisEnvelope
from ._metrics import RedisMetrics as RedisMetrics
from ._monitor import GroupSnapshot as GroupSnapshot
from ._monitor import MonitorSnapshot as MonitorSnapshot
from ._monitor import StreamMonitor as StreamMonitor
from ._monitor import StreamSnapshot as StreamSnapshot
from ._run import run_bridge as run_bridge
from ._subscribe import subscribe as subscribe

__all__ = [
    "DEFAULT_STREAMS",
    "BridgeStatistics",
    "ConsumerStatistics",
    "GroupSnapshot",
    "LinkStatistics",
    "LostEntries",
    "MonitorSnapshot",
    "RedisBridge",
    "RedisCommandError",
    "RedisConfig",
    "RedisEnvelope",
    "RedisError",
    "RedisMetrics",
    "RedisSubscription",
    "RedisUnavailableError",
    "RedisVersionError",
    "StreamMonitor",
    "StreamSnapshot",
    "TrimStrategy",
    "run_bridge",
    "subscribe",
]
