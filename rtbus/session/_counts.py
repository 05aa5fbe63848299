"""What a session has done, summed over all its connections: ``SessionCounts``.

Counted where it happens, as plain ints and dicts on the session (``Tally``); nothing here
touches Prometheus, so counting costs a dict update per event. Metrics read a frozen
``SessionCounts`` at scrape time, and the service adds up the counts of sessions that ended
(``+``), so totals never go down when a session goes away.

Invariants:

* Counts only grow, and they survive reconnects and actor restarts (the ``Tally`` lives on
  the session handle, not on one connection). A connection's transport counters (frames,
  bytes, decode time) are folded in when it ends, and read live while it is up.
* Every mapping is keyed by bounded labels (``_labels``, ``_cause``), never by ids or text.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from rtbus.transport import ConnectionStatistics

from ._labels import (
    OTHER,
    PUBLISHED_TYPES,
    client_event_label,
    close_code_label,
    error_code_label,
    error_type_label,
)

__all__ = ["SessionCounts", "Tally"]

_EMPTY: Final[Mapping[str, int]] = MappingProxyType({})
_EMPTY_PAIRS: Final[Mapping[tuple[str, str], int]] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class SessionCounts:
    """Cumulative counters of one session (or, added up, of many).

    * ``connects`` -- connections opened (the first one and every reconnect).
    * ``frames_*``, ``bytes_*`` -- WebSocket frames and bytes, over every connection.
    * ``decodes``, ``decode_seconds`` -- server frames decoded and the time it took.
    * ``server_events`` -- what the session published, by type (server events and
      ``rtbus.session.*``; ``other`` for types rtbus does not model).
    * ``client_events`` -- client events sent, by type.
    * ``server_errors`` -- server ``error`` events by (error type, error code).
    * ``close_codes`` -- connections ended, by close code (``none``: no close frame).
    * ``disconnects``, ``reconnects``, ``failures``, ``resumes`` -- lifecycle events by
      their ``cause``.
    * ``recycles`` -- upstream sessions replaced before their limit (make before break).
    * ``items_restored`` -- conversation items given back to new upstream sessions.
    * ``items_dropped`` -- conversation items the record's bound let go.
    """

    connects: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    decodes: int = 0
    decode_seconds: float = 0.0
    server_events: Mapping[str, int] = _EMPTY
    client_events: Mapping[str, int] = _EMPTY
    server_errors: Mapping[tuple[str, str], int] = _EMPTY_PAIRS
    close_codes: Mapping[str, int] = _EMPTY
    disconnects: Mapping[str, int] = _EMPTY
    reconnects: Mapping[str, int] = _EMPTY
    failures: Mapping[str, int] = _EMPTY
    resumes: Mapping[str, int] = _EMPTY
    recycles: int = 0
    items_restored: int = 0
    items_dropped: int = 0

    def __add__(self, other: SessionCounts) -> SessionCounts:
        """The counts of both, summed field by field (mappings key by key)."""
        if not isinstance(other, SessionCounts):
            return NotImplemented
        summed = {name: _sum(getattr(self, name), getattr(other, name)) for name in _FIELDS}
        return SessionCounts(**summed)


_FIELDS: Final = tuple(field.name for field in attrs.fields(SessionCounts))


def _sum(a: Any, b: Any) -> Any:
    # Fields are numbers or mappings of counts; a mapping sums key by key.
    if not isinstance(a, Mapping):
        return a + b
    merged = dict(a)
    for key, value in b.items():
        merged[key] = merged.get(key, 0) + value
    return MappingProxyType(merged)


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


class Tally:
    """The session's live counters: bumped as things happen, snapshotted as ``SessionCounts``."""

    __slots__ = (
        "_ended",
        "client_events",
        "close_codes",
        "connects",
        "disconnects",
        "failures",
        "items_restored",
        "reconnects",
        "recycles",
        "resumes",
        "server_errors",
        "server_events",
    )

    def __init__(self) -> None:
        self.connects = 0
        self.server_events: dict[str, int] = {}
        self.client_events: dict[str, int] = {}
        self.server_errors: dict[tuple[str, str], int] = {}
        self.close_codes: dict[str, int] = {}
        self.disconnects: dict[str, int] = {}
        self.reconnects: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.resumes: dict[str, int] = {}
        self.recycles = 0
        self.items_restored = 0
        # The transport counters of connections that have ended (one SessionCounts is enough).
        self._ended = SessionCounts()

    def published(self, type: str) -> None:
        # Once per event: inlined, it is a set lookup and a dict update.
        key = type if type in PUBLISHED_TYPES else OTHER
        events = self.server_events
        events[key] = events.get(key, 0) + 1

    def sent(self, type: object) -> None:
        _bump(self.client_events, client_event_label(type))

    def server_error(self, type: str | None, code: str | None) -> None:
        key = (error_type_label(type), error_code_label(code))
        self.server_errors[key] = self.server_errors.get(key, 0) + 1

    def disconnected(self, cause: str) -> None:
        _bump(self.disconnects, cause)

    def reconnected(self, cause: str) -> None:
        _bump(self.reconnects, cause)

    def failed(self, cause: str) -> None:
        _bump(self.failures, cause)

    def resumed(self, cause: str, items: int) -> None:
        _bump(self.resumes, cause)
        self.items_restored += items

    def recycled(self, items: int) -> None:
        self.recycles += 1
        self.items_restored += items

    def connection_ended(self, connection: ConnectionStatistics) -> None:
        """Fold an ended connection's transport counters in, and count how it closed."""
        _bump(self.close_codes, close_code_label(connection.close))
        self._ended = self._ended + _wire(connection)

    def snapshot(self, live: ConnectionStatistics | None, *, items_dropped: int) -> SessionCounts:
        """The counts now; ``live`` is the open connection's statistics, if one is open;
        ``items_dropped`` is read off the conversation record."""
        wire = self._ended if live is None else self._ended + _wire(live)
        return attrs.evolve(
            wire,
            connects=self.connects,
            server_events=MappingProxyType(dict(self.server_events)),
            client_events=MappingProxyType(dict(self.client_events)),
            server_errors=MappingProxyType(dict(self.server_errors)),
            close_codes=MappingProxyType(dict(self.close_codes)),
            disconnects=MappingProxyType(dict(self.disconnects)),
            reconnects=MappingProxyType(dict(self.reconnects)),
            failures=MappingProxyType(dict(self.failures)),
            resumes=MappingProxyType(dict(self.resumes)),
            recycles=self.recycles,
            items_restored=self.items_restored,
            items_dropped=items_dropped,
        )


def _wire(connection: ConnectionStatistics) -> SessionCounts:
    return SessionCounts(
        frames_received=connection.frames_received,
        bytes_received=connection.bytes_received,
        frames_sent=connection.frames_sent,
        bytes_sent=connection.bytes_sent,
        decodes=connection.decodes,
        decode_seconds=connection.decode_seconds,
    )
