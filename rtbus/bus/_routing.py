"""The routing index: which subscriptions an envelope of (session, type) goes to.

Invariants:

* Routing cost does not grow with subscriptions that do not match. A type's route is built
  once (exact names through a dict, globs through each glob subscription's compiled regex)
  and cached; publishing then costs one dict lookup for the type and one for the session.
* Adding or removing a subscription empties the cache; routes are rebuilt lazily.
* Every route lists its targets in subscription order (the order they were added), so
  fan-out order is stable and reproducible.
* The cache holds at most ``MAX_CACHED_TYPES`` types, so a peer that invents endless event
  types cannot grow it without bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

import attrs

from ._filters import SessionFilter, TypeFilter

__all__ = ["MAX_CACHED_TYPES", "RoutingIndex"]

MAX_CACHED_TYPES = 4096

T = TypeVar("T", bound=Hashable)


@attrs.frozen
class _Entry(Generic[T]):
    ordinal: int
    target: T
    types: TypeFilter
    sessions: SessionFilter


@attrs.frozen
class _Route(Generic[T]):
    # Targets for sessions no subscription names, and, per named session, those plus the
    # ones naming it: a publish picks its tuple with a single lookup.
    everyone: tuple[T, ...]
    by_session: Mapping[str, tuple[T, ...]]


def _ordinal(entry: _Entry[T]) -> int:
    return entry.ordinal


def _in_order(entries: list[_Entry[T]]) -> tuple[T, ...]:
    return tuple(entry.target for entry in sorted(entries, key=_ordinal))


class RoutingIndex(Generic[T]):
    """Targets indexed by the types and sessions they take."""

    def __init__(self) -> None:
        self._entries: dict[T, _Entry[T]] = {}
        self._ordinals = itertools.count()
        self._exact: dict[str, list[T]] = {}
        # Targets with globs or "*" (an ordered set): checked when a route is built.
        self._patterned: dict[T, None] = {}
        self._routes: dict[str, _Route[T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, target: T, types: TypeFilter, sessions: SessionFilter) -> None:
        """Route envelopes matching ``types`` and ``sessions`` to ``target``."""
        self._entries[target] = _Entry(next(self._ordinals), target, types, sessions)
        for name in types.exact:
            self._exact.setdefault(name, []).append(target)
        if types.globs or types.everything:
            self._patterned[target] = None
        self._routes.clear()

    def remove(self, target: T) -> None:
        """Stop routing to ``target``; a target not in the index is ignored."""
        entry = self._entries.pop(target, None)
        if entry is None:
            return
        for name in entry.types.exact:
            self._unlist(self._exact, name, target)
        self._patterned.pop(target, None)
        self._routes.clear()

    def clear(self) -> None:
        """Remove every target."""
        for index in (self._entries, self._exact, self._patterned, self._routes):
            index.clear()

    def targets(self, session_id: str, type: str) -> tuple[T, ...]:
        """The targets an envelope of ``type`` from ``session_id`` goes to, in order."""
        route = self._routes.get(type)
        if route is None:
            route = self._build(type)
        return route.by_session.get(session_id, route.everyone)

    def _build(self, type: str) -> _Route[T]:
        # Linear in the matching entries and the sessions they name, so a thousand
        # per-session subscriptions do not cost a thousand squared on every rebuild.
        everyone: list[_Entry[T]] = []
        named: dict[str, list[_Entry[T]]] = {}
        for entry in self._matching(type):
            if entry.sessions is None:
                everyone.append(entry)
            for session_id in entry.sessions or ():
                named.setdefault(session_id, []).append(entry)
        by_session = {sid: _in_order(everyone + entries) for sid, entries in named.items()}
        if len(self._routes) >= MAX_CACHED_TYPES:
            self._routes.clear()
        route = self._routes[type] = _Route(_in_order(everyone), by_session)
        return route

    def _matching(self, type: str) -> list[_Entry[T]]:
        # A target with both exact names and globs can match twice: key by target.
        found = {t: self._entries[t] for t in self._exact.get(type, ())}
        for t in self._patterned:
            if t not in found and self._entries[t].types.matches(type):
                found[t] = self._entries[t]
        return list(found.values())

    @staticmethod
    def _unlist(index: dict[str, list[T]], name: str, target: T) -> None:
        targets = index[name]
        targets.remove(target)
        if not targets:
            del index[name]
