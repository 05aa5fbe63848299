"""What a client can get wrong: each bad frame gets an error frame and changes nothing else;
a bad token or version closes the connection with a clear reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio_websocket
from support.gateway import FAST, TOKEN, GatewayApp, Raw, client, publish, raw_socket, serving
from support.tcp_proxy import TcpProxy, handshake_then_close

from rtbus.gateway import GatewayConnectionError, Limits, connect
from rtbus.service import Service
from rtbus.service._gateway import gateway_counts

LIMITS = Limits()
HELLO = {"op": "hello", "req": "ok", "versions": [1]}


async def assert_still_working(raw: Raw, service: Service) -> None:
    """The connection answers, and the bus has no subscription left: the service has none."""
    answer = await raw.ask(HELLO)
    assert answer["frame"] == "result", answer
    assert answer["result"]["version"] == 1
    assert service.bus.statistics().subscriptions == 0


def assert_error(frame: dict[str, Any], code: str, req: object = None) -> None:
    assert frame["frame"] == "error", frame
    assert frame["code"] == code, frame
    assert frame["message"], frame
    assert frame.get("req") == req, frame


@pytest.mark.parametrize(
    ("frame", "code", "req"),
    [
        pytest.param(b"{not json", "not_json", None, id="not-json"),
        pytest.param("[1, 2]", "malformed_frame", None, id="not-an-object"),
        pytest.param({"op": "teleport", "req": 1}, "unknown_op", 1, id="unknown-op"),
        pytest.param({"req": 2}, "missing_field", 2, id="no-op"),
        pytest.param({"op": "subscribe", "req": 3}, "missing_field", 3, id="missing-field"),
        pytest.param({"op": "list_sessions", "req": 4, "x": 1}, "unknown_field", 4, id="unknown"),
        pytest.param(
            {"op": "subscribe", "req": 5, "sub": "a", "overflow": "maybe"},
            "invalid_field",
            5,
            id="bad-policy",
        ),
        pytest.param(
            {"op": "send", "req": 6, "session": "nobody", "event": {"type": "response.create"}},
            "unknown_session",
            6,
            id="unknown-session",
        ),
        pytest.param({"op": "unsubscribe", "req": 7, "sub": "zz"}, "unknown_subscription", 7),
        pytest.param({"op": "hello", "req": 8, "versions": [2, 3]}, "unsupported_version", 8),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_connection_goes_on(
    gateway: GatewayApp, service: Service, frame: object, code: str, req: object
) -> None:
    async with raw_socket(gateway) as raw:
        assert_error(await raw.ask(frame), code, req)
        await assert_still_working(raw, service)


async def test_an_oversized_frame_is_refused_and_the_connection_goes_on(
    gateway: GatewayApp, service: Service
) -> None:
    async with raw_socket(gateway) as raw:
        padding = "x" * LIMITS.max_frame_bytes
        assert_error(
            await raw.ask({"op": "list_sessions", "req": 1, "pad": padding}), "frame_too_large"
        )
        await assert_still_working(raw, service)


async def test_a_bad_event_is_refused_and_the_session_goes_on(
    gateway: GatewayApp, service: Service
) -> None:
    await service.open_session(id="s1")
    async with raw_socket(gateway) as raw:
        bad = {
            "op": "send",
            "req": 1,
            "session": "s1",
            "event": {"type": "response.create", "response": 7},
        }
        assert_error(await raw.ask(bad), "invalid_event", 1)
        unknown = {"op": "send", "req": 2, "session": "s1", "event": {"type": "no.such"}}
        assert_error(await raw.ask(unknown), "invalid_event", 2)
        good = {
            "op": "send",
            "req": 3,
            "session": "s1",
            "event": {"type": "input_audio_buffer.clear"},
        }
        answer = await raw.ask(good)
    assert answer == {
        "frame": "result",
        "req": 3,
        "result": {
            "session": "s1",
            "type": "input_audio_buffer.clear",
            "event_id": "s1:2",
            "status": "sent",
        },
    }
    assert service.sessions["s1"].statistics().state.value == "ready"


async def test_an_event_the_upstream_would_refuse_gets_an_error_frame_naming_its_path(
    gateway: GatewayApp, service: Service
) -> None:
    # Checked as strictly as the upstream checks it: the typo never reaches the upstream.
    session = await service.open_session(id="s1")
    sent = session.statistics().send_queue.sent
    events = [
        ({"type": "response.create", "extra": 1}, "'extra'"),
        ({"type": "response.create", "response": {"extra": 1}}, "'response.extra'"),
        (
            {"type": "session.update", "session": {"type": "realtime", "audio": {"x": 1}}},
            "'session.audio.x'",
        ),
    ]
    async with raw_socket(gateway) as raw:
        for req, (event, path) in enumerate(events):
            error = await raw.ask({"op": "send", "req": req, "session": "s1", "event": event})
            assert_error(error, "invalid_event", req)
            assert path in error["message"], error
        await assert_still_working(raw, service)
    assert session.statistics().send_queue.sent == sent


async def test_too_many_subscriptions_are_refused_and_the_rest_go_on(
    gateway: GatewayApp, service: Service
) -> None:
    async with raw_socket(gateway) as raw:
        for i in range(LIMITS.max_subscriptions):
            answer = await raw.ask({"op": "subscribe", "req": i, "sub": f"s{i}", "types": "t"})
            assert answer["frame"] == "result", answer
        one_more = {"op": "subscribe", "req": "x", "sub": "extra", "types": "t"}
        assert_error(await raw.ask(one_more), "too_many_subscriptions", "x")
        assert service.bus.statistics().subscriptions == LIMITS.max_subscriptions
        duplicate = {"op": "subscribe", "req": "d", "sub": "s0"}
        assert_error(await raw.ask(duplicate), "duplicate_subscription", "d")
        answer = await raw.ask({"op": "unsubscribe", "req": "u", "sub": "s0"})
        assert answer["result"] == {"sub": "s0", "delivered": 0, "dropped": 0}
        assert (await raw.ask(one_more))["frame"] == "result"
        await publish(service, "s9", "t")
        event = await raw.frame()
    assert (event["frame"], event["type"], event["session_id"]) == ("event", "t", "s9")


async def test_a_credit_for_an_unknown_subscription_is_reported_with_its_sub(
    gateway: GatewayApp, service: Service
) -> None:
    async with raw_socket(gateway) as raw:
        frame = await raw.ask({"op": "credit", "sub": "ghost", "n": 5})
        assert_error(frame, "unknown_subscription")
        assert frame["sub"] == "ghost"
        await assert_still_working(raw, service)


async def test_text_and_binary_frames_are_both_read(gateway: GatewayApp, service: Service) -> None:
    async with raw_socket(gateway) as raw:
        assert (await raw.ask(orjson.dumps(HELLO).decode()))["frame"] == "result"
        assert (await raw.ask(orjson.dumps(HELLO)))["frame"] == "result"


async def closed_with(app: GatewayApp, **options: Any) -> trio_websocket.CloseReason:
    async with raw_socket(app, **options) as raw:
        with pytest.raises(trio_websocket.ConnectionClosed) as caught:
            await raw.ask(HELLO)
    assert caught.value.reason is not None
    return caught.value.reason


@pytest.mark.parametrize(
    ("token", "says"),
    [(None, "missing Authorization header"), ("wrong-token", "not valid")],
)
async def test_a_bad_token_closes_with_1008_and_says_why(
    gateway: GatewayApp, service: Service, token: str | None, says: str
) -> None:
    reason = await closed_with(gateway, token=token)
    assert reason.code == 1008
    assert says in (reason.reason or "")
    await gateway.wait_connections(0)  # the refusal's close handshake done, the stream closed
    assert gateway_counts(service).connections == 0  # never served


async def test_the_client_raises_a_refused_token_at_connect_and_never_shows_it(
    gateway: GatewayApp,
) -> None:
    secret = "sk-wrong-" + "9" * 20
    with pytest.raises(GatewayConnectionError) as caught:
        async with client(gateway, token=secret):
            raise AssertionError("connected with a wrong token")
    assert (caught.value.close_code, caught.value.fatal) == (1008, True)
    assert "not valid" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)


async def test_a_refused_token_is_reported_when_the_close_comes_with_the_handshake(
    gateway: GatewayApp, nursery: trio.Nursery
) -> None:
    # The client reads the handshake's answer and the 1008 close in one receive, so the
    # connection is closed before it can say hello: it must still report why.
    proxy = TcpProxy(gateway.port, coalesce=handshake_then_close)
    await nursery.start(proxy.run)
    with pytest.raises(GatewayConnectionError) as caught:
        async with connect(proxy.url, token="sk-wrong-" + "7" * 20, backoff=FAST):
            raise AssertionError("connected with a wrong token")
    assert (caught.value.close_code, caught.value.fatal) == (1008, True)
    assert "1008" in str(caught.value)
    assert "not valid" in str(caught.value)


async def test_an_unknown_protocol_version_closes_with_1002(gateway: GatewayApp) -> None:
    reason = await closed_with(gateway, subprotocols=["rtbus.gateway.v9"])
    assert reason.code == 1002
    assert "rtbus.gateway.v1" in (reason.reason or "")


async def test_no_token_is_asked_for_when_none_is_configured(service: Service) -> None:
    async with serving(service, token=None) as app, raw_socket(app, token=None) as raw:
        assert (await raw.ask(HELLO))["frame"] == "result"


def test_the_client_refuses_a_token_in_the_url() -> None:
    from rtbus.gateway._link import gateway_url

    for url in ("ws://user:pw@host/v1/bus", "ws://host/v1/bus?token=abc", "ftp://host"):
        with pytest.raises(ValueError, match="must") as caught:
            gateway_url(url)
        assert "pw" not in str(caught.value)
        assert "abc" not in str(caught.value)
    assert gateway_url("http://h:1") == "ws://h:1/v1/bus"
    assert gateway_url("https://h/v1/bus") == "wss://h/v1/bus"


async def test_a_token_with_a_line_break_is_refused_before_connecting() -> None:
    from rtbus.gateway import connect

    with pytest.raises(ValueError, match="printable") as caught:
        async with connect("ws://127.0.0.1:1/v1/bus", token=TOKEN + "\r\nX-Evil: 1"):
            pass
    assert TOKEN not in str(caught.value)


async def test_an_unreachable_gateway_raises_at_connect() -> None:
    from support.binaries import free_port

    from rtbus.gateway import connect

    with pytest.raises(GatewayConnectionError, match="could not connect") as caught:
        async with connect(f"ws://127.0.0.1:{free_port()}/v1/bus", token=TOKEN):
            pass
    assert not caught.value.fatal
    await trio.lowlevel.checkpoint()
