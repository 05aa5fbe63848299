"""Which envelopes a subscription takes: its type patterns and its sessions.

A type filter splits its patterns once, at subscribe time: plain names go to an exact set (the
routing index keys on them), globs (``response.*``, ``rtbus.?*``) are translated by ``fnmatch``
and joined into one compiled regex, and ``"*"`` alone means every type. Matching is
case-sensitive, as event types are. A session filter is a frozen set of ids, or ``None`` for
every session.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

import attrs

from ._errors import BusArgumentError

__all__ = ["EVERYTHING", "SessionFilter", "TypeFilter", "parse_sessions", "parse_types"]

EVERYTHING = "*"
_GLOB_CHARS = frozenset("*?[")

SessionFilter = frozenset[str] | None
"""The session ids a subscription takes, or ``None`` for every session."""


@attrs.frozen
class TypeFilter:
    """The event types a subscription takes: exact names, globs, or everything."""

    exact: frozenset[str]
    globs: tuple[str, ...]
    everything: bool
    _regex: re.Pattern[str] | None = attrs.field(eq=False, repr=False)

    def matches(self, type: str) -> bool:
        """Whether an envelope of ``type`` passes this filter."""
        if self.everything or type in self.exact:
            return True
        return self._regex is not None and self._regex.match(type) is not None


def parse_types(types: str | Iterable[str]) -> TypeFilter:
    """The filter for ``types``: ``"*"``, one name or glob, or an iterable of them."""
    patterns = _strings("types", types)
    for pattern in patterns:
        _check_glob(pattern)
    if EVERYTHING in patterns:
        return TypeFilter(frozenset(), (), True, None)
    globs = tuple(sorted(p for p in patterns if _GLOB_CHARS.intersection(p)))
    exact = frozenset(patterns.difference(globs))
    return TypeFilter(exact, globs, False, _compile(globs))


def parse_sessions(sessions: str | Iterable[str]) -> SessionFilter:
    """The filter for ``sessions``: ``"*"``, one session id, or an iterable of ids."""
    ids = _strings("sessions", sessions)
    return None if EVERYTHING in ids else ids


def _strings(argument: str, value: str | Iterable[str]) -> frozenset[str]:
    # A bare string is one pattern, not an iterable of one-letter patterns.
    items = [value] if isinstance(value, str) else _iterate(argument, value)
    if not items:
        raise BusArgumentError(argument, "is empty: the subscription would match nothing")
    return frozenset(_nonempty_str(argument, item) for item in items)


def _iterate(argument: str, value: object) -> list[object]:
    if not isinstance(value, Iterable):
        problem = f"must be '*', a str or an iterable of str, got {type(value).__name__}"
        raise BusArgumentError(argument, problem)
    return list(value)


def _nonempty_str(argument: str, item: object) -> str:
    if not isinstance(item, str) or not item:
        raise BusArgumentError(argument, f"each item must be a non-empty str, got {item!r}")
    return item


def _check_glob(pattern: str) -> None:
    if any(c.isspace() or not c.isprintable() for c in pattern):
        raise BusArgumentError("types", f"{pattern!r} contains whitespace or control characters")
    if _has_unclosed_class(pattern):
        raise BusArgumentError("types", f"{pattern!r} has a '[' with no closing ']'")


def _has_unclosed_class(pattern: str) -> bool:
    # fnmatch silently reads an unclosed '[' as a literal; in an event-type glob it is
    # always a typo. The scan mirrors fnmatch.translate's, so accepted patterns keep
    # exactly fnmatch's meaning ('!' and a leading ']' belong to the class).
    i, n = 0, len(pattern)
    while i < n:
        i += 1
        if pattern[i - 1] != "[":
            continue
        j = i + 1 if i < n and pattern[i] == "!" else i
        j = j + 1 if j < n and pattern[j] == "]" else j
        j = pattern.find("]", j)
        if j < 0:
            return True
        i = j + 1
    return False


def _compile(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    # fnmatch.translate anchors each alternative, so joining them with '|' is sound.
    return re.compile("|".join(map(fnmatch.translate, globs))) if globs else None
