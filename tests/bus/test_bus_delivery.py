"""Deliveries: an envelope leaves the buffer only when its handler finishes cleanly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing
from support.events import ev, n_of

from rtbus.bus import Bus, Envelope, SubscriberOverflowError, Subscription


class HandlerFailed(Exception):
    pass


async def publish_range(bus: Bus, count: int) -> None:
    for i in range(count):
        await bus.publish("s", "response.done", ev(i), received_at=0.0)


async def fail_handling(sub: Subscription, during: Callable[[], Awaitable[object]]) -> None:
    """Take a delivery, run ``during`` inside it, then fail as a handler would."""
    async with sub.delivery():
        await during()
        raise HandlerFailed


async def worker(sub: Subscription, handled: list[int], *, fail_on: int | None = None) -> None:
    """What a supervised worker does: read with delivery(), stop at the end of the bus."""
    while True:
        try:
            async with sub.delivery() as envelope:
                if n_of(envelope.event) == fail_on:
                    raise HandlerFailed(n_of(envelope.event))
                handled.append(n_of(envelope.event))
        except trio.EndOfChannel:
            return


async def test_a_failed_handler_leaves_the_envelope_for_the_restarted_worker() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=2, overflow="block")
    handled: list[int] = []
    async with trio.open_nursery() as nursery:

        async def publisher() -> None:
            await publish_range(bus, 6)
            await bus.aclose()

        nursery.start_soon(publisher)
        with pytest.raises(HandlerFailed):
            await worker(sub, handled, fail_on=2)
        assert handled == [0, 1]
        assert sub.statistics().redelivered == 1
        await worker(sub, handled)  # the restart, around the same subscription
    assert handled == [0, 1, 2, 3, 4, 5]
    stats = sub.statistics()
    assert (stats.delivered, stats.dropped, stats.redelivered) == (6, 0, 1)


async def test_a_cancelled_handler_puts_the_envelope_back() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=4)
    await publish_range(bus, 2)
    with trio.move_on_after(0):
        async with sub.delivery() as envelope:
            assert n_of(envelope.event) == 0
            await trio.sleep_forever()
    assert sub.statistics().queued == 2
    assert [n_of((await sub.receive()).event) for _ in range(2)] == [0, 1]


async def test_an_envelope_being_handled_counts_toward_maxsize() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1, overflow="block")
    await publish_range(bus, 1)
    async with trio.open_nursery() as nursery:
        async with sub.delivery() as envelope:
            nursery.start_soon(publish_range, bus, 1)
            await trio.testing.wait_all_tasks_blocked()
            assert sub.statistics().publishers_waiting == 1
            assert n_of(envelope.event) == 0
        await trio.testing.wait_all_tasks_blocked()
        assert sub.statistics().publishers_waiting == 0
    assert (await sub.receive()).seq == 2


async def test_drop_oldest_gives_up_the_envelope_being_handled_when_it_is_all_there_is() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=1, overflow="drop_oldest")
    await publish_range(bus, 1)
    with pytest.raises(HandlerFailed):  # publishing makes room by giving up envelope 1
        await fail_handling(sub, partial(publish_range, bus, 1))
    stats = sub.statistics()
    assert (stats.dropped, stats.redelivered, stats.queued) == (1, 0, 1)
    assert (await sub.receive()).seq == 2


async def test_drop_oldest_prefers_queued_envelopes_to_the_one_being_handled() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=2, overflow="drop_oldest")
    await publish_range(bus, 2)
    with pytest.raises(HandlerFailed):  # seq 2 is dropped, not seq 1 which is being handled
        await fail_handling(sub, partial(publish_range, bus, 1))
    assert [(await sub.receive()).seq for _ in range(2)] == [1, 3]


async def test_disconnect_during_a_delivery_counts_the_held_envelope_as_dropped() -> None:
    bus = Bus()
    sub = bus.subscribe(maxsize=2, overflow="disconnect")
    await publish_range(bus, 2)
    async with sub.delivery():
        await publish_range(bus, 2)  # overflows at once; the second is not routed at all
    stats = sub.statistics()
    assert (stats.delivered, stats.dropped, stats.queued) == (0, 3, 0)
    with pytest.raises(SubscriberOverflowError) as info:
        await sub.receive()
    assert info.value.dropped == 3


async def test_one_reader_at_a_time() -> None:
    bus = Bus()
    sub = bus.subscribe()
    await publish_range(bus, 2)
    async with sub.delivery():
        with pytest.raises(trio.BusyResourceError):
            await sub.receive()
        with pytest.raises(trio.BusyResourceError):
            async with sub.delivery():
                pass
    async with trio.open_nursery() as nursery:
        await sub.receive()  # the one that was acknowledged is gone; this takes the second
        nursery.start_soon(sub.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await sub.receive()
        await publish_range(bus, 1)
    assert sub.statistics().delivered == 3


async def test_delivery_ends_with_the_bus_after_draining() -> None:
    bus = Bus()
    sub = bus.subscribe()
    await publish_range(bus, 1)
    await bus.aclose()
    async with sub.delivery() as envelope:
        assert n_of(envelope.event) == 0
    with pytest.raises(trio.EndOfChannel):
        async with sub.delivery():
            pass
    with pytest.raises(trio.EndOfChannel):  # and stays ended, with the read lock released
        await sub.receive()


async def test_closing_during_a_delivery_discards_the_envelope() -> None:
    bus = Bus()
    sub = bus.subscribe()
    await publish_range(bus, 2)
    with pytest.raises(HandlerFailed):
        await fail_handling(sub, sub.aclose)
    stats = sub.statistics()
    assert (stats.queued, stats.redelivered, stats.delivered) == (0, 0, 0)


async def test_delivery_waits_for_an_envelope() -> None:
    bus = Bus()
    sub = bus.subscribe()
    got: list[Envelope] = []

    async def read_one() -> None:
        async with sub.delivery() as envelope:
            got.append(envelope)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_one)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        published = await bus.publish("s", "error", ev(), received_at=0.0)
    assert got == [published]
    assert sub.statistics().delivered == 1
