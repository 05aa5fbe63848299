"""Restart intensity, escalation through nested supervisors, and cancellation of the tree."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from rtbus.actors import (
    ActorContext,
    ActorFailed,
    Backoff,
    ChildSpec,
    RestartIntensity,
    RestartIntensityExceeded,
    SupervisionEvent,
    Supervisor,
    SupervisorGaveUp,
    SupervisorSpec,
    serve_supervisor,
)

IMMEDIATE = Backoff(base=0.0, jitter=0.0)


class Boom(Exception):
    """The failure the tests inject."""


async def fails_after_a_while(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
    task_status.started()
    await trio.sleep(0.25)
    raise Boom(ctx.name, ctx.incarnation)


async def runs_until_stopped(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
    task_status.started()
    await ctx.wait_stop_requested()


def kinds(events: list[SupervisionEvent]) -> list[tuple[str, str, str]]:
    return [(e.type.removeprefix("rtbus.actor."), e.supervisor, e.child) for e in events]


async def test_the_restart_past_the_intensity_fails_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[SupervisionEvent] = []
    spec = SupervisorSpec(
        [ChildSpec("steady", runs_until_stopped), ChildSpec("flaky", fails_after_a_while)],
        intensity=RestartIntensity(max_restarts=2, period=10.0),
        backoff=Backoff(base=1.0, factor=2.0, max_delay=8.0, jitter=0.0),
        on_event=events.append,
    )
    with pytest.raises(RestartIntensityExceeded, match="more than 2 restarts in 10s") as info:
        await serve_supervisor(spec)
    # Failures at 0.25, 1.5 (restarted at 1.25), 3.75 (restarted at 3.5): the third gives up.
    assert trio.current_time() == 3.75
    assert isinstance(info.value.__cause__, Boom)
    assert info.value.__cause__.args == ("root/flaky", 3)
    gave_up = [e for e in events if isinstance(e, SupervisorGaveUp)]
    assert gave_up == [SupervisorGaveUp("root", "flaky", 3.75, max_restarts=2, period=10.0)]
    # Giving up stops the remaining children before the supervisor fails.
    assert kinds(events)[-2:] == [
        ("supervisor_gave_up", "root", "flaky"),
        ("exited", "root", "steady"),
    ]


async def test_restarts_spread_wider_than_the_period_never_exhaust_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events: list[SupervisionEvent] = []
    spec = SupervisorSpec(
        [ChildSpec("flaky", fails_after_a_while)],
        intensity=RestartIntensity(max_restarts=1, period=2.0),
        backoff=Backoff(base=2.0, factor=1.0, jitter=0.0),
        on_event=events.append,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await trio.sleep(22.5)
    assert sup.statistics().restarts_total == 10
    assert not [e for e in events if isinstance(e, SupervisorGaveUp)]
    await sup.aclose()


async def test_a_child_supervisor_that_gives_up_is_restarted_then_escalates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[SupervisionEvent] = []
    once = RestartIntensity(max_restarts=1, period=100.0)
    inner = SupervisorSpec(
        [ChildSpec("worker", fails_after_a_while)],
        intensity=once,
        backoff=IMMEDIATE,
        on_event=events.append,
    )
    outer = SupervisorSpec(
        [ChildSpec("steady", runs_until_stopped), inner.as_child("inner")],
        intensity=once,
        backoff=IMMEDIATE,
        on_event=events.append,
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await serve_supervisor(outer)
    root_gave_up, inner_gave_up = info.value, info.value.__cause__
    assert (root_gave_up.supervisor, root_gave_up.child) == ("root", "inner")
    assert isinstance(inner_gave_up, RestartIntensityExceeded)
    assert (inner_gave_up.supervisor, inner_gave_up.child) == ("root/inner", "worker")
    assert isinstance(inner_gave_up.__cause__, Boom)

    inner_round = [
        ("started", "root/inner", "worker"),
        ("failed", "root/inner", "worker"),
        ("restarted", "root/inner", "worker"),
        ("started", "root/inner", "worker"),
        ("failed", "root/inner", "worker"),
        ("supervisor_gave_up", "root/inner", "worker"),
        ("failed", "root", "inner"),
    ]
    assert kinds(events) == [
        ("started", "root", "steady"),
        *inner_round[:1],
        ("started", "root", "inner"),
        *inner_round[1:],
        ("restarted", "root", "inner"),
        *inner_round[:1],
        ("started", "root", "inner"),
        *inner_round[1:],
        ("supervisor_gave_up", "root", "inner"),
        ("exited", "root", "steady"),
    ]
    failed_inner = [e for e in events if isinstance(e, ActorFailed) and e.child == "inner"]
    assert all(isinstance(e.exception, RestartIntensityExceeded) for e in failed_inner)
    assert trio.current_time() == 1.0


async def test_cancelling_the_tree_is_never_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[SupervisionEvent] = []
    cleaned_up: list[str] = []

    async def tidy(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.append(ctx.name)

    inner = SupervisorSpec([ChildSpec("leaf", tidy)], on_event=events.append)
    outer = SupervisorSpec(
        [
            ChildSpec("tidy", tidy),
            inner.as_child("inner"),
            # Pending a restart when the tree goes: the restart must not happen.
            ChildSpec("flaky", fails_after_a_while),
        ],
        backoff=Backoff(base=5.0, jitter=0.0),
        on_event=events.append,
    )
    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(serve_supervisor, outer)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert sorted(cleaned_up) == ["root/inner/leaf", "root/tidy"]
    assert {e.type for e in events} == {"rtbus.actor.started", "rtbus.actor.failed"}
    assert [e.child for e in events if e.type == "rtbus.actor.failed"] == ["flaky"]
    assert sup.statistics().restarts_total == 1
