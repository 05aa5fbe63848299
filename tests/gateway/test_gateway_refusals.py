"""Errors go back to their cause through the gateway: the connection that sent an event the
upstream refuses learns of it (a ``refused`` frame, or the outcome it waited for), the bus
names it as the sender, and the session goes on."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from support.gateway import GatewayApp, client

from rtbus.protocol import ErrorDetails
from rtbus.service import Service
from rtbus.session import SessionState

DELETE_MISSING: dict[str, Any] = {"type": "conversation.item.delete", "item_id": "item_missing"}
CLEAR: dict[str, Any] = {"type": "input_audio_buffer.clear"}


async def test_a_refusal_reaches_the_connection_that_sent_the_event(
    gateway: GatewayApp, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    refused: list[ErrorDetails] = []
    arrived = trio.Event()

    def on_refused(error: ErrorDetails) -> None:
        refused.append(error)
        arrived.set()

    async with client(gateway) as bus, service.bus.subscribe(types="rtbus.session.*") as lifecycle:
        session = await bus.open_session(id="s1")
        event_id = await session.send(DELETE_MISSING, on_refused=on_refused)
        with trio.fail_after(10):
            await arrived.wait()
        async for envelope in lifecycle:
            if envelope.type == "rtbus.session.event_refused":
                break
    (error,) = refused
    assert (error.code, error.event_id, error.param) == ("item_not_found", event_id, "item_id")
    assert envelope.event.event_id == event_id  # type: ignore[attr-defined]
    assert envelope.event.sender.startswith("gateway:")  # type: ignore[attr-defined]
    assert service.sessions["s1"].state is SessionState.READY
    assert service.sessions["s1"].statistics().counts.failures == {}


async def test_waiting_for_the_outcome_answers_accepted_or_refused(
    gateway: GatewayApp, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    async with client(gateway) as bus:
        session = await bus.open_session(id="s1")
        refused = await session.submit(DELETE_MISSING, within=2)
        accepted = await bus.submit("s1", CLEAR, within=0.5)
    assert refused.status == "refused"
    assert refused.error is not None
    assert (refused.error.code, refused.error.event_id) == ("item_not_found", refused.event_id)
    assert (accepted.status, accepted.error) == ("accepted", None)
    assert service.sessions["s1"].statistics().connects == 1


async def test_an_unhandled_refusal_is_logged_with_its_event_id(
    gateway: GatewayApp, service: Service, autojump_clock: trio.testing.MockClock, caplog: Any
) -> None:
    async with client(gateway) as bus, service.bus.subscribe(types="rtbus.session.*") as lifecycle:
        await bus.open_session(id="s1")
        event_id = await bus.send("s1", DELETE_MISSING)
        async for envelope in lifecycle:
            if envelope.type == "rtbus.session.event_refused":
                break
        # The refused frame follows the event on the same connection; a round trip flushes it.
        await bus.sessions()
    assert any(event_id in record.getMessage() for record in caplog.records)


async def test_a_remote_observer_does_not_handle_a_sessions_errors(
    gateway: GatewayApp, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    async with client(gateway) as bus:
        await bus.open_session(id="s1")
        async with bus.subscribe(types="error", observer=True) as watching:
            await watching.wait_registered()
            assert not service.bus.has_subscriber("s1", "error")
        async with bus.subscribe(types="error") as handling:
            await handling.wait_registered()
            assert service.bus.has_subscriber("s1", "error")


async def test_a_senders_handler_that_raises_costs_the_session_nothing(
    gateway: GatewayApp, service: Service, autojump_clock: trio.testing.MockClock
) -> None:
    # As when a gateway client has gone and its connection cannot take the refusal any more.
    def gone(error: ErrorDetails) -> None:
        raise RuntimeError("Nursery is closed to new arrivals")

    session = await service.open_session(id="s1")
    async with service.bus.subscribe(types="rtbus.session.*") as lifecycle:
        await session.send(DELETE_MISSING, sender="gateway:9", on_refused=gone)
        async for envelope in lifecycle:
            if envelope.type == "rtbus.session.event_refused":
                break
    await session.send(CLEAR)  # a round trip after the refusal: the session goes on
    assert session.state is SessionState.READY
    assert session.statistics().counts.failures == {}
    assert session.statistics().connects == 1
