"""The bus over one WebSocket: the wire format (version 1) and the client, ``connect``.

```python
async with rtbus.connect("http://rtbus.internal:9464", token=token) as bus:
    async with bus.subscribe(types=["response.*"], overflow="drop_oldest") as sub:
        async for envelope in sub:
            ...
    session = await bus.open_session(model="gpt-realtime")
    await session.send({"type": "response.create"})
```

The wire format is sans-IO (``_wire``: what a client sends; ``_frames``: what the service
sends back); the client runs it on trio. The service's end, the endpoint, is an adapter of the
service's control surface and lives in ``rtbus.service``. docs/gateway.md is the reference.
"""

from ._client import RefusalHandler as RefusalHandler
from ._client import RemoteBus as RemoteBus
from ._client import RemoteSession as RemoteSession
from ._client import connect as connect
from ._frames import Batch as Batch
from ._frames import ErrorFrame as ErrorFrame
from ._frames import EventFrame as EventFrame
from ._frames import RefusedFrame as RefusedFrame
from ._frames import ResultFrame as ResultFrame
from ._frames import ServerFrame as ServerFrame
from ._frames import encode_error as encode_error
from ._frames import encode_event as encode_event
from ._frames import encode_refused as encode_refused
from ._frames import encode_result as encode_result
from ._frames import parse_server_frame as parse_server_frame
from ._frames import parse_server_frames as parse_server_frames
from ._link import GatewayConnectionError as GatewayConnectionError
from ._link import GatewayError as GatewayError
from ._subscription import GATEWAY_SESSION as GATEWAY_SESSION
from ._subscription import GatewayGap as GatewayGap
from ._subscription import GatewayReconnected as GatewayReconnected
from ._subscription import RemoteSubscription as RemoteSubscription
from ._wire import MAX_WAIT as MAX_WAIT
from ._wire import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._wire import SUBPROTOCOL as SUBPROTOCOL
from ._wire import CloseSession as CloseSession
from ._wire import Credit as Credit
from ._wire import ErrorCode as ErrorCode
from ._wire import HangupCall as HangupCall
from ._wire import Hello as Hello
from ._wire import Limits as Limits
from ._wire import ListCalls as ListCalls
from ._wire import ListSessions as ListSessions
from ._wire import OpenSession as OpenSession
from ._wire import ReferCall as ReferCall
from ._wire import ReqId as ReqId
from ._wire import Request as Request
from ._wire import Send as Send
from ._wire import Subscribe as Subscribe
from ._wire import Unsubscribe as Unsubscribe
from ._wire import WireError as WireError
from ._wire import encode_request as encode_request
from ._wire import parse_request as parse_request

__all__ = [
    "Batch",
    "CloseSession",
    "Credit",
    "ErrorCode",
    "ErrorFrame",
    "EventFrame",
    "GATEWAY_SESSION",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayGap",
    "GatewayReconnected",
    "Hello",
    "Limits",
    "ListSessions",
    "ReferCall",
    "ListCalls",
    "HangupCall",
    "MAX_WAIT",
    "OpenSession",
    "PROTOCOL_VERSION",
    "RefusalHandler",
    "RefusedFrame",
    "RemoteBus",
    "RemoteSession",
    "RemoteSubscription",
    "ReqId",
    "Request",
    "ResultFrame",
    "SUBPROTOCOL",
    "Send",
    "ServerFrame",
    "Subscribe",
    "Unsubscribe",
    "WireError",
    "connect",
    "encode_error",
    "encode_event",
    "encode_refused",
    "encode_request",
    "encode_result",
    "parse_request",
    "parse_server_frame",
    "parse_server_frames",
]
