"""The simulated phone network end to end: webhooks, the calls API, the call's WebSocket."""

from __future__ import annotations

import functools
import time

import h11
import openai
import orjson
import pytest
import trio
import trio.testing
import trio_websocket
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent
from sim_support import Event, conforms_frame, connect
from support.webhook_receiver import WebhookReceiver, serve_webhook_receiver

from rtbus.calls import CallsClient
from rtbus.protocol import OpenAIConfig, RealtimeTarget, WebhookVerifier, build_realtime_url
from rtbus.sim import Dial, SimServer, serve_sim
from rtbus.sim._http import MAX_HEAD, read_front_door

SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "You answer the phone."}


async def start(
    nursery: trio.Nursery, **options: object
) -> tuple[SimServer, WebhookReceiver, CallsClient]:
    server: SimServer = await nursery.start(
        functools.partial(serve_sim, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
    )
    receiver: WebhookReceiver = await nursery.start(
        serve_webhook_receiver, WebhookVerifier(server.webhook_secret)
    )
    calls = CallsClient(OpenAIConfig(api_key="sk-test", base_url=server.url))
    return server, receiver, calls


def call_path(server: SimServer, call_id: str) -> str:
    url = build_realtime_url(
        OpenAIConfig(api_key="k", base_url=server.url), RealtimeTarget.call(call_id)
    )
    return url.split(str(server.port), 1)[1]


async def test_a_call_rings_as_a_signed_webhook_the_sdk_accepts(nursery: trio.Nursery) -> None:
    server, receiver, _ = await start(nursery)
    delivery = await server.place_call(Dial(from_number="+15551234"), webhook_url=receiver.url)
    assert delivery.statuses == (200,)
    request = receiver.raw[0]
    client = openai.OpenAI(api_key="sk-test", webhook_secret=server.webhook_secret.reveal())
    headers = {n.decode(): v.decode() for n, v in request.headers}
    event = client.webhooks.unwrap(request.body, headers)
    assert isinstance(event, RealtimeCallIncomingWebhookEvent)
    RealtimeCallIncomingWebhookEvent.model_validate(orjson.loads(request.body), strict=True)
    assert event.data.call_id == delivery.call_id
    names = [h.name for h in event.data.sip_headers]
    assert names[:2] == ["From", "To"]
    assert "+15551234" in (receiver.acted[0].sip_header("From") or "")


async def test_duplicates_and_redeliveries_are_acknowledged_and_acted_on_once(
    nursery: trio.Nursery,
) -> None:
    server, receiver, _ = await start(nursery, speed=None)
    delivery = await server.place_call(Dial(duplicates=2, redeliveries=1), webhook_url=receiver.url)
    assert delivery.statuses == (200, 200, 200, 200)
    assert {webhook_id for webhook_id, _ in receiver.deliveries} == {delivery.webhook_id}
    assert len(receiver.acted) == 1
    assert receiver.log.statistics().duplicates == 3


async def test_a_failed_delivery_is_redelivered_with_the_same_id(nursery: trio.Nursery) -> None:
    server, receiver, _ = await start(nursery, speed=None)
    receiver.fail_next = 2
    delivery = await server.place_call(webhook_url=receiver.url)
    assert delivery.statuses == (500, 500, 200)
    assert delivery.acknowledged
    assert len(receiver.acted) == 1


async def test_a_forged_signature_is_refused_and_not_retried(nursery: trio.Nursery) -> None:
    server, receiver, _ = await start(nursery, speed=None)
    delivery = await server.place_call(Dial(bad_signature=True), webhook_url=receiver.url)
    assert delivery.statuses == (400,)
    assert not receiver.acted


async def test_accept_then_the_caller_speaks_and_hangs_up(nursery: trio.Nursery) -> None:
    server, receiver, calls = await start(
        nursery, speed=None, caller_turns=2, response_audio_seconds=0.2
    )
    async with calls:
        await server.place_call(webhook_url=receiver.url)
        incoming = await receiver.incoming.receive()
        await calls.accept(incoming.call_id, SESSION)
    async with connect(server.port, call_path(server, incoming.call_id)) as ws:
        events, reason = await read_until_closed(ws)
    session = events[0]["session"]
    assert isinstance(session, dict)
    assert session["instructions"] == "You answer the phone."
    assert (reason.code, reason.reason) == (1000, "call ended")
    types = [event["type"] for event in events]
    assert types.count("input_audio_buffer.speech_started") == 2
    assert types.count("response.done") >= 1
    assert server.calls[incoming.call_id].ended_by == "caller hung up"


async def read_until_closed(
    ws: trio_websocket.WebSocketConnection,
) -> tuple[list[Event], trio_websocket.CloseReason]:
    """Every event until the server closes, each checked against the SDK; and the close."""
    events = []
    while True:
        try:
            events.append(conforms_frame(await ws.get_message()))
        except trio_websocket.ConnectionClosed as closed:
            reason = closed.reason
            break
    assert reason is not None
    return events, reason


async def test_hangup_closes_the_control_connection(nursery: trio.Nursery) -> None:
    server, receiver, calls = await start(nursery, caller_pause_seconds=3600)
    async with calls:
        await server.place_call(webhook_url=receiver.url)
        incoming = await receiver.incoming.receive()
        await calls.accept(incoming.call_id, SESSION)
        async with connect(server.port, call_path(server, incoming.call_id)) as ws:
            conforms_frame(await ws.get_message())  # session.created
            await calls.hangup(incoming.call_id)
            events, reason = await read_until_closed(ws)
    assert reason.code == 1000
    assert not events


async def raw_exchange(server: SimServer, request: bytes) -> bytes:
    """Send ``request`` and read the whole answer (the server closes after a refusal)."""
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(request)
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    return answer


@pytest.mark.parametrize(("state", "status"), [("unknown", b"404"), ("ringing", b"400")])
async def test_a_call_id_socket_needs_an_accepted_call(
    nursery: trio.Nursery, state: str, status: bytes
) -> None:
    server, _, _ = await start(nursery)
    call_id = "rtc_nope" if state == "unknown" else server.calls.ring((), time.time()).call_id
    upgrade = (
        f"GET {call_path(server, call_id)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = await raw_exchange(server, upgrade.encode())
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert server.statistics().handshakes_rejected == 1


async def test_the_official_sdk_drives_the_simulated_calls_api(nursery: trio.Nursery) -> None:
    server, receiver, _ = await start(nursery)
    client = openai.OpenAI(api_key="sk-test", base_url=server.url, max_retries=0)
    await server.place_call(webhook_url=receiver.url)
    incoming = await receiver.incoming.receive()

    def drive() -> object:
        client.realtime.calls.accept(incoming.call_id, type="realtime", model="gpt-realtime")
        client.realtime.calls.refer(incoming.call_id, target_uri="tel:+15550000")
        answer = client.realtime.calls.create(sdp="v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n")
        assert answer.content.startswith(b"v=0")
        return client.realtime.client_secrets.create(session={"type": "realtime"})

    secret = await trio.to_thread.run_sync(drive)
    assert getattr(secret, "value", "").startswith("ek_")
    transcribing = await trio.to_thread.run_sync(
        lambda: client.realtime.client_secrets.create(session={"type": "transcription"})
    )
    assert transcribing.session.type == "transcription"
    assert server.calls[incoming.call_id].referred_to == "tel:+15550000"
    with pytest.raises(openai.NotFoundError):
        await trio.to_thread.run_sync(lambda: client.realtime.calls.hangup(incoming.call_id))


async def test_plain_requests_the_api_does_not_have_get_404(nursery: trio.Nursery) -> None:
    server, _, _ = await start(nursery)
    request = b"GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    reply = await raw_exchange(server, request)
    assert reply.startswith(b"HTTP/1.1 404")
    assert b'"code":"not_found"' in reply


async def test_calls_arrive_at_a_rate_on_their_own(nursery: trio.Nursery) -> None:
    receiver: WebhookReceiver = await nursery.start(
        serve_webhook_receiver,
        WebhookVerifier.from_env({"OPENAI_WEBHOOK_SECRET": "whsec_c2VjcmV0"}),
    )
    await nursery.start(
        functools.partial(
            serve_sim, "127.0.0.1", 0, webhook_url=receiver.url,
            webhook_secret="whsec_c2VjcmV0", call_rate=1000.0, speed=None,
        )
    )  # fmt: skip
    first = await receiver.incoming.receive()
    second = await receiver.incoming.receive()
    assert first.call_id != second.call_id


async def test_a_g711_caller_is_heard_without_the_simulated_vad(nursery: trio.Nursery) -> None:
    server, receiver, calls = await start(
        nursery, speed=None, caller_turns=1, response_audio_seconds=0.2
    )
    audio = {
        "input": {"format": {"type": "audio/pcmu"}},
        "output": {"format": {"type": "audio/pcmu"}},
    }
    async with calls:
        await server.place_call(webhook_url=receiver.url)
        incoming = await receiver.incoming.receive()
        await calls.accept(incoming.call_id, {**SESSION, "audio": audio})
    async with connect(server.port, call_path(server, incoming.call_id)) as ws:
        events, reason = await read_until_closed(ws)
    types = [event["type"] for event in events]
    assert "input_audio_buffer.committed" in types
    assert "response.done" in types
    assert reason.code == 1000


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"POST /v1/realtime/calls HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999\r\n\r\n",
         b"413"),
    ],
)  # fmt: skip
async def test_the_front_door_refuses_bad_requests(
    nursery: trio.Nursery, request_bytes: bytes, status: bytes
) -> None:
    server, _, _ = await start(nursery)
    answer = await raw_exchange(server, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]


