"""Opening a connection: what reaches the server, and how each way of failing to connect reads."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from transport_upstream import (
    API_KEY,
    delta,
    hold_open,
    play,
    start_upstream,
)

from rtbus.protocol import ConfigError, RealtimeError
from rtbus.protocol._config import AzureConfig, OpenAIConfig
from rtbus.transport import (
    ConnectError,
    ConnectionRejectedError,
    ConnectOptions,
    ConnectTarget,
    ConnectTimeoutError,
    RealtimeWebSocket,
    Received,
    open_realtime,
    open_target,
)
from rtbus.transport._target import Endpoint


async def test_url_and_headers_reach_the_server(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, hold_open)
    config = OpenAIConfig(api_key=API_KEY, base_url=upstream.url, organization="org_1")
    extra = [("X-Trace", "t-1")]
    async with open_realtime(
        config, "gpt-realtime", extra_headers=extra, extra_query={"foo": "a b"}
    ):
        pass
    (handshake,) = upstream.handshakes
    assert handshake.target == "/v1/realtime?model=gpt-realtime&foo=a+b"
    assert handshake.headers["authorization"] == f"Bearer {API_KEY}"
    assert handshake.headers["openai-organization"] == "org_1"
    assert handshake.headers["x-trace"] == "t-1"


async def test_azure_sends_api_key_and_deployment(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, hold_open)
    config = AzureConfig(
        endpoint=f"http://127.0.0.1:{upstream.port}", api_key="az-key", api_version="2025-04-01"
    )
    async with open_realtime(config, "my-deployment"):
        pass
    (handshake,) = upstream.handshakes
    assert handshake.target == "/openai/realtime?api-version=2025-04-01&deployment=my-deployment"
    assert handshake.headers["api-key"] == "az-key"
    assert "authorization" not in handshake.headers


async def test_the_body_exception_comes_out_unwrapped(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, hold_open)
    with pytest.raises(KeyError, match="mine"):
        async with open_realtime(upstream.config()):
            raise KeyError("mine")


async def test_a_rejection_keeps_status_and_scrubbed_body(nursery: trio.Nursery) -> None:
    body = b'{"error": {"message": "Incorrect API key provided: ' + API_KEY.encode() + b'"}}'
    upstream = await start_upstream(nursery, hold_open, reject=(401, body))
    with pytest.raises(ConnectionRejectedError) as caught:
        async with open_realtime(upstream.config()):
            pytest.fail("connected despite the rejection")
    error = caught.value
    assert error.status == 401
    assert "Incorrect API key provided: ***" in error.body
    assert API_KEY not in str(error)
    assert isinstance(error, RealtimeError)
    assert type(error.__cause__).__name__ == "InvalidStatus"  # websockets' own, kept as the cause


async def test_a_refused_connection_is_a_connect_error() -> None:
    # Bind a port and close it again: nothing listens there any more.
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    config = OpenAIConfig(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ConnectError, match=f"could not connect to ws://127.0.0.1:{port}/v1"):
        async with open_realtime(config):
            pytest.fail("connected to a closed port")


async def _never_answer(stream: trio.SocketStream) -> None:
    await trio.sleep_forever()


async def test_a_silent_server_times_the_connect_out(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, _never_answer, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    config = OpenAIConfig(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    start = trio.current_time()
    with pytest.raises(ConnectTimeoutError, match="timed out after 3s") as caught:
        async with open_realtime(config, options=ConnectOptions(connect_timeout=3)):
            pytest.fail("connected to a silent server")
    assert trio.current_time() - start == pytest.approx(3)
    assert caught.value.timeout == 3


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"close_timeout": float("inf")}, "close_timeout"),
        ({"pong_timeout": "5"}, "pong_timeout"),
        ({"keepalive_interval": -1.0}, "keepalive_interval"),
        ({"max_message_size": 0}, "max_message_size"),
        ({"message_queue_size": -1}, "message_queue_size"),
        ({"receive_buffer_size": True}, "receive_buffer_size"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectOptions(**options)  # type: ignore[arg-type]
    assert caught.value.key == key


def test_defaults_fit_the_real_api() -> None:
    options = ConnectOptions()
    assert options.max_message_size == 16 * 1024 * 1024
    assert options.receive_buffer_size == 64 * 1024
    assert (options.connect_timeout, options.close_timeout) == (10, 5)
    assert (options.keepalive_interval, options.pong_timeout) == (20, 20)


def test_a_header_with_a_newline_fails_without_showing_it() -> None:
    config = OpenAIConfig(api_key="sk-secret\n", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError) as caught:
        open_realtime(config)
    assert "sk-secret" not in str(caught.value)
    assert "Authorization" in str(caught.value)


def test_a_target_never_shows_its_secrets() -> None:
    config = AzureConfig(endpoint="https://x.openai.azure.com", ad_token="aad-token-value")
    target = ConnectTarget.from_config(config, "dep", extra_query={"q": "1"})
    assert "aad-token-value" not in repr(target)
    assert "Authorization" in repr(target)
    assert target.secrets == {"Bearer aad-token-value", "aad-token-value"}
    assert target.display_url == "wss://x.openai.azure.com/openai/v1/realtime"


def test_with_headers_replaces_by_name() -> None:
    target = ConnectTarget("wss://h/v1/realtime", [("Authorization", "Bearer old")])
    refreshed = target.with_headers([("authorization", "Bearer new")])
    assert refreshed.headers == (("authorization", "Bearer new"),)
    assert target.with_query({}) is target


def test_a_target_wants_a_websocket_url() -> None:
    with pytest.raises(ConfigError, match="url"):
        ConnectTarget("https://h/v1/realtime")


async def test_events_before_the_body_reads_are_kept(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(delta(1), close=None))
    async with open_realtime(upstream.config()) as rt:
        event = await rt.__anext__()
        assert event.type == "response.output_audio_transcript.delta"


async def test_a_failed_tls_handshake_is_a_connect_error_at_once(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, hold_open)  # Plain TCP: it cannot speak TLS.
    target = ConnectTarget(f"wss://127.0.0.1:{upstream.port}/v1/realtime", [("api-key", API_KEY)])
    with pytest.raises(ConnectError, match=r"TLS handshake with wss://127\.0\.0\.1") as caught:
        async with open_target(target):
            pytest.fail("a TLS handshake with a plain server succeeded")
    assert API_KEY not in str(caught.value)


def test_the_endpoint_comes_from_the_url() -> None:
    assert ConnectTarget("wss://h.example/v1/realtime?model=m").endpoint == Endpoint(
        "h.example", 443, True, "/v1/realtime?model=m"
    )
    endpoint = ConnectTarget("ws://[::1]:8080").endpoint
    assert (endpoint.resource, endpoint.host_header) == ("/", "[::1]:8080")


async def test_frames_in_the_same_segment_as_the_101_are_read_first(nursery: trio.Nursery) -> None:
    async def accept_and_stream(stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        while not any(isinstance(e, wsproto.events.Request) for e in ws.events()):
            ws.receive_data(await stream.receive_some())
        answer = ws.send(wsproto.events.AcceptConnection())
        frames = b"".join(ws.send(wsproto.events.TextMessage(delta(n))) for n in (1, 2))
        await stream.send_all(answer + frames + ws.send(wsproto.events.CloseConnection(1000)))
        await trio.sleep_forever()

    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, accept_and_stream, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    config = OpenAIConfig(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1")
    async with open_realtime(config) as rt:
        raws = [received.raw async for received in _received(rt)]
    assert raws == [delta(1).encode(), delta(2).encode()]


async def _received(rt: RealtimeWebSocket) -> AsyncIterator[Received]:
    while (received := await rt.receive()) is not None:
        yield received


async def test_no_log_line_carries_the_key_even_at_debug(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = await start_upstream(nursery, play(delta(1)))
    async with open_realtime(upstream.config()) as rt:
        await rt.send({"type": "input_audio_buffer.clear"})
        assert [event.type async for event in rt] == ["response.output_audio_transcript.delta"]
    assert API_KEY not in caplog.text
    assert "websockets" not in caplog.text
