"""Fan-out under load: 100 sessions x 50 events, three subscribers, every count exact."""

from __future__ import annotations

import trio
from support.events import ev

from rtbus.bus import Bus, Envelope, OverflowPolicy

SESSIONS = [f"sess_{i:03d}" for i in range(100)]
ROUNDS = 50


def type_for(round: int) -> str:
    return "response.output_audio.delta" if round % 2 == 0 else "conversation.item.added"


async def test_one_hundred_sessions_three_policies_exact_counts() -> None:
    bus = Bus()
    blocking = bus.subscribe(maxsize=16, overflow="block")
    newest = bus.subscribe(maxsize=100, overflow="drop_oldest")
    oldest = bus.subscribe(types="response.*", maxsize=64, overflow="drop_newest")
    received: list[Envelope] = []
    published: list[Envelope] = []

    async def consume() -> None:
        async for envelope in blocking:
            received.append(envelope)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        for round in range(ROUNDS):
            for session in SESSIONS:
                envelope = await bus.publish(session, type_for(round), ev(round), received_at=0.0)
                published.append(envelope)
        await bus.aclose()
    kept_newest = [await newest.receive() for _ in range(100)]
    kept_oldest = [await oldest.receive() for _ in range(64)]

    # block: every envelope, in order, the very objects published
    assert len(received) == 5000
    assert all(got is sent for got, sent in zip(received, published, strict=True))
    for session in SESSIONS:
        seqs = [e.seq for e in received if e.session_id == session]
        assert seqs == list(range(1, ROUNDS + 1))

    # drop_oldest: the last round survives; drop_newest: the first 64 matching survive
    assert kept_newest == published[-100:]
    assert all(a is b for a, b in zip(kept_newest, published[-100:], strict=True))
    assert kept_oldest == published[:64]
    assert {e.type for e in kept_oldest} == {"response.output_audio.delta"}

    assert (newest.statistics().dropped, newest.statistics().delivered) == (4900, 100)
    assert (oldest.statistics().dropped, oldest.statistics().delivered) == (2500 - 64, 64)
    assert blocking.statistics().dropped == 0
    stats = bus.statistics()
    assert stats.published == 5000
    assert stats.delivered == 5000 + 100 + 64
    assert stats.dropped[OverflowPolicy.DROP_OLDEST] == 4900
    assert stats.dropped[OverflowPolicy.DROP_NEWEST] == 2436
    assert stats.dropped[OverflowPolicy.BLOCK] == 0
    assert stats.sessions == 100
    assert stats.subscriptions == 3
    assert [s.policy for s in bus.subscription_statistics()] == [
        OverflowPolicy.BLOCK,
        OverflowPolicy.DROP_OLDEST,
        OverflowPolicy.DROP_NEWEST,
    ]
