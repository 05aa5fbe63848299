"""Routing: type globs, session filters, the index and its cache, argument checks."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.events import ev

from rtbus.bus import Bus, BusArgumentError, Envelope, OverflowPolicy, Subscription
from rtbus.bus._filters import TypeFilter, parse_types
from rtbus.bus._routing import MAX_CACHED_TYPES, RoutingIndex

TYPES = [
    "error",
    "response.created",
    "response.done",
    "response.output_audio.delta",
    "session.updated",
    "rtbus.session.reconnected",
    "rtbus.actor.failed",
]


async def publish_all(bus: Bus, sessions: Iterable[str], types: Iterable[str]) -> None:
    for session in sessions:
        for type in types:
            await bus.publish(session, type, ev(), received_at=0.0)


async def queued(sub: Subscription) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    while sub.statistics().queued:
        envelope = await sub.receive()
        out.append((envelope.session_id, envelope.type))
    return out


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ("*", TYPES),
        ("error", ["error"]),
        (["response.*", "error"], ["error", *TYPES[1:4]]),
        ("response.*.delta", ["response.output_audio.delta"]),
        ("rtbus.*", ["rtbus.session.reconnected", "rtbus.actor.failed"]),
        (["session.update?", "nothing.like.this"], ["session.updated"]),
        ("response.[cd]*", ["response.created", "response.done"]),
        ("response.[!c]*", ["response.done", "response.output_audio.delta"]),
        (["error", "error", "*"], TYPES),
    ],
)
async def test_type_filters(types: str | list[str], expected: list[str]) -> None:
    bus = Bus()
    sub = bus.subscribe(types=types, maxsize=100)
    await publish_all(bus, ["s"], TYPES)
    assert await queued(sub) == [("s", t) for t in TYPES if t in expected]


async def test_glob_matching_is_case_sensitive() -> None:
    bus = Bus()
    sub = bus.subscribe(types=["Response.*", "ERROR"])
    await publish_all(bus, ["s"], TYPES)
    assert await queued(sub) == []


async def test_session_filters() -> None:
    bus = Bus()
    one = bus.subscribe(sessions="s2", maxsize=100)
    some = bus.subscribe(sessions=["s1", "s3"], types="error", maxsize=100)
    every = bus.subscribe(sessions="*", types="error", maxsize=100)
    await publish_all(bus, ["s1", "s2", "s3"], ["error", "response.done"])
    assert await queued(one) == [("s2", "error"), ("s2", "response.done")]
    assert await queued(some) == [("s1", "error"), ("s3", "error")]
    assert await queued(every) == [("s1", "error"), ("s2", "error"), ("s3", "error")]


async def test_has_subscriber_follows_subscriptions() -> None:
    bus = Bus()
    assert not bus.has_subscriber("s1", "error")
    sub = bus.subscribe(sessions="s1", types=["error", "response.*"])
    assert bus.has_subscriber("s1", "error")
    assert bus.has_subscriber("s1", "response.done")
    assert not bus.has_subscriber("s2", "error")
    assert not bus.has_subscriber("s1", "session.updated")
    await sub.aclose()
    assert not bus.has_subscriber("s1", "error")


async def test_routing_never_offers_to_non_matching_subscriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offered: Counter[int] = Counter()
    original = Subscription._offer

    def counting_offer(self: Subscription, envelope: Envelope) -> bool:
        offered[id(self)] += 1
        return original(self, envelope)

    monkeypatch.setattr(Subscription, "_offer", counting_offer)
    bus = Bus()
    others = [bus.subscribe(types=f"other.{i}.*", maxsize=1) for i in range(200)]
    others += [bus.subscribe(sessions=f"x{i}", types="error", maxsize=1) for i in range(200)]
    target = bus.subscribe(sessions="s", types="error", maxsize=100)
    await publish_all(bus, ["s"] * 50, ["error"])
    assert offered == {id(target): 50}
    assert all(sub.statistics().queued == 0 for sub in others)


async def test_globs_are_matched_once_per_type_not_once_per_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Counter[str] = Counter()
    original = TypeFilter.matches

    def counting_matches(self: TypeFilter, type: str) -> bool:
        calls[type] += 1
        return original(self, type)

    monkeypatch.setattr(TypeFilter, "matches", counting_matches)
    bus = Bus()
    for i in range(10):
        bus.subscribe(types=[f"response.{i}*"], overflow="drop_newest")
    await publish_all(bus, ["s"] * 100, ["response.done", "error"])
    assert calls == {"response.done": 10, "error": 10}


async def test_a_new_subscription_invalidates_cached_routes() -> None:
    bus = Bus()
    first = bus.subscribe(types="response.*", maxsize=10)
    await publish_all(bus, ["s"], ["response.done"])  # the route for the type is now cached
    second = bus.subscribe(types="response.done", maxsize=10)
    third = bus.subscribe(sessions="s", maxsize=10)
    await publish_all(bus, ["s"], ["response.done"])
    assert [len(await queued(sub)) for sub in (first, second, third)] == [2, 1, 1]
    await second.aclose()
    await publish_all(bus, ["s"], ["response.done"])
    assert [len(await queued(sub)) for sub in (first, third)] == [1, 1]


def test_index_lists_targets_in_subscription_order_without_duplicates() -> None:
    index: RoutingIndex[str] = RoutingIndex()
    index.add("a", parse_types(["error", "e*"]), None)  # exact and glob both match "error"
    index.add("b", parse_types("*"), frozenset({"s1"}))
    index.add("c", parse_types("error"), None)
    index.add("d", parse_types("err?r"), frozenset({"s1", "s2"}))
    assert index.targets("s1", "error") == ("a", "b", "c", "d")
    assert index.targets("s2", "error") == ("a", "c", "d")
    assert index.targets("s3", "error") == ("a", "c")
    assert index.targets("s1", "response.done") == ("b",)
    index.remove("a")
    index.remove("a")  # removing twice is harmless
    assert index.targets("s3", "error") == ("c",)
    assert len(index) == 3


def test_index_cache_is_bounded() -> None:
    index: RoutingIndex[str] = RoutingIndex()
    index.add("a", parse_types("*"), None)
    for i in range(MAX_CACHED_TYPES * 2 + 5):
        assert index.targets("s", f"type.{i}") == ("a",)
    assert len(index._routes) <= MAX_CACHED_TYPES


# -- argument checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"overflow": "drop"}, "overflow"),
        ({"overflow": "BLOCK"}, "overflow"),
        ({"overflow": None}, "overflow"),
        ({"maxsize": 0}, "maxsize"),
        ({"maxsize": -3}, "maxsize"),
        ({"maxsize": 2.5}, "maxsize"),
        ({"maxsize": True}, "maxsize"),
        ({"types": []}, "types"),
        ({"types": [""]}, "types"),
        ({"types": "response.["}, "types"),
        ({"types": ["error", "a[!"]}, "types"),
        ({"types": "[]"}, "types"),
        ({"types": "response done"}, "types"),
        ({"types": "error\n"}, "types"),
        ({"types": 7}, "types"),
        ({"types": [b"error"]}, "types"),
        ({"sessions": []}, "sessions"),
        ({"sessions": [""]}, "sessions"),
        ({"sessions": None}, "sessions"),
    ],
)
def test_bad_subscribe_arguments_are_named(kwargs: dict[str, object], argument: str) -> None:
    bus = Bus()
    with pytest.raises(BusArgumentError) as info:
        bus.subscribe(**kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ")
    assert isinstance(info.value, ValueError)
    assert bus.statistics().subscriptions == 0


def test_overflow_accepts_the_enum_and_its_values() -> None:
    bus = Bus()
    for policy in OverflowPolicy:
        assert bus.subscribe(overflow=policy).policy is policy
        assert bus.subscribe(overflow=policy.value).policy is policy


@pytest.mark.parametrize("pattern", ["[]]", "[!]]", "[a]", "x[[]y", "*", "?", "a-b.c_d:e"])
def test_well_formed_globs_are_accepted(pattern: str) -> None:
    parse_types(pattern)


# -- glob matching agrees with fnmatch -----------------------------------------------------

_pattern_chars = st.sampled_from(list("ab.*?[]!-"))
# fnmatch's character class, as a regex: '[', then '!' and a leading ']' taken whenever
# present (possessive, as fnmatch's scan never gives them back), the rest up to the next
# ']'. Any other '[' is one fnmatch would read as a literal.
_FNMATCH_TOKEN = re.compile(r"\[!?+\]?+[^\]]*\]|.", re.DOTALL)


def has_unclosed_class(pattern: str) -> bool:
    return "[" in _FNMATCH_TOKEN.findall(pattern)


_type_chars = st.sampled_from(list("ab.-[]!"))


@given(
    patterns=st.lists(st.text(_pattern_chars, min_size=1, max_size=8), min_size=1, max_size=3),
    type=st.text(_type_chars, min_size=1, max_size=8),
)
def test_type_filter_matches_exactly_as_fnmatch(patterns: list[str], type: str) -> None:
    try:
        type_filter = parse_types(patterns)
    except BusArgumentError:
        assert any(map(has_unclosed_class, patterns))  # only an unclosed class is refused
        return
    assert not any(map(has_unclosed_class, patterns))
    expected = any(fnmatch.fnmatchcase(type, p) for p in patterns)
    assert type_filter.matches(type) is expected


async def test_subscription_repr_names_filters_and_policy() -> None:
    bus = Bus()
    sub = bus.subscribe(sessions=["s2", "s1"], types=["response.*", "error"], maxsize=4)
    assert repr(sub) == (
        "<Subscription types=['error', 'response.*'] sessions=['s1', 's2'] policy=block "
        "maxsize=4 state=open>"
    )
    await sub.aclose()
    assert "state=closed" in repr(sub)
    assert "types=* sessions=*" in repr(Bus().subscribe())


async def test_events_of_unknown_types_route_like_any_other() -> None:
    bus = Bus()
    sub = bus.subscribe(types="future.*")
    await bus.publish("s", "future.thing", ev(), received_at=0.0)
    assert (await sub.receive()).type == "future.thing"
