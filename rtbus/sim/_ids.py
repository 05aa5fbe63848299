"""Identifiers in the real service's shapes (``event_...``, ``item_...``, ``resp_...``).

Drawn from a per-connection ``random.Random`` so a seeded simulator is reproducible.
"""

from __future__ import annotations

import random
import string

import attrs

__all__ = ["IdSource"]

_ALPHABET = string.ascii_letters + string.digits


@attrs.define
class IdSource:
    """Makes identifiers with a prefix and 22 random alphanumerics, as the real service does."""

    rng: random.Random

    def new(self, prefix: str) -> str:
        """A fresh identifier such as ``item_C7x...``."""
        return prefix + "_" + "".join(self.rng.choices(_ALPHABET, k=22))

    def event(self, event_type: str, **fields: object) -> dict[str, object]:
        """A server event dict with a fresh ``event_id``, ``type`` first as the service sends."""
        return {"type": event_type, "event_id": self.new("event"), **fields}
