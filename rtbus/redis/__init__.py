"""``rtbus.redis``: the bus on Redis Streams, for workers in other processes and machines.

A service publishes its sessions' events with a bridge (``run_bridge``, or a ``RedisBridge``
run under supervision); workers anywhere read them through consumer groups with
at-least-once delivery::

    config = rtbus.redis.RedisConfig(url="redis://redis:6379/0", password=...)
    async with rtbus.redis.subscribe(config, group="transcripts", types="response.done") as sub:
        await sub.run(store_transcript)

See docs/redis.md for the stream layout, trimming, reclaim, the delivery cap and the
dead-letter stream.
"""

from ._bridge import BridgeStatistics as BridgeStatistics
from ._bridge import RedisBridge as RedisBridge
from ._client import LinkStatistics as LinkStatistics
from ._client import RedisLink as RedisLink
from ._client import open_link as open_link
from ._config import DEFAULT_STREAMS as DEFAULT_STREAMS
from ._config import RedisConfig as RedisConfig
from ._config import TrimStrategy as TrimStrategy
from ._consumer import ConsumerStatistics as ConsumerStatistics
from ._consumer import RedisSubscription as RedisSubscription
from ._errors import GroupMissingError as GroupMissingError
from ._errors import RedisCommandError as RedisCommandError
from ._errors import RedisError as RedisError
from ._errors import RedisUnavailableError as RedisUnavailableError
from ._errors import RedisVersionError as RedisVersionError
from ._layout import RedisEnvelope as RedisEnvelope
from ._losses import LostEntries as LostEntries
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
    "GroupMissingError",
    "GroupSnapshot",
    "LinkStatistics",
    "LostEntries",
    "MonitorSnapshot",
    "RedisBridge",
    "RedisCommandError",
    "RedisConfig",
    "RedisEnvelope",
    "RedisLink",
    "RedisError",
    "RedisMetrics",
    "RedisSubscription",
    "RedisUnavailableError",
    "RedisVersionError",
    "StreamMonitor",
    "StreamSnapshot",
    "TrimStrategy",
    "open_link",
    "run_bridge",
    "subscribe",
]
