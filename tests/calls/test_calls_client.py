"""The calls REST client against real HTTP servers on 127.0.0.1: the simulator and a flaky one."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import h11
import orjson
import pytest
import trio
from openai.types.realtime import ClientSecretCreateResponse

from rtbus._backoff import Backoff
from rtbus.calls import (
    CallNotFoundError,
    CallsClient,
    CallsRequestError,
    CallsTransportError,
    CallsUpstreamError,
)
from rtbus.protocol import (
    AzureConfig,
    CallOperation,
    OpenAIConfig,
    ProtocolError,
    call_id_from_location,
    match_route,
    rest_base_url,
)
from rtbus.sim import SimServer, serve_sim
from rtbus.sim._calls import CallBook, CallState, Reply, Request
from rtbus.sim._http import PlainRequest, read_front_door, serve_plain
from rtbus.sim._session import SessionSettings

KEY = "sk-proj-CALLS-SECRET"
SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief."}
NO_WAIT = Backoff(base=0.0, max_delay=1.0, jitter=0.0)
STALL = 999  # a scripted answer that never comes


async def sim(nursery: trio.Nursery, **options: object) -> tuple[SimServer, CallsClient]:
    server: SimServer = await nursery.start(
        functools.partial(serve_sim, "127.0.0.1", 0, api_key=KEY, **options)  # type: ignore[arg-type]
    )
    return server, CallsClient(OpenAIConfig(api_key=KEY, base_url=server.url), backoff=NO_WAIT)


async def test_accept_a_ringing_call(nursery: trio.Nursery) -> None:
    server, calls = await sim(nursery)
    call = server.calls.ring((("To", "<sip:+1555@x>"),), time.time())
    async with calls:
        await calls.accept(call.call_id, SESSION)
    assert call.state is CallState.ACCEPTED
    assert call.session == SESSION


@pytest.mark.parametrize("operation", ["accept", "reject", "hangup"])
async def test_an_unknown_call_is_not_found(nursery: trio.Nursery, operation: str) -> None:
    _, calls = await sim(nursery)
    async with calls:
        act: dict[str, Callable[[], object]] = {
            "accept": lambda: calls.accept("rtc_missing", SESSION),
            "reject": lambda: calls.reject("rtc_missing"),
            "hangup": lambda: calls.hangup("rtc_missing"),
        }
        with pytest.raises(CallNotFoundError) as caught:
            await act[operation]()  # type: ignore[misc]
    error = caught.value
    assert (error.status, error.code, error.call_id) == (404, "call_not_found", "rtc_missing")
    assert error.endpoint == f"POST /realtime/calls/{{call_id}}/{operation}"
    assert "rtc_missing" in str(error)


async def test_accept_after_the_caller_gave_up_is_too_late(nursery: trio.Nursery) -> None:
    server, calls = await sim(nursery, ring_seconds=30.0)
    call = server.calls.ring((), time.time() - 31)
    async with calls:
        with pytest.raises(CallNotFoundError):
            await calls.accept(call.call_id, SESSION)
    assert call.state is CallState.MISSED


async def test_a_rejected_call_cannot_be_accepted(nursery: trio.Nursery) -> None:
    server, calls = await sim(nursery)
    call = server.calls.ring((), time.time())
    async with calls:
        await calls.reject(call.call_id, 486)
        with pytest.raises(CallNotFoundError):
            await calls.accept(call.call_id, SESSION)
    assert call.ended_by == "rejected with SIP 486"


async def test_a_bad_session_is_our_fault_and_the_call_keeps_ringing(
    nursery: trio.Nursery,
) -> None:
    server, calls = await sim(nursery)
    call = server.calls.ring((), time.time())
    async with calls:
        with pytest.raises(CallsRequestError) as caught:
            await calls.accept(call.call_id, {"type": "realtime", "voice": 7})
    assert caught.value.status == 400
    assert call.state is CallState.RINGING


async def test_refer_hangup_and_wrong_states(nursery: trio.Nursery) -> None:
    server, calls = await sim(nursery)
    ringing = server.calls.ring((), time.time())
    async with calls:
        with pytest.raises(CallsRequestError) as caught:
            await calls.refer(ringing.call_id, "tel:+15550000")
        assert caught.value.code == "invalid_call_state"
        await calls.accept(ringing.call_id, SESSION)
        with pytest.raises(CallsRequestError):
            await calls.refer(ringing.call_id, "mailto:nobody")
        await calls.refer(ringing.call_id, "sip:desk@example.com")
        with pytest.raises(CallNotFoundError):
            await calls.hangup(ringing.call_id)
    assert ringing.referred_to == "sip:desk@example.com"


async def test_create_a_webrtc_call(nursery: trio.Nursery) -> None:
    server, calls = await sim(nursery)
    async with calls:
        created = await calls.create(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=application 9\r\n", SESSION
        )
        bare = await calls.create("v=0\r\n")
    assert created.sdp_answer.startswith("v=0\r\n")
    assert "m=application" in created.sdp_answer
    assert server.calls[created.call_id].state is CallState.ACCEPTED
    assert server.calls[created.call_id].session == SESSION
    assert bare.call_id != created.call_id
    assert "v=0" not in repr(created)


async def test_client_secret_is_shaped_as_the_sdk_reads_it(nursery: trio.Nursery) -> None:
    _, calls = await sim(nursery)
    async with calls:
        secret = await calls.client_secret(
            SESSION, expires_after={"anchor": "created_at", "seconds": 120}
        )
    assert secret.value.startswith("ek_")
    assert secret.value not in repr(secret)
    assert abs(secret.expires_at - (time.time() + 120)) < 5
    payload = {"value": secret.value, "expires_at": secret.expires_at, "session": secret.session}
    parsed = ClientSecretCreateResponse.model_validate(payload)
    assert parsed.session.type == "realtime"


async def test_a_wrong_key_is_refused_and_never_shown(nursery: trio.Nursery) -> None:
    server, _ = await sim(nursery)
    wrong = "sk-proj-WRONG-KEY"
    async with CallsClient(OpenAIConfig(api_key=wrong, base_url=server.url)) as calls:
        with pytest.raises(CallsRequestError) as caught:
            await calls.hangup("rtc_1")
    assert caught.value.status == 401
    assert wrong not in str(caught.value) + repr(caught.value)


# A server whose answers the test scripts, to see retries and translation.


class Scripted:
    def __init__(self, port: int, answers: list[Reply]) -> None:
        self.port = port
        self.answers = answers
        self.requests: list[PlainRequest] = []

    async def answer(self, request: PlainRequest) -> Reply:
        self.requests.append(request)
        await trio.lowlevel.checkpoint()
        reply = self.answers.pop(0) if self.answers else Reply(200)
        if reply.status == STALL:
            await trio.sleep_forever()
        return reply

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            connection = h11.Connection(h11.SERVER)
            first = await read_front_door(stream, connection)
            if isinstance(first, PlainRequest):
                await serve_plain(stream, connection, first, self.answer, idle_timeout=5)


async def serve_scripted(answers: list[Reply], *, task_status: trio.TaskStatus[Scripted]) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server = Scripted(listeners[0].socket.getsockname()[1], answers)
    task_status.started(server)
    await trio.serve_listeners(server.handle, listeners)


def client_for(server: Scripted, **options: object) -> CallsClient:
    config = OpenAIConfig(api_key=KEY, base_url=f"http://127.0.0.1:{server.port}/v1")
    return CallsClient(config, backoff=NO_WAIT, **options)  # type: ignore[arg-type]


async def test_429_and_5xx_are_retried_then_succeed(nursery: trio.Nursery) -> None:
    answers = [Reply.error(429, "slow down", "rate_limit_exceeded"), Reply.error(503, "busy", None)]
    server: Scripted = await nursery.start(serve_scripted, answers)
    async with client_for(server) as calls:
        await calls.hangup("rtc_1")
    assert len(server.requests) == 3
    request = server.requests[0]
    assert (request.method, request.target) == ("POST", "/v1/realtime/calls/rtc_1/hangup")
    assert request.header(b"authorization") == f"Bearer {KEY}"


async def test_past_the_retries_the_upstream_is_blamed_and_the_key_scrubbed(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    echo = Reply.error(500, f"upstream choked on Bearer {KEY}", "server_error")
    server: Scripted = await nursery.start(serve_scripted, [echo] * 3)
    caplog.set_level(logging.DEBUG, logger="rtbus.calls")
    async with client_for(server, max_retries=2) as calls:
        with pytest.raises(CallsUpstreamError) as caught:
            await calls.accept("rtc_1", SESSION)
    assert len(server.requests) == 3
    assert caught.value.status == 500
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text


async def test_a_4xx_is_not_retried(nursery: trio.Nursery) -> None:
    server: Scripted = await nursery.start(serve_scripted, [Reply.error(400, "bad", "x")])
    async with client_for(server) as calls:
        with pytest.raises(CallsRequestError):
            await calls.reject("rtc_1")
    assert len(server.requests) == 1
    assert orjson.loads(server.requests[0].body) == {"status_code": 603}


async def test_retry_after_is_honoured_within_the_backoff(nursery: trio.Nursery) -> None:
    slow = Reply.error(429, "wait", None)
    slow = Reply(slow.status, slow.body, (*slow.headers, ("retry-after", "0.05")))
    server: Scripted = await nursery.start(serve_scripted, [slow])
    async with client_for(server) as calls:
        started = trio.current_time()
        await calls.hangup("rtc_1")
    assert trio.current_time() - started >= 0.05


async def test_no_answer_is_a_transport_error_after_the_retries() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nothing listens there now
    config = OpenAIConfig(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1")
    async with CallsClient(config, backoff=NO_WAIT, max_retries=1) as calls:
        with pytest.raises(CallsTransportError) as caught:
            await calls.hangup("rtc_1")
    assert caught.value.__cause__ is not None
    assert "POST /realtime/calls/{call_id}/hangup" in str(caught.value)


async def test_an_answer_that_never_comes_times_out_and_is_retried(
    nursery: trio.Nursery,
) -> None:
    server: Scripted = await nursery.start(serve_scripted, [Reply(STALL)])
    async with client_for(server, timeout=0.2) as calls:
        await calls.hangup("rtc_1")
    assert len(server.requests) == 2


async def test_create_without_a_location_blames_the_upstream(nursery: trio.Nursery) -> None:
    server: Scripted = await nursery.start(serve_scripted, [Reply(201, b"v=0\r\n")])
    async with client_for(server, max_retries=0) as calls:
        with pytest.raises(CallsUpstreamError, match="Location"):
            await calls.create("v=0\r\n")


async def test_a_missing_call_id_never_leaves() -> None:
    async with CallsClient(OpenAIConfig(api_key=KEY)) as calls:
        with pytest.raises(ProtocolError):
            await calls.hangup("")
        await calls.aclose()  # idempotent


# The route table, sans-IO.


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (OpenAIConfig(api_key=KEY), "https://api.openai.com/v1"),
        (OpenAIConfig(api_key=KEY, base_url="ws://127.0.0.1:9/v1/"), "http://127.0.0.1:9/v1"),
        (AzureConfig(endpoint="https://r.openai.azure.com/openai", api_key=KEY),
         "https://r.openai.azure.com/openai/v1"),
    ],
)  # fmt: skip
def test_rest_base_url(config: OpenAIConfig | AzureConfig, expected: str) -> None:
    assert rest_base_url(config) == expected


def test_routes_match_and_call_ids_stay_one_segment() -> None:
    assert match_route("POST", "/realtime/calls/rtc%2F..%2Fx/accept") == (
        CallOperation.ACCEPT,
        "rtc/../x",
    )
    assert match_route("POST", "/realtime/calls") == (CallOperation.CREATE, None)
    assert match_route("GET", "/realtime/calls") is None
    assert call_id_from_location("/v1/realtime/calls/rtc_abc") == "rtc_abc"
    with pytest.raises(ProtocolError):
        call_id_from_location("/v1/somewhere/else")


def test_the_book_judges_accepts_by_the_ring_time() -> None:
    import random

    book = CallBook(rng=random.Random(1), settings=SessionSettings(), ring_seconds=10)
    call = book.ring((), now=100.0)
    accept = Request(orjson.dumps(SESSION), "application/json", now=111.0)
    reply = book.handle(CallOperation.ACCEPT, call.call_id, accept)
    assert reply.status == 404
    assert call.state is CallState.MISSED


def _shape(request: PlainRequest) -> tuple[str, str, str, object]:
    """What a calls request says: method, target, media type and body (parsed)."""
    if not request.body:  # hangup: no body (the SDK names a JSON type anyway)
        return request.method, request.target, "", None
    content_type = request.header(b"content-type")
    media = content_type.split(";")[0]
    parsed = Request(request.body, content_type, now=0.0)
    body: object = {
        "application/json": lambda: orjson.loads(request.body),
        "multipart/form-data": parsed.form,
        "application/sdp": parsed.form,
    }[media]()
    return request.method, request.target, media, body


async def test_requests_are_the_ones_the_official_sdk_sends(nursery: trio.Nursery) -> None:
    import openai

    created = Reply(201, b"v=0\r\n", (("location", "/v1/realtime/calls/rtc_9"),))
    secret = Reply.json(200, {"value": "ek_1", "expires_at": 1, "session": {"type": "realtime"}})
    answers = [Reply(200)] * 4 + [created, created, secret]
    ours: Scripted = await nursery.start(serve_scripted, list(answers))
    theirs: Scripted = await nursery.start(serve_scripted, list(answers))
    offer, session = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", {"type": "realtime", "model": "m"}

    async with client_for(ours) as calls:
        await calls.accept("rtc_1", session)
        await calls.reject("rtc_1", 486)
        await calls.refer("rtc_1", "tel:+1555")
        await calls.hangup("rtc_1")
        await calls.create(offer, session)
        await calls.create(offer)
        await calls.client_secret(session)

    sdk = openai.OpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{theirs.port}/v1", max_retries=0)

    def drive() -> None:
        sdk.realtime.calls.accept("rtc_1", type="realtime", model="m")
        sdk.realtime.calls.reject("rtc_1", status_code=486)
        sdk.realtime.calls.refer("rtc_1", target_uri="tel:+1555")
        sdk.realtime.calls.hangup("rtc_1")
        sdk.realtime.calls.create(sdp=offer, session={"type": "realtime", "model": "m"})
        sdk.realtime.calls.create(sdp=offer)
        sdk.realtime.client_secrets.create(session={"type": "realtime", "model": "m"})

    await trio.to_thread.run_sync(drive)
    assert [_shape(r) for r in ours.requests] == [_shape(r) for r in theirs.requests]
    for request in theirs.requests:
        assert request.header(b"authorization") == f"Bearer {KEY}"
