"""Sending: text frames, validation before anything goes out, order under concurrency, closed."""

from __future__ import annotations

import orjson
import pytest
import trio
from transport_upstream import play, recording, start_upstream

from rtbus.protocol import (
    ConnectionClosedError,
    InputAudioBufferClearEvent,
    ProtocolError,
    ResponseCreateEvent,
    ResponseCreateParams,
    encode,
)
from rtbus.transport import RealtimeWebSocket, open_realtime


async def test_events_go_out_as_text_frames(nursery: trio.Nursery) -> None:
    received: list[str | bytes] = []
    event = ResponseCreateEvent(event_id="c1")
    async with recording(nursery, received) as rt:
        await rt.send(event)
        await rt.send({"type": "input_audio_buffer.clear"})
    assert received == [encode(event).decode(), '{"type":"input_audio_buffer.clear"}']


async def test_a_dict_goes_out_as_its_own_json(nursery: trio.Nursery) -> None:
    # Checked, then sent as written: its key order, not the model's (which puts type first).
    event = {"response": {"metadata": None, "instructions": "hi"}, "type": "response.create"}
    received: list[str | bytes] = []
    async with recording(nursery, received) as rt:
        await rt.send(event)
    assert received == [orjson.dumps(event).decode()]


async def test_a_typed_event_holding_what_the_upstream_refuses_is_refused(
    nursery: trio.Nursery,
) -> None:
    # attrs checks nothing a typed event holds; the frame is checked before it is sent.
    event = ResponseCreateEvent(response=ResponseCreateParams(max_output_tokens=0))
    received: list[str | bytes] = []
    async with recording(nursery, received) as rt:
        with pytest.raises(ProtocolError, match=r"'response\.max_output_tokens'"):
            await rt.send(event)
    assert received == []


async def test_a_dict_with_a_field_the_upstream_does_not_know_is_refused(
    nursery: trio.Nursery,
) -> None:
    received: list[str | bytes] = []
    async with recording(nursery, received) as rt:
        with pytest.raises(ProtocolError, match=r"'response\.new_field'"):
            await rt.send({"type": "response.create", "response": {"new_field": [1]}})
    assert received == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"event_id": "c1"}, "type"),
        ({"type": "response.create", "response": {"max_output_tokens": "many"}}, "response"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "audio"),
        (InputAudioBufferClearEvent, "is not a client event"),
        ("input_audio_buffer.clear", "is not a client event"),
    ],
)
async def test_a_malformed_event_is_refused_and_nothing_is_sent(
    nursery: trio.Nursery, bad: object, message: str
) -> None:
    received: list[str | bytes] = []
    async with recording(nursery, received) as rt:
        with pytest.raises(ProtocolError, match=message):
            await rt.send(bad)  # type: ignore[arg-type]
        await rt.send({"type": "input_audio_buffer.clear"})
        assert rt.statistics().frames_sent == 1
    assert received == ['{"type":"input_audio_buffer.clear"}']


async def test_a_non_json_value_is_a_protocol_error(nursery: trio.Nursery) -> None:
    received: list[str | bytes] = []
    async with recording(nursery, received) as rt:
        with pytest.raises(ProtocolError):
            await rt.send({"type": "input_audio_buffer.clear", "event_id": {1, 2}})
    assert received == []


async def test_concurrent_senders_go_out_in_call_order(nursery: trio.Nursery) -> None:
    received: list[str | bytes] = []
    called: list[str] = []

    async def sender(rt: RealtimeWebSocket, n: int) -> None:
        called.append(f"c{n}")
        audio = "AAAA" * 2000
        await rt.send({"type": "input_audio_buffer.append", "audio": audio, "event_id": f"c{n}"})

    async with recording(nursery, received) as rt, trio.open_nursery() as senders:
        for n in range(50):
            senders.start_soon(sender, rt, n)
    assert [orjson.loads(frame)["event_id"] for frame in received] == called
    assert sorted(called) == sorted(f"c{n}" for n in range(50))


async def test_sending_after_a_close_raises_connection_closed(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(close=1001, reason="going away"))
    async with open_realtime(upstream.config()) as rt:
        rt.on("error", lambda error: None)
        await rt.dispatch_events()
        with pytest.raises(ConnectionClosedError) as caught:
            await rt.send({"type": "input_audio_buffer.clear"})
        assert (caught.value.code, caught.value.reason) == (1001, "going away")
    with pytest.raises(ConnectionClosedError):
        await rt.send({"type": "input_audio_buffer.clear"})


async def test_aclose_is_idempotent_and_checks_the_code(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(close=None))
    async with open_realtime(upstream.config()) as rt:
        with pytest.raises(ValueError, match="1006"):
            await rt.aclose(1006)
        await rt.aclose(1000)
        await rt.aclose(4001)
    assert rt.close_status is not None
    assert rt.close_status.code == 1000
