"""The session actor: one Realtime session, its connection, and its place on the bus."""

from rtbus.protocol import SessionBadFrame as SessionBadFrame
from rtbus.protocol import SessionClosed as SessionClosed
from rtbus.protocol import SessionDisconnected as SessionDisconnected
from rtbus.protocol import SessionEventRefused as SessionEventRefused
from rtbus.protocol import SessionFailed as SessionFailed
from rtbus.protocol import SessionReady as SessionReady
from rtbus.protocol import SessionReconnected as SessionReconnected
from rtbus.protocol import SessionRecycled as SessionRecycled
from rtbus.protocol import SessionResumed as SessionResumed

from ._counts import SessionCounts as SessionCounts
from ._errors import HandshakeTimeoutError as HandshakeTimeoutError
from ._errors import UnhandledServerError as UnhandledServerError
from ._record import ConversationRecord as ConversationRecord
from ._record import ConversationSnapshot as ConversationSnapshot
from ._record import RecordBound as RecordBound
from ._record import RecordedItem as RecordedItem
from ._session import RefusalHandler as RefusalHandler
from ._session import Session as Session
from ._session import SessionStatistics as SessionStatistics
from ._spec import SessionSpec as SessionSpec
from ._state import SessionState as SessionState

__all__ = [
    "ConversationRecord",
    "ConversationSnapshot",
    "RecordBound",
    "RecordedItem",
    "RefusalHandler",
    "SessionEventRefused",
    "SessionRecycled",
    "SessionResumed",
    "HandshakeTimeoutError",
    "Session",
    "SessionBadFrame",
    "SessionClosed",
    "SessionCounts",
    "SessionDisconnected",
    "SessionFailed",
    "SessionReady",
    "SessionReconnected",
    "SessionSpec",
    "SessionState",
    "SessionStatistics",
    "UnhandledServerError",
]
