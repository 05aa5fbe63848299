"""Events for tests of the bus itself, where what an event says does not matter: the bus
carries anything with a ``type`` (``rtbus.bus.Event``)."""

from __future__ import annotations

from rtbus.protocol import UnknownEvent

__all__ = ["ev", "n_of"]


def ev(n: int = 0, type: str = "test.event") -> UnknownEvent:
    """An event numbered ``n``."""
    return UnknownEvent(type=type, payload={"type": type, "n": n})


def n_of(event: object) -> int:
    """The number an ``ev`` event carries (what a test published, to compare)."""
    assert isinstance(event, UnknownEvent)
    n = event.payload["n"]
    assert isinstance(n, int)
    return n