async def test_keep_alive_answers_requests_in_turn(nursery: trio.Nursery) -> None:
    server, _, _ = await start(nursery)
    one = b"POST /v1/realtime/calls/rtc_x/hangup HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
    last = one.replace(b"host: x", b"host: x\r\nconnection: close")
    answer = await raw_exchange(server, one + one + last)
    assert answer.count(b"HTTP/1.1 404") == 3


async def test_a_head_past_the_limit_gets_431() -> None:
    client, server = trio.testing.memory_stream_pair()
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    head = b"GET /v1/x HTTP/1.1\r\nhost: x\r\nx-pad: " + b"p" * (2 * MAX_HEAD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, head)
        door = await read_front_door(server, connection)  # type: ignore[arg-type]
    assert door is None
    answer = await client.receive_some()
    assert answer.startswith(b"HTTP/1.1 431")


def test_the_command_line_places_calls_signed_with_the_environment_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rtbus.protocol import ConfigError
    from rtbus.sim.__main__ import _options, _parser

    argv = ["--webhook-url", "http://127.0.0.1:9/hooks", "--call-rate", "2"]
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", "whsec_c2VjcmV0")
    options = _options(_parser().parse_args(argv))
    assert (options.webhook_url, options.call_rate) == ("http://127.0.0.1:9/hooks", 2.0)
    assert options.webhook_secret == "whsec_c2VjcmV0"
    assert "c2VjcmV0" not in repr(options)
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET")
    with pytest.raises(ConfigError, match="OPENAI_WEBHOOK_SECRET"):
        _options(_parser().parse_args(argv))
