"""The conversation outlives the connection: resume after a drop, a restart, an expiry, and a
recycle with no gap, end to end against rtbus.sim on loopback.

The simulator answers "I remember N items. You said: X": N is what the upstream
conversation holds when the response starts, so a resumed conversation answers differently
from an empty one through the protocol alone.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from support.upstream import CREATE, KEY, MODEL, take_until, upstream

from rtbus import ServiceConfig, SessionSpec, open_service
from rtbus.bus import Envelope, Subscription
from rtbus.service import Service
from rtbus.session import RecordBound, RecordedItem, Session, SessionState
from rtbus.sim import SimServer, serve_sim

REPLY = "I remember {items} items. You said: {last_user_text}"
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


@pytest.fixture
async def sim(nursery: trio.Nursery) -> SimServer:
    serve = functools.partial(
        serve_sim,
        "127.0.0.1",
        0,
        speed=None,
        response_audio_seconds=0.3,
        api_key=KEY,
        response_text=REPLY,
    )
    server: SimServer = await nursery.start(serve)
    return server


@pytest.fixture
async def service(sim: SimServer) -> AsyncIterator[Service]:
    async with open_service(upstream(sim)) as svc:
        yield svc


def say(text: str) -> dict[str, Any]:
    part = {"type": "input_text", "text": text}
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [part]},
    }


def spoken(done: Envelope) -> str:
    output = done.event.response.output  # type: ignore[attr-defined]
    return " ".join(part.transcript or part.text or "" for item in output for part in item.content)


async def turn(session: Session, sub: Subscription, text: str) -> str:
    await session.send(say(text))
    await session.send(CREATE)
    return spoken((await take_until(sub, "response.done"))[-1])


async def two_turns(
    service: Service, spec: SessionSpec | None = None, types: str | list[str] = "*"
) -> tuple[Session, Subscription]:
    sub = service.bus.subscribe(sessions="s1", types=types, maxsize=10_000)
    session = await service.open_session(id="s1", spec=spec)
    assert (
        await turn(session, sub, "My name is Ada.")
        == "I remember 1 items. You said: My name is Ada."
    )
    assert (
        await turn(session, sub, "I live in Paris.")
        == "I remember 3 items. You said: I live in Paris."
    )
    return session, sub


def contiguous(envelopes: list[Envelope]) -> bool:
    seqs = [e.seq for e in envelopes]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.parametrize("fault", ["drop", "close:1011", "expire"])
async def test_a_lost_connection_resumes_the_conversation(
    service: Service, sim: SimServer, fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    session, sub = await two_turns(service)
    assert sim.inject(fault) == 1
    lifecycle = await take_until(sub, "rtbus.session.resumed")
    resumed = lifecycle[-1].event
    assert (resumed.items_restored, resumed.items_dropped, resumed.items_refused) == (4, 0, 0)  # type: ignore[attr-defined]
    assert resumed.previous_upstream_session_id != resumed.upstream_session_id  # type: ignore[attr-defined]
    assert resumed.upstream_session_id  # type: ignore[attr-defined]
    assert resumed.waited_seconds > 0, lifecycle  # type: ignore[attr-defined]
    types = [e.type for e in lifecycle]
    assert types.index("rtbus.session.reconnected") < types.index("rtbus.session.resumed")
    reply = await turn(session, sub, "Where do I live?")
    assert reply == "I remember 5 items. You said: Where do I live?", "it knows the earlier turns"
    assert sim.statistics().connections_total == 2
    await sub.aclose()


async def test_the_cut_tcp_path_resumes_too(
    sim: SimServer, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    from support.tcp_proxy import TcpProxy

    proxy: TcpProxy = await nursery.start(TcpProxy(sim.port).run)
    config = upstream(sim)
    via_proxy = type(config)(api_key=KEY, base_url=f"http://127.0.0.1:{proxy.port}/v1")
    async with open_service(via_proxy) as service:
        session, sub = await two_turns(service)
        proxy.cut()  # half-open: only the keepalive notices
        await take_until(sub, "rtbus.session.resumed", within=600)
        assert await turn(session, sub, "And?") == "I remember 5 items. You said: And?"
        await sub.aclose()


async def test_a_response_cut_off_is_named_and_kept(
    service: Service, sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    session, sub = await two_turns(service)
    await session.send(CREATE)
    created = await take_until(sub, "response.output_audio_transcript.delta")
    response_id = next(e.event.response.id for e in created if e.type == "response.created")  # type: ignore[attr-defined]
    sim.inject("drop")
    resumed = (await take_until(sub, "rtbus.session.resumed"))[-1].event
    assert resumed.interrupted_response_id == response_id  # type: ignore[attr-defined]
    cut = session.conversation().items[-1]
    assert (cut.role, cut.status) == ("assistant", "incomplete")
    assert cut.text, "what it had said before the cut"
    await sub.aclose()


async def test_an_actor_restart_resumes_the_conversation(
    service: Service, sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    no_errors = ["rtbus.*", "session.*", "conversation.*", "response.*"]
    session, sub = await two_turns(service, types=no_errors)
    sim.inject("error:invalid_value")  # nobody takes this session's errors: the actor fails
    envelopes = await take_until(sub, "rtbus.session.resumed")
    types = [e.type for e in envelopes]
    assert "rtbus.session.failed" in types
    assert envelopes[-1].event.items_restored == 4  # type: ignore[attr-defined]
    assert await turn(session, sub, "Again?") == "I remember 5 items. You said: Again?"
    await sub.aclose()


async def test_the_bound_and_the_summary_hook(
    service: Service, sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    def summarize(summary: str | None, item: RecordedItem) -> str:
        return f"{summary or ''}[{item.text}]"

    spec = SessionSpec(record=RecordBound(max_items=3), summarize=summarize)
    session, sub = await two_turns(service, spec)
    assert len(session.conversation().items) == 3
    sim.inject("drop")
    resumed = (await take_until(sub, "rtbus.session.resumed"))[-1].event
    assert (resumed.items_restored, resumed.items_dropped, resumed.summarized) == (4, 1, True)  # type: ignore[attr-defined]
    assert session.conversation().summary == "[My name is Ada.]"
    # The summary and three items upstream, and the new question.
    assert await turn(session, sub, "Who am I?") == "I remember 5 items. You said: Who am I?"
    assert session.statistics().counts.items_dropped >= 1
    await sub.aclose()


async def test_a_function_call_answered_across_a_drop(
    service: Service, sim: SimServer, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    sub = service.bus.subscribe(sessions="s1", maxsize=10_000)
    session = await service.open_session(id="s1", session={"tools": TOOLS, "tool_choice": "auto"})
    await session.send(say("get_weather for Paris"))
    await session.send(CREATE)
    done = (await take_until(sub, "response.done"))[-1].event
    (call,) = done.response.output  # type: ignore[attr-defined]
    assert call.type == "function_call"
    sim.inject("drop")
    await take_until(sub, "rtbus.session.disconnected")

    async def answer() -> None:
        result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"c":21}'}
        await session.send({"type": "conversation.item.create", "item": result})
        await session.send(CREATE)

    nursery.start_soon(answer)
    after = await take_until(sub, "response.done")
    types = [e.type for e in after]
    assert "error" not in types
    output_added = next(
        n
        for n, e in enumerate(after)
        if e.type == "conversation.item.added" and e.event.item.type == "function_call_output"  # type: ignore[attr-defined]
    )
    assert types.index("rtbus.session.resumed") < output_added, "queued until restored"
    items = session.conversation().items
    assert [i.type for i in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert items[2].call_id == call.call_id
    assert spoken(after[-1]) == "I remember 3 items. You said: get_weather for Paris"
    await sub.aclose()


async def test_a_recycle_opens_the_next_session_first_and_switches_with_no_gap(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # Paced at real time on the virtual clock, so the recycle comes during a response.
    serve = functools.partial(
        serve_sim, "127.0.0.1", 0, speed=1.0, response_audio_seconds=2.0, api_key=KEY,
        response_text=REPLY,
    )  # fmt: skip
    sim: SimServer = await nursery.start(serve)
    spec = SessionSpec(model=MODEL, recycle_after=3.0, recycle_grace=30.0)
    async with open_service(ServiceConfig(upstream=upstream(sim))) as service:
        sub = service.bus.subscribe(sessions="s1", maxsize=100_000)
        session = await service.open_session(id="s1", spec=spec)
        await turn(session, sub, "My name is Ada.")  # about two seconds of audio
        await session.send(say("Tell me a story."))
        await session.send(CREATE)  # streaming when the recycle starts
        envelopes = await take_until(sub, "rtbus.session.recycled")
        assert sim.statistics().connections_total == 2
        reply = await turn(session, sub, "Who am I?")
        assert reply == "I remember 5 items. You said: Who am I?"
        assert session.state is SessionState.READY
        assert session.statistics().counts.recycles == 1
        await sub.aclose()
    types = [e.type for e in envelopes]
    assert types.count("rtbus.session.recycled") == 1
    assert "rtbus.session.disconnected" not in types
    assert "rtbus.session.reconnected" not in types
    assert contiguous(envelopes)
    server_ids = [e.event.event_id for e in envelopes if not e.type.startswith("rtbus.")]  # type: ignore[attr-defined]
    assert len(server_ids) == len(set(server_ids)), "no event published twice"
    story_done = [e for e in envelopes if e.type == "response.done"][-1]
    assert story_done.event.response.status == "completed", "the running response finished"  # type: ignore[attr-defined]
    recycled = envelopes[-1].event
    assert recycled.items_restored == 4  # type: ignore[attr-defined]
    assert recycled.switch_seconds < 0.5  # type: ignore[attr-defined]


async def test_drain_closes_a_session_in_backoff_at_once(
    sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    from rtbus.actors import Backoff
    from rtbus.transport import ReconnectPolicy

    spec = SessionSpec(reconnect=ReconnectPolicy(backoff=Backoff(base=600, max_delay=600)))
    config = ServiceConfig(upstream=upstream(sim), session_shutdown=30.0)
    async with open_service(config) as service:
        sub = service.bus.subscribe(sessions="s1")
        session = await service.open_session(id="s1", spec=spec)
        await session.send(CREATE)
        await take_until(sub, "response.created")
        sim.inject("drop")  # mid-response, and the next attempt is ten minutes away
        await take_until(sub, "rtbus.session.disconnected")
        started = trio.current_time()
        await service.close_session("s1")
        assert trio.current_time() - started < 1.0, "nothing to wait for: no response runs"
        await sub.aclose()


async def test_resumes_are_counted_and_timed_for_prometheus(
    service: Service, sim: SimServer, autojump_clock: trio.testing.MockClock
) -> None:
    session, sub = await two_turns(service)
    sim.inject("drop")
    await take_until(sub, "rtbus.session.resumed")
    await turn(session, sub, "Still there?")  # the metrics worker has caught up by then
    value = service.metrics.registry.get_sample_value
    assert value("rtbus_session_resumes_total", {"reason": "close_1006"}) == 1
    assert value("rtbus_session_items_restored_total") == 4
    assert value("rtbus_session_resume_wait_seconds_count") == 1
    assert (value("rtbus_session_resume_wait_seconds_sum") or 0) > 0
    await sub.aclose()


async def test_a_prepared_session_is_let_go_when_the_current_connection_drops_first(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    serve = functools.partial(
        serve_sim, "127.0.0.1", 0, speed=1.0, response_audio_seconds=20.0, api_key=KEY
    )
    sim: SimServer = await nursery.start(serve)
    spec = SessionSpec(model=MODEL, recycle_after=3.0, recycle_grace=60.0)
    async with open_service(ServiceConfig(upstream=upstream(sim))) as service:
        sub = service.bus.subscribe(sessions="s1", types="rtbus.session.*")
        session = await service.open_session(id="s1", spec=spec)
        await session.send(say("Tell me a long story."))
        await session.send(CREATE)  # twenty seconds of audio: the recycle waits for its end
        await trio.sleep(5.0)  # the recycle prepared the next session at 3 s
        assert sim.statistics().connections_open == 2
        assert sim.inject("drop", oldest=1) == 1  # the current one drops first
        await take_until(sub, "rtbus.session.resumed")
        await trio.sleep(1.0)
        assert sim.statistics().connections_open == 1, "the prepared one was let go"
        await sub.aclose()
