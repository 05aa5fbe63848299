"""Supervisors on the virtual clock: start and stop order, restarts, readiness, shutdown."""

from __future__ import annotations

import math
import random

import attrs
import pytest
import trio
import trio.testing

from rtbus.actors import (
    ActorContext,
    ActorExited,
    ActorFailed,
    ActorRestarted,
    Backoff,
    ChildSpec,
    ChildStartFailed,
    ChildState,
    DuplicateChild,
    ExitReason,
    Fatal,
    RestartIntensity,
    RestartType,
    Strategy,
    SupervisionEvent,
    Supervisor,
    SupervisorSpec,
    UnknownChild,
    serve_supervisor,
)
from rtbus.actors import Mailbox as Mailbox

Log = list[tuple[str, str]]
NO_JITTER = Backoff(base=1.0, factor=2.0, max_delay=8.0, jitter=0.0, reset_after=50.0)
LENIENT = RestartIntensity(max_restarts=10, period=100.0)


class Boom(Exception):
    """The failure the tests inject."""


class EventLog:
    """An ``on_event`` observer the test can wait on."""

    def __init__(self) -> None:
        self.events: list[SupervisionEvent] = []
        self._changed = trio.Event()

    def __call__(self, event: SupervisionEvent) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: str, child: str) -> list[SupervisionEvent]:
        return [e for e in self.events if e.type == f"rtbus.actor.{kind}" and e.child == child]

    async def wait_for(self, kind: str, child: str, count: int = 1) -> SupervisionEvent:
        while len(self.of(kind, child)) < count:
            await self._changed.wait()
        return self.of(kind, child)[count - 1]

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.type.removeprefix("rtbus.actor."), e.child) for e in self.events]


Command = Exception | str


@attrs.define(eq=False)
class Worker:
    """A child the test drives through its mailbox: an exception fails it, "exit" ends it."""

    id: str
    log: Log
    ready_after: float = 0.0
    ignore_stop: bool = False
    mailbox: Mailbox[Command] = attrs.field(factory=lambda: Mailbox[Command](4))

    async def __call__(self, ctx: ActorContext, /, *, task_status: trio.TaskStatus[Worker]) -> None:
        self.log.append(("start", self.id))
        await trio.sleep(self.ready_after)
        task_status.started(self)
        self.log.append(("ready", self.id))
        try:
            await self._serve(ctx)
        finally:
            self.log.append(("end", self.id))

    async def _serve(self, ctx: ActorContext) -> None:
        if self.ignore_stop:
            await trio.sleep_forever()
        async for command in ctx.messages(self.mailbox):
            if isinstance(command, Exception):
                raise command
            return

    def spec(self, restart: RestartType = "permanent", shutdown: float = 1.0) -> ChildSpec[Worker]:
        return ChildSpec(self.id, self, restart=restart, shutdown=shutdown)


def workers(log: Log, *ids: str, ready_after: float = 0.0) -> list[Worker]:
    return [Worker(id, log, ready_after=ready_after) for id in ids]


