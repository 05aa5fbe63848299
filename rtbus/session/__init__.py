"""The session actor: one Realtime session, its connection, and its place on the bus."""

from ._counts import SessionCounts as SessionCounts
from ._errors import HandshakeTimeoutError as HandshakeTimeoutError
from ._errors import UnhandledServerError as UnhandledServerError
from ._lifecycle import SessionBadFrame as SessionBadFrame
from ._lifecycle import SessionClosed as SessionClosed
from ._lifecycle import SessionDisconnected as SessionDisconnected
from ._lifecycle import SessionEventRefused as SessionEventRefused
from ._lifecycle import SessionFailed as SessionFailed
from ._lifecycle import SessionReady as SessionReady
from ._lifecycle import SessionReconnected as SessionReconnected
from ._lifecycle import SessionRecycled as SessionRecycled
from ._lifecycle import SessionResumed as SessionResumed
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
