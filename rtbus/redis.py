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

from rtbus.bus._redis._bridge import BridgeStatistics as BridgeStatistics
from rtbus.bus._redis._bridge import RedisBridge as RedisBridge
from rtbus.bus._redis._client import LinkStatistics as LinkStatistics
from rtbus.bus._redis._config import DEFAULT_STREAMS as DEFAULT_STREAMS
from rtbus.bus._redis._config import RedisConfig as RedisConfig
from rtbus.bus._redis._config import TrimStrategy as TrimStrategy
from rtbus.bus._redis._consumer import ConsumerStatistics as ConsumerStatistics
from rtbus.bus._redis._consumer import RedisSubscription as RedisSubscription
from rtbus.bus._redis._errors import RedisCommandError as RedisCommandError
from rtbus.bus._redis._errors import RedisError as RedisError
from rtbus.bus._redis._errors import RedisUnavailableError as RedisUnavailableError
from rtbus.bus._redis._errors import RedisVersionError as RedisVersionError
from rtbus.bus._redis._layout import RedisEnvelope as RedisEnvelope
from rtbus.bus._redis._losses import LostEntries as LostEntries
from rtbus.bus._redis._metrics import RedisMetrics as RedisMetrics
from rtbus.bus._redis._monitor import GroupSnapshot as GroupSnapshot
from rtbus.bus._redis._monitor import MonitorSnapshot as MonitorSnapshot
from rtbus.bus._redis._monitor import StreamMonitor as StreamMonitor
from rtbus.bus._redis._monitor import StreamSnapshot as StreamSnapshot
from rtbus.bus._redis._run import run_bridge as run_bridge
from rtbus.bus._redis._subscribe import subscribe as subscribe

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