async def test_children_start_in_order_each_ready_first_and_stop_in_reverse(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: Log = []
    a, b, c = workers(log, "a", "b", "c", ready_after=1.0)
    sup: Supervisor = await nursery.start(
        serve_supervisor, SupervisorSpec([a.spec(), b.spec(), c.spec()])
    )
    assert trio.current_time() == 3.0
    assert log == [
        ("start", "a"),
        ("ready", "a"),
        ("start", "b"),
        ("ready", "b"),
        ("start", "c"),
        ("ready", "c"),
    ]
    log.clear()
    await sup.aclose()
    await sup.aclose()
    assert log == [("end", "c"), ("end", "b"), ("end", "a")]
    assert sup.which_children() == ()


@pytest.mark.parametrize(
    ("strategy", "after_failure"),
    [
        ("one_for_one", ["end b", "start b", "ready b"]),
        ("rest_for_one", ["end b", "end c", "start b", "ready b", "start c", "ready c"]),
        (
            "one_for_all",
            [
                *("end b", "end c", "end a"),
                *("start a", "ready a", "start b", "ready b", "start c", "ready c"),
            ],
        ),
    ],
)
async def test_strategy_decides_which_siblings_restart_and_in_what_order(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    strategy: Strategy,
    after_failure: list[str],
) -> None:
    log: Log = []
    events = EventLog()
    a, b, c = workers(log, "a", "b", "c")
    spec = SupervisorSpec(
        [a.spec(), b.spec(), c.spec()], strategy=strategy, backoff=NO_JITTER, on_event=events
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    log.clear()
    b.mailbox.send_nowait(Boom("b"))
    await events.wait_for("started", "b", count=2)
    await trio.testing.wait_all_tasks_blocked()
    assert [" ".join(entry) for entry in log] == after_failure
    assert [info.id for info in sup.which_children()] == ["a", "b", "c"]
    assert events.of("restarted", "b")[0] == ActorRestarted("root", "b", 1.0, attempt=1, delay=1.0)
    log.clear()
    await sup.aclose()
    assert log == [("end", "c"), ("end", "b"), ("end", "a")]


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_temporary_children_are_not_restarted_by_a_siblings_failure(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, strategy: Strategy
) -> None:
    log: Log = []
    events = EventLog()
    a, temp, c = workers(log, "a", "temp", "c")
    spec = SupervisorSpec(
        [a.spec(), temp.spec(restart="temporary"), c.spec(restart="transient")],
        strategy=strategy,
        backoff=NO_JITTER,
        on_event=events,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    a.mailbox.send_nowait(Boom("a"))
    await events.wait_for("started", "c", count=2)
    assert [info.id for info in sup.which_children()] == ["a", "c"]
    assert log.count(("start", "temp")) == 1
    assert events.of("exited", "temp") == [
        ActorExited("root", "temp", 0.0, reason=ExitReason.SHUTDOWN)
    ]
    assert events.of("restarted", "temp") == []


@pytest.mark.parametrize(
    ("restart", "command", "restarted"),
    [
        ("permanent", "exit", True),
        ("permanent", Boom("x"), True),
        ("transient", "exit", False),
        ("transient", Boom("x"), True),
        ("temporary", "exit", False),
        ("temporary", Boom("x"), False),
        # Fatal: a failure a restart cannot fix; only a child that must run is restarted.
        ("permanent", Fatal("x"), True),
        ("transient", Fatal("x"), False),
        ("temporary", Fatal("x"), False),
    ],
)
async def test_restart_type_decides_whether_an_exit_is_restarted(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    restart: RestartType,
    command: Command,
    restarted: bool,
) -> None:
    log: Log = []
    events = EventLog()
    (worker,) = workers(log, "w")
    spec = SupervisorSpec([worker.spec(restart=restart)], backoff=NO_JITTER, on_event=events)
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    worker.mailbox.send_nowait(command)
    kind = "exited" if command == "exit" else "failed"
    await events.wait_for(kind, "w")
    if restarted:
        await events.wait_for("started", "w", count=2)
        assert sup.child("w").incarnation == 2
    else:
        assert sup.which_children() == ()
        assert sup.statistics().restarts_total == 0
    await sup.aclose()


async def test_a_failing_child_restarts_on_the_seeded_backoff_schedule(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events = EventLog()
    backoff = Backoff(base=1.0, factor=2.0, max_delay=3.0, jitter=0.5, reset_after=100.0)

    async def flaky(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(0.25)
        if ctx.incarnation <= 4:
            raise Boom(ctx.incarnation)
        await ctx.wait_stop_requested()

    spec = SupervisorSpec(
        [ChildSpec("flaky", flaky)],
        intensity=RestartIntensity(max_restarts=5, period=60.0),
        backoff=backoff,
        on_event=events,
        rng=random.Random(1234),
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await events.wait_for("started", "flaky", count=5)

    draws = random.Random(1234)
    delays = [backoff.delay(attempt, draws) for attempt in range(1, 5)]
    assert [round(d, 6) for d in delays] != [1.0, 2.0, 3.0, 3.0]  # the jitter did something
    expected: list[tuple[str, float]] = [("started", 0.0)]
    now = 0.0
    for delay in delays:
        now += 0.25
        expected.append(("failed", now))
        now += delay
        expected += [("restarted", now), ("started", now)]
    assert [kind for kind, _ in events.kinds()] == [kind for kind, _ in expected]
    assert [e.at for e in events.events] == pytest.approx([at for _, at in expected])
    restarts = [e for e in events.events if isinstance(e, ActorRestarted)]
    assert [(e.attempt, e.delay) for e in restarts] == list(zip(range(1, 5), delays, strict=True))
    failures = [e for e in events.events if isinstance(e, ActorFailed)]
    assert [e.exception.args for e in failures] == [(1,), (2,), (3,), (4,)]
    stats = sup.statistics()
    assert (stats.running, stats.restarts_total, stats.remaining_intensity) == (1, 4, 1)
    await sup.aclose()


async def test_a_child_that_ran_longer_than_reset_after_backs_off_from_base_again(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events = EventLog()

    async def slow_to_fail(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(60.0 if ctx.incarnation == 3 else 1.0)
        raise Boom(ctx.incarnation)

    spec = SupervisorSpec(
        [ChildSpec("c", slow_to_fail)], intensity=LENIENT, backoff=NO_JITTER, on_event=events
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await events.wait_for("restarted", "c", count=4)
    restarts = [e for e in events.events if isinstance(e, ActorRestarted)]
    assert [(e.attempt, e.delay) for e in restarts] == [(1, 1.0), (2, 2.0), (1, 1.0), (2, 2.0)]
    await sup.aclose()


async def test_a_restart_that_fails_before_ready_counts_and_backs_off_further(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events = EventLog()

    async def shaky(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        if ctx.incarnation == 2:
            raise Boom("no upstream")
        task_status.started()
        if ctx.incarnation == 1:
            raise Boom("lost upstream")
        await ctx.wait_stop_requested()

    spec = SupervisorSpec(
        [ChildSpec("s", shaky)], intensity=LENIENT, backoff=NO_JITTER, on_event=events
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await events.wait_for("started", "s", count=2)
    assert events.kinds() == [
        ("started", "s"),
        ("failed", "s"),
        ("restarted", "s"),
        ("failed", "s"),
        ("restarted", "s"),
        ("started", "s"),
    ]
    failed = events.of("failed", "s")[1]
    assert isinstance(failed, ActorFailed)
    assert isinstance(failed.exception, ChildStartFailed)
    assert str(failed.exception.__cause__) == "no upstream"
    assert [e.at for e in events.events] == [0.0, 0.0, 1.0, 1.0, 3.0, 3.0]
    assert sup.child("s").incarnation == 3
    await sup.aclose()


async def test_restart_statistics_while_a_child_waits_out_its_backoff(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: Log = []
    events = EventLog()
    a, b = workers(log, "a", "b")
    spec = SupervisorSpec(
        [a.spec(), b.spec()],
        intensity=RestartIntensity(max_restarts=2, period=10.0),
        backoff=NO_JITTER,
        on_event=events,
    )
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    b.mailbox.send_nowait(Boom("b"))
    await events.wait_for("failed", "b")
    await trio.testing.wait_all_tasks_blocked()
    stats = sup.statistics()
    assert (stats.supervisor, stats.running, stats.restarting) == ("root", 1, 1)
    assert (stats.starting, stats.stopping) == (0, 0)
    assert (stats.restarts_total, stats.remaining_intensity) == (1, 1)
    assert sup.child("b").state is ChildState.RESTARTING
    assert sup.child("b").handle is None
    await events.wait_for("started", "b", count=2)
    assert sup.child("b").state is ChildState.RUNNING
    assert sup.child("b").handle is b
    await sup.aclose()


async def test_stop_waits_the_grace_period_then_cancels(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: Log = []
    events = EventLog()
    polite = Worker("polite", log)
    stubborn = Worker("stubborn", log, ignore_stop=True)
    spec = SupervisorSpec([polite.spec(), stubborn.spec(shutdown=2.5)], on_event=events)
    sup: Supervisor = await nursery.start(serve_supervisor, spec)
    await sup.aclose()
    assert trio.current_time() == 2.5
    assert events.of("exited", "stubborn") == [
        ActorExited("root", "stubborn", 2.5, reason=ExitReason.KILLED)
    ]
    assert events.of("exited", "polite") == [
        ActorExited("root", "polite", 2.5, reason=ExitReason.SHUTDOWN)
    ]
    assert log[-2:] == [("end", "stubborn"), ("end", "polite")]


async def test_dynamic_children_start_ready_and_terminate(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: Log = []
    sup: Supervisor = await nursery.start(serve_supervisor, SupervisorSpec())
    session = Worker("s-1", log, ready_after=3.0)
    handle = await sup.start_child(session.spec())
    assert handle is session
    assert trio.current_time() == 3.0
    assert log == [("start", "s-1"), ("ready", "s-1")]
    assert sup.child("s-1").handle is session
    with pytest.raises(DuplicateChild, match="s-1"):
        await sup.start_child(Worker("s-1", log).spec())
    await sup.terminate_child("s-1")
    assert log[-1] == ("end", "s-1")
    assert sup.which_children() == ()
    with pytest.raises(UnknownChild, match="s-1"):
        await sup.terminate_child("s-1")
    await sup.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await sup.start_child(Worker("s-2", log).spec())


async def test_start_child_raises_when_the_child_fails_before_ready(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    events = EventLog()
    sup: Supervisor = await nursery.start(serve_supervisor, SupervisorSpec(on_event=events))

    async def refused(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        await trio.sleep(1.0)
        raise Boom("upstream said no")

    async def gave_up(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        return

    with pytest.raises(ChildStartFailed, match="'refused' failed before") as failed:
        await sup.start_child(ChildSpec("refused", refused))
    assert isinstance(failed.value.__cause__, Boom)
    with pytest.raises(ChildStartFailed, match="'quitter' returned before"):
        await sup.start_child(ChildSpec("quitter", gave_up))
    assert sup.which_children() == ()
    assert events.events == []
    assert sup.statistics().restarts_total == 0
    await sup.aclose()


async def test_an_initial_child_that_fails_before_ready_fails_the_start(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: Log = []
    a, b = workers(log, "a", "b")

    async def broken(ctx: ActorContext, /, *, task_status: trio.TaskStatus[None]) -> None:
        raise Boom("bad config")

    spec = SupervisorSpec([a.spec(), b.spec(), ChildSpec("broken", broken)])
    with pytest.raises(ChildStartFailed, match="broken") as failed:
        await nursery.start(serve_supervisor, spec)
    assert isinstance(failed.value.__cause__, Boom)
    assert log[-2:] == [("end", "b"), ("end", "a")]


def test_child_ids_are_unique_in_a_spec() -> None:
    log: Log = []
    with pytest.raises(DuplicateChild, match="'x'"):
        SupervisorSpec([Worker("x", log).spec(), Worker("x", log).spec()])
    with pytest.raises(ValueError, match="strategy"):
        SupervisorSpec(strategy="all_for_none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown"):
        ChildSpec("x", Worker("x", log), shutdown=-1.0)
    assert ChildSpec("x", Worker("x", log), shutdown=math.inf).shutdown == math.inf
