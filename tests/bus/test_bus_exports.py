"""The public surface of rtbus.bus is exactly what we meant it to be."""

from __future__ import annotations

import inspect

import attrs
import pytest

import rtbus.bus
from rtbus.bus import Bus, OverflowPolicy, SubscriptionStatistics

PUBLIC = {
    "Bus",
    "BusArgumentError",
    "BusLimits",
    "BusStatistics",
    "BusTap",
    "Envelope",
    "Event",
    "LIFECYCLE_EVENTS",
    "LifecycleEvent",
    "OverflowPolicy",
    "RemoteException",
    "SessionFilter",
    "SubscriberDisconnected",
    "SubscriberOverflowError",
    "SubscriberTooSlowError",
    "Subscription",
    "SubscriptionStatistics",
    "TypeFilter",
    "Undecoded",
    "Worker",
    "WorkerHandler",
    "check_maxsize",
    "checked_timeout",
    "decode_lifecycle",
    "event_json",
    "lifecycle_fields",
    "lifecycle_json",
    "parse_policy",
    "parse_sessions",
    "parse_types",
}


def test_public_names() -> None:
    assert set(rtbus.bus.__all__) == PUBLIC
    exported = {name for name in vars(rtbus.bus) if not name.startswith("_")}
    assert exported == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_names_live_in_private_modules(name: str) -> None:
    value = getattr(rtbus.bus, name)
    if not (inspect.isclass(value) or inspect.isfunction(value)):
        return  # a type alias has no module of its own
    assert value.__module__.startswith("rtbus.bus._")


def test_errors_are_rtbus_errors() -> None:
    from rtbus.protocol._errors import RtbusError

    assert issubclass(rtbus.bus.BusArgumentError, RtbusError)
    assert issubclass(rtbus.bus.BusArgumentError, ValueError)
    assert issubclass(rtbus.bus.SubscriberOverflowError, RtbusError)
    # Cut loose for being too slow is a way of falling behind: one handler catches both.
    assert issubclass(rtbus.bus.SubscriberTooSlowError, rtbus.bus.SubscriberOverflowError)


def test_statistics_are_frozen() -> None:
    stats = Bus().subscribe().statistics()
    assert stats == SubscriptionStatistics(0, 0, 0, 0, 256, OverflowPolicy.BLOCK, 0, 0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.queued = 1  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Bus().statistics().published = 1  # type: ignore[misc]


def test_overflow_policy_values_are_the_documented_strings() -> None:
    assert [p.value for p in OverflowPolicy] == [
        "block",
        "drop_oldest",
        "drop_newest",
        "disconnect",
    ]
