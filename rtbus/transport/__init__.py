"""The Realtime connection on trio: connect, read in the caller's task, keepalive, reconnect
policy, send queue.

``open_realtime`` gives a :class:`RealtimeWebSocket`, the concrete ``RealtimeEmitter``;
``ReconnectPolicy`` and ``SendQueue`` are the parts a session actor reconnects with.
``open_wire`` gives the WebSocket under it, a :class:`Wire`, to another protocol's client
(the bus gateway's): one WebSocket stack for every connection rtbus opens.
"""

from ._connection import ConnectionStatistics as ConnectionStatistics
from ._connection import RealtimeWebSocket as RealtimeWebSocket
from ._connection import Received as Received
from ._connection import Unreadable as Unreadable
from ._connection import open_wire as open_wire
from ._exceptions import ConnectError as ConnectError
from ._exceptions import ConnectionRejectedError as ConnectionRejectedError
from ._exceptions import ConnectTimeoutError as ConnectTimeoutError
from ._exceptions import KeepaliveTimeoutError as KeepaliveTimeoutError
from ._keepalive import keep_alive as keep_alive
from ._open import open_realtime as open_realtime
from ._open import open_target as open_target
from ._options import ConnectOptions as ConnectOptions
from ._outbound import FrameSink as FrameSink
from ._outbound import SendQueue as SendQueue
from ._outbound import SendQueueClosed as SendQueueClosed
from ._outbound import SendQueueFull as SendQueueFull
from ._outbound import SendQueueStatistics as SendQueueStatistics
from ._reconnect import ReconnectAttempts as ReconnectAttempts
from ._reconnect import ReconnectPolicy as ReconnectPolicy
from ._reconnect import TargetHook as TargetHook
from ._target import ConnectTarget as ConnectTarget
from ._wire import CloseStatus as CloseStatus
from ._wire import Wire as Wire

__all__ = [
    "keep_alive",
    "CloseStatus",
    "ConnectError",
    "ConnectOptions",
    "ConnectTarget",
    "ConnectTimeoutError",
    "ConnectionRejectedError",
    "ConnectionStatistics",
    "FrameSink",
    "KeepaliveTimeoutError",
    "RealtimeWebSocket",
    "Received",
    "Unreadable",
    "ReconnectAttempts",
    "ReconnectPolicy",
    "SendQueue",
    "SendQueueClosed",
    "SendQueueFull",
    "SendQueueStatistics",
    "TargetHook",
    "Wire",
    "open_realtime",
    "open_target",
    "open_wire",
]
