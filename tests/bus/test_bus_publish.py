"""Publishing: sequence numbers, shared envelopes, argument checks, publish_nowait."""

from __future__ import annotations

import attrs
import pytest
import trio
from support.events import ev, n_of

from rtbus.bus import Bus, BusArgumentError


async def test_seq_is_per_session_from_one_and_contiguous() -> None:
    bus = Bus()
    seqs: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    for i, session in enumerate("aabcbbacaacbbbca" * 2):
        envelope = await bus.publish(session, "response.done", ev(i), received_at=0.0)
        seqs[session].append(envelope.seq)
    for numbers in seqs.values():
        assert numbers == list(range(1, len(numbers) + 1))


async def test_forget_drops_the_counter_and_a_reused_id_starts_over() -> None:
    bus = Bus()
    for _ in range(3):
        await bus.publish("s", "error", ev(), received_at=0.0)
    assert bus.statistics().sessions == 1
    bus.forget("s")
    bus.forget("never-published")  # forgetting an unknown session is harmless
    assert bus.statistics().sessions == 0
    assert (await bus.publish("s", "error", ev(), received_at=0.0)).seq == 1


async def test_every_subscriber_gets_the_same_envelope_object() -> None:
    bus = Bus()
    subs = [bus.subscribe() for _ in range(3)] + [bus.subscribe(types="response.*")]
    event = ev()
    published = await bus.publish("s", "response.done", event, received_at=1.5, raw=b"{}")
    received = [await sub.receive() for sub in subs]
    assert all(envelope is published for envelope in received)
    assert published.event is event
    assert (published.session_id, published.type, published.received_at, published.raw) == (
        "s",
        "response.done",
        1.5,
        b"{}",
    )


async def test_envelope_is_frozen_and_its_repr_sizes_raw_frames() -> None:
    envelope = await Bus().publish("s", "t", ev(), received_at=0.0, raw=b"x" * 5000)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        envelope.seq = 9  # type: ignore[misc]
    assert "<5000 bytes>" in repr(envelope)
    assert "xxxx" not in repr(envelope)


@pytest.mark.parametrize(
    ("session_id", "type", "argument"),
    [("", "error", "session_id"), ("s", "", "type"), (None, "error", "session_id")],
)
async def test_publish_rejects_empty_names(session_id: str, type: str, argument: str) -> None:
    bus = Bus()
    with pytest.raises(BusArgumentError) as info:
        await bus.publish(session_id, type, ev(), received_at=0.0)
    assert info.value.argument == argument
    assert isinstance(info.value, ValueError)
    assert bus.statistics().published == 0


async def test_publish_and_subscribe_after_close_raise() -> None:
    bus = Bus()
    await bus.aclose()
    await bus.aclose()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        await bus.publish("s", "error", ev(), received_at=0.0)
    with pytest.raises(trio.ClosedResourceError):
        bus.publish_nowait("s", "error", ev(), received_at=0.0)
    with pytest.raises(trio.ClosedResourceError):
        bus.subscribe()


async def test_publish_is_a_checkpoint_and_a_cancelled_publish_spends_no_seq() -> None:
    bus = Bus()
    sub = bus.subscribe()
    with trio.CancelScope() as scope:
        scope.cancel()
        await bus.publish("s", "error", ev(), received_at=0.0)
    assert scope.cancelled_caught
    assert sub.statistics().queued == 0
    assert (await bus.publish("s", "error", ev(), received_at=0.0)).seq == 1


async def test_publish_nowait_is_all_or_nothing() -> None:
    bus = Bus()
    roomy = bus.subscribe(maxsize=10)
    full = bus.subscribe(maxsize=1)
    first = bus.publish_nowait("s", "error", ev(1), received_at=0.0)
    with pytest.raises(trio.WouldBlock):
        bus.publish_nowait("s", "error", ev(2), received_at=0.0)
    assert roomy.statistics().queued == 1  # the refused envelope reached no one
    assert await full.receive() is first
    assert bus.publish_nowait("s", "error", ev(3), received_at=0.0).seq == 2  # no seq was spent


async def test_publish_nowait_ignores_full_subscriptions_that_drop() -> None:
    bus = Bus()
    dropping = bus.subscribe(maxsize=1, overflow="drop_newest")
    for i in range(3):
        bus.publish_nowait("s", "error", ev(i), received_at=0.0)
    assert dropping.statistics().dropped == 2
    assert n_of((await dropping.receive()).event) == 0


async def test_publish_without_subscribers_still_numbers_and_counts() -> None:
    bus = Bus()
    envelopes = [await bus.publish("s", "t", ev(i), received_at=0.0) for i in range(4)]
    assert [e.seq for e in envelopes] == [1, 2, 3, 4]
    assert bus.statistics().published == 4
