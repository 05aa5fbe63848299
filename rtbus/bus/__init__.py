"""The in-process bus: every session's events, fanned out to filtered, bounded subscriptions.

```python
bus = Bus()
async with bus.subscribe(types=["response.*", "error"], overflow="drop_oldest") as sub:
    async for envelope in sub:
        ...  # envelope.session_id, .seq, .type, .event, .received_at, .raw
```

A supervised worker reads with ``async with sub.delivery() as envelope`` instead, so an
envelope whose handler fails stays at the head of the buffer for the restarted worker.

Another process gets the same ``subscribe`` over a service's gateway (``rtbus.gateway``), and
other machines through Redis Streams (``rtbus.redis``); both build on the filters, policies
and the event JSON exported here.
"""

from ._bus import Bus as Bus
from ._bus import BusLimits as BusLimits
from ._bus import BusStatistics as BusStatistics
from ._bus import check_maxsize as check_maxsize
from ._bus import checked_timeout as checked_timeout
from ._codec import LIFECYCLE_EVENTS as LIFECYCLE_EVENTS
from ._codec import LifecycleEvent as LifecycleEvent
from ._codec import RemoteException as RemoteException
from ._codec import decode_lifecycle as decode_lifecycle
from ._codec import lifecycle_fields as lifecycle_fields
from ._codec import lifecycle_json as lifecycle_json
from ._envelope import Envelope as Envelope
from ._envelope import Event as Event
from ._envelope import Undecoded as Undecoded
from ._envelope import event_json as event_json
from ._errors import BusArgumentError as BusArgumentError
from ._errors import SubscriberOverflowError as SubscriberOverflowError
from ._errors import SubscriberTooSlowError as SubscriberTooSlowError
from ._filters import SessionFilter as SessionFilter
from ._filters import TypeFilter as TypeFilter
from ._filters import parse_sessions as parse_sessions
from ._filters import parse_types as parse_types
from ._lifecycle import SubscriberDisconnected as SubscriberDisconnected
from ._overflow import OverflowPolicy as OverflowPolicy
from ._overflow import parse_policy as parse_policy
from ._subscription import Subscription as Subscription
from ._subscription import SubscriptionStatistics as SubscriptionStatistics
from ._tap import BusTap as BusTap
from ._worker import Worker as Worker
from ._worker import WorkerHandler as WorkerHandler

__all__ = [
    "LIFECYCLE_EVENTS",
    "LifecycleEvent",
    "RemoteException",
    "decode_lifecycle",
    "lifecycle_fields",
    "lifecycle_json",
    "Bus",
    "BusArgumentError",
    "BusLimits",
    "BusStatistics",
    "BusTap",
    "Envelope",
    "Event",
    "OverflowPolicy",
    "SessionFilter",
    "SubscriberDisconnected",
    "SubscriberOverflowError",
    "SubscriberTooSlowError",
    "Subscription",
    "SubscriptionStatistics",
    "TypeFilter",
    "Undecoded",
    "Worker",
    "WorkerHandler",
    "check_maxsize",
    "checked_timeout",
    "event_json",
    "parse_policy",
    "parse_sessions",
    "parse_types",
]
