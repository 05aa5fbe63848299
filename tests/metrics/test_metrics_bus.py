"""Bus and actor metrics, scraped from a running service on the simulator."""

from __future__ import annotations

import trio
import trio.testing
from metrics_support import Scrape
from support.upstream import CREATE, take_until, upstream

from rtbus import ServiceConfig, open_service
from rtbus.actors import ActorGaveUp, RestartIntensity
from rtbus.bus import Envelope
from rtbus.sim import SimServer


async def test_drops_depth_and_fill_are_counted_by_policy(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_service(upstream(sim)) as svc,
        svc.bus.subscribe(types="response.done") as done,
    ):
        newest = svc.bus.subscribe(sessions="s1", maxsize=2, overflow="drop_newest")
        oldest = svc.bus.subscribe(sessions="s1", maxsize=4, overflow="drop_oldest")
        session = await svc.open_session(id="s1")
        await session.send(CREATE)
        await done.receive()
        during = Scrape(svc)
        dropped = {"newest": newest.statistics().dropped, "oldest": oldest.statistics().dropped}
        await newest.aclose()
        await oldest.aclose()
        after = Scrape(svc)
        bus = svc.bus.statistics()
    assert dropped["newest"] > 0
    assert dropped["oldest"] > 0
    for scrape in (during, after):
        assert scrape.value("rtbus_bus_dropped_total", policy="drop_newest") == dropped["newest"]
        assert scrape.value("rtbus_bus_dropped_total", policy="drop_oldest") == dropped["oldest"]
        assert scrape.value("rtbus_bus_dropped_total", policy="block") == 0
    assert during.by("rtbus_bus_subscriptions", "policy") == {
        "block": 1,
        "drop_newest": 1,
        "drop_oldest": 1,
        "disconnect": 0,
    }
    assert during.value("rtbus_bus_queue_depth", policy="drop_newest") == 2
    assert during.value("rtbus_bus_queue_fill_ratio_max", policy="drop_newest") == 1.0
    assert during.value("rtbus_bus_queue_fill_ratio_max", policy="drop_oldest") == 1.0
    assert after.by("rtbus_bus_subscriptions", "policy")["drop_newest"] == 0
    assert after.value("rtbus_bus_queue_depth", policy="drop_newest") == 0
    assert after.value("rtbus_bus_published_total") == bus.published > 0
    assert after.value("rtbus_bus_delivered_total") == bus.delivered > 0


async def test_a_full_blocking_subscription_shows_a_waiting_publisher(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc:
        session = await svc.open_session(id="s1")
        async with svc.bus.subscribe(sessions="s1", maxsize=1) as slow:
            await session.send(CREATE)
            await trio.testing.wait_all_tasks_blocked()
            stalled = Scrape(svc)
            await take_until(slow, "response.done")
        assert Scrape(svc).value("rtbus_bus_publishers_waiting") == 0
    assert stalled.value("rtbus_bus_publishers_waiting") == 1
    assert stalled.value("rtbus_bus_queue_depth", policy="block") == 1
    assert stalled.value("rtbus_bus_queue_fill_ratio_max", policy="block") == 1.0


async def test_a_subscriber_cut_loose_for_being_too_slow_is_counted(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(upstream(sim)) as svc:
        session = await svc.open_session(id="s1")
        async with (
            svc.bus.subscribe(sessions="s1", types="response.done") as healthy,
            svc.bus.subscribe(sessions="s1", maxsize=1, block_timeout=5.0) as slow,
        ):
            await session.send(CREATE)
            await trio.sleep(3.0)  # the session waits on `slow`, which nobody reads
            blocked = Scrape(svc)
            await healthy.receive()  # the session went on past the timeout
            after = Scrape(svc)
            assert slow.closed
    assert blocked.value("rtbus_bus_publisher_blocked_seconds_max") == 3.0
    disconnected = {"policy": "block", "reason": "too_slow"}
    assert blocked.value("rtbus_bus_subscribers_disconnected_total", **disconnected) == 0
    assert after.value("rtbus_bus_publisher_blocked_seconds_max") == 0.0
    assert after.value("rtbus_bus_dropped_total", policy="block") > 0
    assert after.by("rtbus_bus_subscribers_disconnected_total", "reason") == {
        "too_slow": 1,
        "overflow": 0,
    }


async def test_a_worker_past_its_own_budget_is_given_up_on_and_counted(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    def broken(envelope: Envelope) -> None:
        raise RuntimeError("always")

    config = ServiceConfig(
        upstream=upstream(sim), worker_intensity=RestartIntensity(max_restarts=1, period=60)
    )
    async with (
        open_service(config) as svc,
        svc.bus.subscribe(types=["rtbus.actor.*", "response.done"]) as sub,
    ):
        session = await svc.open_session(id="s1")
        await svc.add_worker(broken, sessions="s1", maxsize=1)
        await session.send(CREATE)
        taken = await take_until(sub, "rtbus.actor.gave_up")
        gave_up = taken[-1].event
        if "response.done" not in {envelope.type for envelope in taken}:
            await take_until(sub, "response.done")
        scrape = Scrape(svc)
    assert isinstance(gave_up, ActorGaveUp)
    # The envelope it failed on, and the one waiting behind it in its one-slot buffer.
    assert gave_up.abandoned == 2
    restarts = {
        (dict(labels)["supervisor"], dict(labels)["outcome"]): value
        for labels, value in scrape.samples["rtbus_actor_restarts_total"].items()
    }
    # One restart within its budget; the supervisor itself never gave up, nor did the root.
    assert restarts == {("root/workers", "restarted"): 1}
    assert scrape.by("rtbus_actor_failures_total", "supervisor") == {"root/workers": 2}
    assert scrape.by("rtbus_actor_gave_up_total", "supervisor") == {"root/workers": 1}
    assert scrape.by("rtbus_worker_envelopes_lost_total", "reason") == {"gave_up": 2}
    assert scrape.by("rtbus_supervisor_remaining_intensity", "supervisor") == {
        "root": 3,
        "root/system": 3,
        "root/workers": 3,  # not consumed by a child that has a budget of its own
        "root/sessions": 3,
    }
