"""The in-process bus: every session's events, fanned out to filtered, bounded subscriptions.

```python
bus = Bus()
async with bus.subscribe(types=["response.*", "error"], overflow="drop_oldest") as sub:
    async for envelope in sub:
        ...  # envelope.session_id, .seq, .type, .event, .received_at, .raw
```

A supervised worker reads with ``async with sub.delivery() as envelope`` instead, so an
envelope whose handler fails stays at the head of the buffer for the restarted worker.

Another process gets the same ``subscribe`` over a service's gateway with ``connect(url,
token=...)``, which also opens, closes and sends to the service's sessions.
"""

from ._bus import Bus as Bus
from ._bus import BusLimits as BusLimits
from ._bus import BusStatistics as BusStatistics
from ._envelope import Envelope as Envelope
from ._errors import BusArgumentError as BusArgumentError
from ._errors import SubscriberOverflowError as SubscriberOverflowError
from ._errors import SubscriberTooSlowError as SubscriberTooSlowError
from ._gateway_wire import ErrorCode as ErrorCode
from ._lifecycle import SubscriberDisconnected as SubscriberDisconnected
from ._overflow import OverflowPolicy as OverflowPolicy
from ._remote import RemoteBus as RemoteBus
from ._remote import RemoteSession as RemoteSession
from ._remote import connect as connect
from ._remote_link import GatewayConnectionError as GatewayConnectionError
from ._remote_link import GatewayError as GatewayError
from ._remote_subscription import GatewayGap as GatewayGap
from ._remote_subscription import GatewayReconnected as GatewayReconnected
from ._remote_subscription import RemoteSubscription as RemoteSubscription
from ._subscription import Subscription as Subscription
from ._subscription import SubscriptionStatistics as SubscriptionStatistics
from ._tap import BusTap as BusTap
from ._worker import Worker as Worker

__all__ = [
    "Bus",
    "BusArgumentError",
    "BusLimits",
    "BusStatistics",
    "BusTap",
    "Envelope",
    "ErrorCode",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayGap",
    "GatewayReconnected",
    "OverflowPolicy",
    "RemoteBus",
    "RemoteSession",
    "RemoteSubscription",
    "SubscriberDisconnected",
    "SubscriberOverflowError",
    "SubscriberTooSlowError",
    "Subscription",
    "SubscriptionStatistics",
    "Worker",
    "connect",
]
