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

from rtbus.bus._redis import DEFAULT_STREAMS as DEFAULT_STREAMS
from rtbus.bus._redis import BridgeStatistics as BridgeStatistics
from rtbus.bus._redis import ConsumerStatistics as ConsumerStatistics
from rtbus.bus._redis import GroupSnapshot as GroupSnapshot
from rtbus.bus._redis import LinkStatistics as LinkStatistics
from rtbus.bus._redis import LostEntries as LostEntries
from rtbus.bus._redis import MonitorSnapshot as MonitorSnapshot
from rtbus.bus._redis import RedisBridge as RedisBridge
from rtbus.bus._redis import RedisCommandError as RedisCommandError
from rtbus.bus._redis import RedisConfig as RedisConfig
from rtbus.bus._redis import RedisEnvelope as RedisEnvelope
from rtbus.bus._redis import RedisError as RedisError
from rtbus.bus._redis import RedisMetrics as RedisMetrics
from rtbus.bus._redis import RedisSubscription as RedisSubscription
from rtbus.bus._redis import RedisUnavailableError as RedisUnavailableError
from rtbus.bus._redis import RedisVersionError as RedisVersionError
from rtbus.bus._redis import StreamMonitor as StreamMonitor
from rtbus.bus._redis import StreamSnapshot as StreamSnapshot
from rtbus.bus._redis import TrimStrategy as TrimStrategy
from rtbus.bus._redis import run_bridge as run_bridge
from rtbus.bus._redis import subscribe as subscribe

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
