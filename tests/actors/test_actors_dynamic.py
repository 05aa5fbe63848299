"""Dynamic children: concurrent starts, exits around admission, starts cut short by a stop."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from rtbus.actors import (
    ActorContext,
    Backoff,
    ChildSpec,
    SupervisionEvent,
    Supervisor,
    SupervisorSpec,
    serve_supervisor,
)
from rtbus.actors._child import Child, Incarnation
from rtbus.actors._children import ChildSet
from rtbus.actors._events import ignore_event


class Boom(Exception):
    """The failure the tests inject."""


def slow_to_start(seconds: float, started: list[str]) -> ChildSpec[str]:
    async def session(ctx: ActorContext, /, *, task_status: trio.TaskStatus[str]) -> None:
        started.append(ctx.id)
        await trio.sleep(seconds)
        task_status.started(f"handle of {ctx.id}")
        await ctx.wait_stop_requested()

    return ChildSpec(f"s-{seconds:g}", session)


async def test_dynamic_children_start_concurrently(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup: Supervisor = await nursery.start(serve_supervisor, SupervisorSpec())
    started: list[str] = []
    handles: list[str] = []

    async def open_one(seconds: float) -> None:
        handles.append(await sup.start_child(slow_to_start(seconds, started)))

    async with trio.open_nursery() as openers:
        openers.start_soon(open_one, 2.0)
        openers.start_soon(open_one, 1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(started) == ["s-1", "s-2"]
        assert sup.statistics().starting == 2
        assert sup.which_children() == ()
    # Both upstreams answered in parallel: 2 seconds in all, not 3.
    assert trio.current_time() == 2.0
    assert handles == ["handle of s-1", "handle of s-2"]
    assert [info.id for info in sup.which_children()] == ["s-1", "s-2"]
    assert sup.statistics().starting == 0
    await sup.aclose()


async def test_a_child_that_fails_as_soon_as_it_is_ready_is_still_supervised(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events: list[SupervisionEvent] = []

    async def brittle(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        if ctx.incarnation == 1:
            raise Boom("right after ready")
        await ctx.wait_stop_requested()

    spec = SupervisorSpec(backoff=Backoff(base=1.0, jitter=0.0), on_event=events.append)
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await sup.start_child(ChildSpec("brittle", brittle))
    await trio.sleep(5.0)
    assert [e.type.removeprefix("rtbus.actor.") for e in events] == [
        "started",
        "failed",
        "restarted",
        "started",
    ]
    assert sup.child("brittle").incarnation == 2
    await sup.aclose()


async def test_stopping_cuts_short_the_starts_in_flight(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup: Supervisor = await nursery.start(serve_supervisor, SupervisorSpec())
    started: list[str] = []
    outcome: list[BaseException] = []

    async def open_one() -> None:
        try:
            await sup.start_child(slow_to_start(60.0, started))
        except trio.ClosedResourceError as exc:
            outcome.append(exc)

    nursery.start_soon(open_one)
    await trio.testing.wait_all_tasks_blocked()
    assert started == ["s-60"]
    await sup.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert trio.current_time() == 0.0
    assert [str(exc) for exc in outcome] == ["supervisor 'root' stopped"]
    assert sup.statistics().starting == 0


async def test_a_child_ready_after_the_stop_began_is_stopped_at_once(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """A start that ignores cancellation until ready still cannot outlive the supervisor."""
    stopped = trio.Event()

    async def stubborn(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(3.0)
        task_status.started()
        try:
            await ctx.wait_stop_requested()
        finally:
            stopped.set()

    sup: Supervisor = await nursery.start(serve_supervisor, SupervisorSpec())
    refused: list[str] = []

    async def open_stubborn() -> None:
        try:
            await sup.start_child(ChildSpec("stubborn", stubborn))
        except trio.ClosedResourceError as exc:
            refused.append(str(exc))

    async with trio.open_nursery() as tasks:
        tasks.start_soon(open_stubborn)
        await trio.testing.wait_all_tasks_blocked()
        tasks.start_soon(sup.aclose)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.ClosedResourceError, match="stopping"):
            await sup.start_child(ChildSpec("late", stubborn))
    assert stopped.is_set()
    assert trio.current_time() == 3.0
    assert refused == ["supervisor 'root' stopped"]
    assert sup.which_children() == ()


async def test_admitting_a_child_that_already_exited_reports_it_again(
    nursery: trio.Nursery,
) -> None:
    """The supervisor ignores reports about non-members, so admission must repeat one."""
    reports: list[tuple[Child, Incarnation]] = []
    children = ChildSet(("root",), nursery, ignore_event, lambda c, i: reports.append((c, i)))

    async def brief(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    child = children.reserve(ChildSpec("brief", brief), Backoff())
    await children.start(child)
    await trio.testing.wait_all_tasks_blocked()
    assert child.current is not None
    assert not children.is_current(child, child.current)
    assert reports == [(child, child.current)]
    children.admit(child)
    assert children.is_current(child, child.current)
    assert reports == [(child, child.current)] * 2


def draining(seconds: float, stopped: list[str]) -> ChildSpec[str]:
    """A child that takes ``seconds`` to finish its work once asked to stop."""

    async def session(ctx: ActorContext, /, *, task_status: trio.TaskStatus[str]) -> None:
        task_status.started(ctx.id)
        await ctx.wait_stop_requested()
        await trio.sleep(seconds)
        stopped.append(ctx.id)

    return ChildSpec(f"d-{seconds:g}", session, shutdown=10.0)


@pytest.mark.parametrize(
    ("concurrently", "took", "order"), [(True, 3.0, [1, 2, 3]), (False, 6.0, [3, 2, 1])]
)
async def test_stop_order_of_peers(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    concurrently: bool,
    took: float,
    order: list[int],
) -> None:
    spec = SupervisorSpec(stop_concurrently=concurrently)
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    stopped: list[str] = []
    for seconds in (1.0, 2.0, 3.0):
        await sup.start_child(draining(seconds, stopped))
    start = trio.current_time()
    await sup.aclose()
    # Peers drain together: the slowest one's time, not the sum (reverse order, one by one).
    assert trio.current_time() - start == took
    assert stopped == [f"d-{n}" for n in order]
