"""Restart budgets per child: past its own budget one child is given up on, alone."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from rtbus.actors import (
    ActorContext,
    ActorGaveUp,
    Backoff,
    ChildSpec,
    ChildState,
    RestartIntensity,
    SupervisionEvent,
    Supervisor,
    SupervisorGaveUp,
    SupervisorSpec,
    UnknownChild,
    serve_supervisor,
)
from rtbus.actors._strategy import Strategy

IMMEDIATE = Backoff(base=0.0, jitter=0.0)
# The supervisor's own budget is tight: were the children's restarts counted against it, the
# tests below would see it give up long before any child ran out of its own.
TIGHT = RestartIntensity(max_restarts=1, period=100.0)
OWN = RestartIntensity(max_restarts=3, period=60.0)


class Boom(Exception):
    """The failure the tests inject."""


async def fails_soon(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
    task_status.started()
    await trio.sleep(0.5)
    raise Boom(ctx.name, ctx.incarnation)


async def runs_until_stopped(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
    task_status.started()
    await ctx.wait_stop_requested()


def given_up(events: list[SupervisionEvent]) -> list[ActorGaveUp]:
    return [e for e in events if isinstance(e, ActorGaveUp)]


async def test_a_child_past_its_own_budget_is_removed_and_reported_alone(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events: list[SupervisionEvent] = []
    abandoned: list[str] = []

    def abandon() -> int:
        abandoned.append("flaky")
        return 7

    spec = SupervisorSpec(
        [
            ChildSpec("steady", runs_until_stopped),
            ChildSpec("flaky", fails_soon, intensity=OWN, abandon=abandon),
        ],
        intensity=TIGHT,
        backoff=IMMEDIATE,
        on_event=events.append,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await trio.sleep(10)
    # Three restarts granted, the fourth failure is one too many: at 4 * 0.5 seconds.
    [event] = given_up(events)
    assert (event.supervisor, event.child, event.at) == ("root", "flaky", 2.0)
    assert (event.max_restarts, event.period, event.abandoned) == (3, 60.0, 7)
    assert isinstance(event.exception, Boom)
    assert event.exception.args == ("root/flaky", 4)
    assert abandoned == ["flaky"], "abandon is called exactly once"
    assert [c.id for c in sup.which_children()] == ["steady"]
    with pytest.raises(UnknownChild):
        sup.child("flaky")
    steady = sup.child("steady")
    assert (steady.state, steady.incarnation) == (ChildState.RUNNING, 1)
    stats = sup.statistics()
    assert stats.remaining_intensity == TIGHT.max_restarts, "the supervisor's own is untouched"
    assert stats.restarts_total == 3
    assert not [e for e in events if isinstance(e, SupervisorGaveUp)]
    await sup.aclose()


async def test_dynamic_children_with_budgets_never_make_the_supervisor_give_up(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events: list[SupervisionEvent] = []
    spec = SupervisorSpec(intensity=TIGHT, backoff=IMMEDIATE, on_event=events.append)
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await sup.start_child(ChildSpec("keeper", runs_until_stopped, intensity=OWN))
    for n in range(5):
        await sup.start_child(ChildSpec(f"bad{n}", fails_soon, intensity=OWN))
    await trio.sleep(10)
    assert sorted(e.child for e in given_up(events)) == [f"bad{n}" for n in range(5)]
    assert [c.id for c in sup.which_children()] == ["keeper"]
    assert sup.statistics().restarts_total == 15
    # Still supervising: a new child starts and is restarted as usual.
    await sup.start_child(ChildSpec("late", runs_until_stopped, intensity=OWN))
    assert sup.child("late").state is ChildState.RUNNING
    await sup.aclose()


async def test_an_own_budget_renews_as_old_restarts_age_out(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events: list[SupervisionEvent] = []
    spec = SupervisorSpec(
        [ChildSpec("slow", fails_soon, intensity=RestartIntensity(max_restarts=1, period=1.0))],
        intensity=TIGHT,
        backoff=Backoff(base=1.0, factor=1.0, jitter=0.0),
        on_event=events.append,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await trio.sleep(30)
    # Each failure comes 1.5 s after the previous one: one restart in 1 s is never exceeded.
    assert not given_up(events)
    assert sup.child("slow").incarnation > 10
    await sup.aclose()


async def test_a_child_with_its_own_backoff_waits_by_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    restarted: list[float] = []

    def observe(event: SupervisionEvent) -> None:
        if event.type == "rtbus.actor.restarted":
            restarted.append(event.at)

    own = Backoff(base=4.0, factor=1.0, jitter=0.0)
    spec = SupervisorSpec(
        [ChildSpec("flaky", fails_soon, intensity=OWN, backoff=own)],
        backoff=IMMEDIATE,
        on_event=observe,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await trio.sleep(10)
    assert restarted == [4.5, 9.0]
    await sup.aclose()


@pytest.mark.parametrize(
    ("strategy", "siblings_restarted"),
    [("one_for_one", 0), ("rest_for_one", 1), ("one_for_all", 2)],
)
async def test_strategies_still_take_down_the_group_until_the_child_is_given_up_on(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    strategy: Strategy,
    siblings_restarted: int,
) -> None:
    events: list[SupervisionEvent] = []
    spec = SupervisorSpec(
        [
            ChildSpec("before", runs_until_stopped),
            ChildSpec("flaky", fails_soon, intensity=RestartIntensity(max_restarts=2)),
            ChildSpec("after", runs_until_stopped),
        ],
        strategy=strategy,
        backoff=IMMEDIATE,
        on_event=events.append,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await trio.sleep(10)
    assert [e.child for e in given_up(events)] == ["flaky"]
    incarnations = {c.id: c.incarnation for c in sup.which_children()}
    assert set(incarnations) == {"before", "after"}
    # Two restarts took the group down twice; the give-up took nobody else down.
    restarted = sum(n - 1 for n in incarnations.values())
    assert restarted == 2 * siblings_restarted
    assert sup.statistics().remaining_intensity == 3
    await sup.aclose()
