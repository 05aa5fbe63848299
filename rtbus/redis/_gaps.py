"""Sequence gaps: the entries of a session a consumer group never got, counted per session.

The bus numbers each session's events without a gap (``seq``) and the bridge writes them in
that order, so a group that reads every stream sees each session's numbers go up by one --
except across streams (the audio and the events stream are read in batches side by side, so
seq 7 may come after seq 9) and for duplicates (a batch written twice, an entry reclaimed).
A number that is missing may therefore still come; one is declared missed only once it
cannot: when every stream read has caught up (a read returned less than a full batch) after
the number was found missing. Sans-IO: no Redis, no clock; the consumer feeds it.

Invariants:

* Per (node, session): ``high``, the highest seq seen, and the holes below it, as ranges
  with the read after which they were found. A seq in a hole fills it; any other seq at or
  below ``high`` is a duplicate, ignored.
* ``settle(horizon)`` removes and returns the holes found before read ``horizon``: each is
  reported once. ``clear()`` forgets everything (another consumer shares the group, so
  numbers missing here went there).
* Bounded: at most ``max_sessions`` sessions (the least recently seen is forgotten, with its
  holes reported as they stand) and ``max_holes`` holes per session (the oldest reported).
* A seq at or below ``high`` that fills no hole is a duplicate (a batch the bridge wrote
  again, a reclaim, a group read again from the start: all carry the publish time of the
  first copy) unless it was published later than the entry that set ``high``: then the
  session's numbers started again (its service restarted with the same node and session
  id), a ``reset``, reported, and its tracking starts over from that seq.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs

__all__ = ["Gap", "SeqTracker"]

_MAX_SESSIONS = 100_000
_MAX_HOLES = 64


@attrs.define
class _Hole:
    first: int
    last: int
    found: int  # the read number after which it was found

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@attrs.define
class _Session:
    high: int
    published_at: float  # of the entry that set ``high``: tells a reset from a duplicate
    holes: list[_Hole] = attrs.field(factory=list)


@attrs.frozen
class Gap:
    """``count`` events of ``session_id`` (published by ``node``) the group never got:
    sequence numbers ``first`` to ``last`` (not all of them missed when ``count`` is less).
    ``reset`` is set when the numbers started again at 1 instead (``count`` is then 0)."""

    node: str
    session_id: str
    first: int
    last: int
    count: int
    reset: bool = False


class SeqTracker:
    """Per-session sequence numbers seen by one consumer; holes become ``Gap``s once settled."""

    def __init__(self, *, max_sessions: int = _MAX_SESSIONS, max_holes: int = _MAX_HOLES) -> None:
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()
        self._max_sessions = max_sessions
        self._max_holes = max_holes
        self._overflow: list[Gap] = []  # holes pushed out by the bounds, reported at settle

    def see(
        self, node: str, session_id: str, seq: int, published_at: float, read: int
    ) -> Gap | None:
        """Note ``seq`` of a session, published at ``published_at`` and fetched by read
        number ``read``; a ``reset`` Gap if the session's numbers started again."""
        key = (node, session_id)
        state = self._sessions.get(key)
        if state is None:
            self._add(key, _Session(seq, published_at))
            return None
        self._sessions.move_to_end(key)
        if seq > state.high:
            if seq > state.high + 1:
                self._open(key, state, _Hole(state.high + 1, seq - 1, read))
            state.high, state.published_at = seq, published_at
            return None
        if self._fill(state, seq) or published_at <= state.published_at:
            return None  # filled a hole, or a duplicate
        self._sessions[key] = _Session(seq, published_at)
        return Gap(node, session_id, seq, state.high, 0, reset=True)

    def settle(self, horizon: int) -> list[Gap]:
        """The holes found before read ``horizon`` (and any pushed out by the bounds)."""
        gaps, self._overflow = self._overflow, []
        for (node, session_id), state in self._sessions.items():
            due = [hole for hole in state.holes if hole.found < horizon]
            if due:
                state.holes = [hole for hole in state.holes if hole.found >= horizon]
                gaps.append(_gap(node, session_id, due))
        return gaps

    def clear(self) -> None:
        self._sessions.clear()
        self._overflow.clear()

    def _add(self, key: tuple[str, str], state: _Session) -> None:
        self._sessions[key] = state
        if len(self._sessions) > self._max_sessions:
            (node, session_id), old = self._sessions.popitem(last=False)
            if old.holes:
                self._overflow.append(_gap(node, session_id, old.holes))

    def _open(self, key: tuple[str, str], state: _Session, hole: _Hole) -> None:
        state.holes.append(hole)
        if len(state.holes) > self._max_holes:
            self._overflow.append(_gap(*key, [state.holes.pop(0)]))

    def _fill(self, state: _Session, seq: int) -> bool:
        for index, hole in enumerate(state.holes):
            if hole.first <= seq <= hole.last:
                parts = [
                    _Hole(first, last, hole.found)
                    for first, last in ((hole.first, seq - 1), (seq + 1, hole.last))
                    if first <= last
                ]
                state.holes[index : index + 1] = parts
                return True
        return False


def _gap(node: str, session_id: str, holes: list[_Hole]) -> Gap:
    count = sum(hole.size for hole in holes)
    return Gap(node, session_id, holes[0].first, holes[-1].last, count)
