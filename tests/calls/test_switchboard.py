"""The switchboard on its own: answers given at once, acting bounded, failures named."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from rtbus.calls import CallNotFoundError
from rtbus.protocol import (
    CallEnded,
    CallRejected,
    RealtimeCallIncoming,
    SipHeader,
    WebhookSecret,
    sign_webhook,
)
from rtbus.service import CallRoute, CallsSettings, Service
from rtbus.service._switchboard import CALLS, Switchboard

SECRET = WebhookSecret.generate()


class StalledCalls:
    """A calls API whose accepts wait for ``answer`` and then find the call gone."""

    def __init__(self) -> None:
        self.answer = trio.Event()
        self.asked: list[tuple[str, str, object]] = []

    async def accept(self, call_id: str, session: Any) -> None:
        self.asked.append(("accept", call_id, session))
        await self.answer.wait()
        endpoint = "POST /realtime/calls/{id}/accept"
        raise CallNotFoundError("the caller hung up", endpoint, call_id, status=404)

    async def reject(self, call_id: str, status_code: int) -> None:
        self.asked.append(("reject", call_id, status_code))


def delivery(
    webhook_id: str, call_id: str, to: str = "sip:+15550199"
) -> tuple[dict[str, str], bytes]:
    event = RealtimeCallIncoming(
        id=f"evt_{webhook_id}", created_at=int(time.time()), call_id=call_id,
        sip_headers=(SipHeader("To", to),),
    )  # fmt: skip
    body = orjson.dumps(event.to_dict())
    return sign_webhook(SECRET, webhook_id, int(time.time()), body), body


@pytest.fixture
async def board(nursery: trio.Nursery, service: Service) -> tuple[Switchboard, StalledCalls]:
    calls = StalledCalls()
    settings = CallsSettings(
        max_pending=1,
        routes=(CallRoute(name="busy", to="*+1486*", action="reject", status_code=486),),
    )
    return Switchboard(service, settings, calls, nursery, secret=SECRET), calls  # type: ignore[arg-type]


async def test_past_max_pending_a_delivery_is_answered_503_and_its_redelivery_acted_on(
    service: Service, board: tuple[Switchboard, StalledCalls]
) -> None:
    switchboard, calls = board
    async with service.bus.subscribe(sessions=CALLS, types="rtbus.call.ended") as sub:
        assert switchboard.receive_webhook(*delivery("wh_1", "rtc_a")).status == 200
        busy = switchboard.receive_webhook(*delivery("wh_2", "rtc_b"))
        assert (busy.status, busy.code) == (503, "busy")
        calls.answer.set()
        async for envelope in sub:
            ended = envelope.event
            break
    # The caller gave up before the accept: the caller's doing, counted as failed.
    assert isinstance(ended, CallEnded)
    assert (ended.call_id, ended.by, ended.session_id) == ("rtc_a", "caller", "")
    stats = switchboard.statistics()
    assert (stats.outcomes["failed"], stats.verifications["busy"]) == (1, 1)
    assert stats.api_errors == {("POST /realtime/calls/{id}/accept", "404"): 1}
    # The busy delivery's claim was released: the sender's redelivery is acted on.
    assert switchboard.receive_webhook(*delivery("wh_2", "rtc_b")).status == 200
    assert switchboard.receive_webhook(*delivery("wh_2", "rtc_b")).status == 200  # acked once
    assert switchboard.statistics().verifications["redelivery"] == 1


async def test_a_reject_route_sends_its_status_and_publishes_it(
    service: Service, board: tuple[Switchboard, StalledCalls]
) -> None:
    switchboard, calls = board
    async with service.bus.subscribe(sessions=CALLS, types="rtbus.call.rejected") as sub:
        answer = switchboard.receive_webhook(*delivery("wh_3", "rtc_c", to="sip:+14865550"))
        assert answer.status == 200
        async for envelope in sub:
            rejected = envelope.event
            break
    assert isinstance(rejected, CallRejected)
    assert (rejected.route, rejected.status_code) == ("busy", 486)
    assert calls.asked == [("reject", "rtc_c", 486)]


async def test_without_a_secret_webhooks_are_not_found(
    nursery: trio.Nursery, service: Service
) -> None:
    switchboard = Switchboard(service, CallsSettings(), StalledCalls(), nursery, secret=None)  # type: ignore[arg-type]
    assert switchboard.receive_webhook(*delivery("wh_4", "rtc_d")).status == 404


async def test_past_max_calls_a_call_is_rejected_busy_here(
    nursery: trio.Nursery, service: Service
) -> None:
    calls = StalledCalls()
    settings = CallsSettings(max_pending=2, max_calls=1)
    switchboard = Switchboard(service, settings, calls, nursery, secret=SECRET)  # type: ignore[arg-type]
    async with service.bus.subscribe(sessions=CALLS, types="rtbus.call.rejected") as sub:
        assert switchboard.receive_webhook(*delivery("wh_5", "rtc_e")).status == 200
        await trio.testing.wait_all_tasks_blocked()  # its accept is under way (and stalls)
        assert switchboard.receive_webhook(*delivery("wh_6", "rtc_f")).status == 200
        async for envelope in sub:
            rejected = envelope.event
            break
    assert isinstance(rejected, CallRejected)
    assert (rejected.call_id, rejected.status_code) == ("rtc_f", 486)
    calls.answer.set()
