"""The in-process ``Service`` and the gateway client (``rtbus.connect``) side by side: the
same calls, with the same names, give the same results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import pytest
import trio

import rtbus
from rtbus.actors import UnknownChild
from rtbus.bus import Envelope
from rtbus.gateway import GatewayError
from rtbus.protocol import ResponseOutputTextDoneEvent
from rtbus.service import (
    DemoSettings,
    HttpConfig,
    RunningService,
    Settings,
    SimUpstream,
    run_service,
)

TEXT_ONLY = {"type": "realtime", "output_modalities": ["text"]}
ASK = {
    "type": "conversation.item.create",
    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
}


class Subscribable(Protocol):
    """What both sides have: ``subscribe``, ``send``, ``open_session``, ``close_session``."""

    def subscribe(self, *, sessions: str = ..., types: Any = ..., maxsize: int = ...) -> Any: ...
    def send(self, session_id: str, event: Any) -> Awaitable[str]: ...
    def open_session(self, *, session: Any = ..., id: str | None = ...) -> Awaitable[Any]: ...
    def close_session(self, id: str) -> Awaitable[None]: ...
    def submit(self, session_id: str, event: Any, *, within: float) -> Awaitable[Any]: ...


async def conversation(api: Subscribable, id: str) -> tuple[str, list[str], str]:
    """One turn through ``api``: what a caller sees (ids, event types in order, the text)."""
    session = await api.open_session(session=TEXT_ONLY, id=id)
    types = ["conversation.item.done", "response.*"]
    async with api.subscribe(sessions=session.id, types=types, maxsize=1024) as sub:
        assert await api.send(session.id, ASK)  # both return the event's id
        await api.send(session.id, {"type": "response.create"})
        seen: list[Envelope] = []
        while not seen or seen[-1].type != "response.done":
            seen.append(await sub.receive())
    await api.close_session(session.id)
    text = next(e.event.text for e in seen if isinstance(e.event, ResponseOutputTextDoneEvent))
    return session.id, [e.type for e in seen], text


async def _sent(sending: Awaitable[str]) -> None:
    await sending


@pytest.fixture
async def running(nursery: trio.Nursery) -> RunningService:
    settings = Settings(
        upstream=SimUpstream(speed=50), demo=DemoSettings(sessions=0), http=HttpConfig(port=0)
    )
    started: RunningService = await nursery.start(run_service, settings)
    return started


async def test_a_conversation_reads_the_same_in_and_out_of_process(running: RunningService) -> None:
    here = await conversation(running.service, "here")
    async with rtbus.connect(running.http.url) as bus:
        there = await conversation(bus, "there")
    assert here[0] == "here"
    assert there[0] == "there"
    assert here[1:] == there[1:]
    assert here[1][-1] == "response.done"


async def test_an_outcome_reads_the_same_in_and_out_of_process(running: RunningService) -> None:
    async with rtbus.connect(running.http.url) as bus:
        outcomes = []
        for api, id in ((running.service, "here"), (bus, "there")):
            await api.open_session(session=TEXT_ONLY, id=id)
            outcome = await api.submit(id, ASK, within=0.05)
            outcomes.append((outcome.status, outcome.error))
            await api.close_session(id)
    assert outcomes == [("accepted", None)] * 2


async def test_a_session_that_is_not_there(running: RunningService) -> None:
    attempts: list[Callable[[Subscribable], Awaitable[None]]] = [
        lambda api: _sent(api.send("nobody", {"type": "response.create"})),
        lambda api: api.close_session("nobody"),
    ]
    async with rtbus.connect(running.http.url) as bus:
        for attempt in attempts:
            with pytest.raises(UnknownChild):
                await attempt(running.service)
            with pytest.raises(GatewayError) as refused:
                await attempt(bus)
            assert refused.value.code == "unknown_session"
