"""Reading: both driving styles, and the one error path for every kind of failure."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing
from transport_upstream import (
    Script,
    delta,
    error_event,
    frame,
    play,
    start_upstream,
    then_drop,
)

from rtbus.protocol import ConnectionClosedError, ProtocolError, RealtimeError, ServerEvent
from rtbus.transport import CloseStatus, ConnectOptions, RealtimeWebSocket, open_realtime

HINT = "no `error` handler is bound"

Drive = Callable[[RealtimeWebSocket], Awaitable[list[str]]]


async def by_dispatch(rt: RealtimeWebSocket) -> list[str]:
    seen: list[str] = []
    rt.on("event", lambda event: seen.append(event.type))
    await rt.dispatch_events()
    return seen


async def by_iteration(rt: RealtimeWebSocket) -> list[str]:
    return [event.type async for event in rt]


DRIVES = pytest.mark.parametrize("drive", [by_dispatch, by_iteration], ids=["dispatch", "iter"])

NOT_JSON = "{not json"
NO_TYPE = frame({"event_id": "ev_1"})
WRONG_FIELD = frame(
    {
        "type": "response.output_audio_transcript.delta",
        "event_id": "ev_1",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": "zero",
        "content_index": 0,
        "delta": "x",
    }
)


@attrs.frozen(kw_only=True)
class Failure:
    """One way a server can fail a reader, and what the error path says about it."""

    frames: tuple[str | bytes, ...] = ()
    close: int = 1000
    reason: str = ""
    drop: bool = False
    message: str
    cause: type[BaseException] | None = None

    def script(self, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> Script:
        frames = (*before, *self.frames, *after)
        if self.drop:
            return then_drop(*frames)
        return play(*frames, close=self.close, reason=self.reason)


FAILURES = {
    "error event": Failure(frames=(error_event("bad_voice", "Bad voice"),), message="Bad voice"),
    "not json": Failure(frames=(NOT_JSON,), message="could not decode", cause=ProtocolError),
    "no type": Failure(frames=(NO_TYPE,), message="could not decode", cause=ProtocolError),
    "wrong field": Failure(frames=(WRONG_FIELD,), message="output_index", cause=ProtocolError),
    "binary frame": Failure(frames=(b"\x00\x01",), message="binary frame (2 bytes)"),
    "close 1011": Failure(
        close=1011, reason="boom", message="code 1011 (boom)", cause=ConnectionClosedError
    ),
    "tcp drop": Failure(drop=True, message="code 1006", cause=ConnectionClosedError),
}
KINDS = pytest.mark.parametrize("kind", list(FAILURES))


@DRIVES
@KINDS
async def test_unhandled_errors_are_raised_with_the_hint(
    nursery: trio.Nursery, drive: Drive, kind: str
) -> None:
    failure = FAILURES[kind]
    upstream = await start_upstream(nursery, failure.script())
    async with open_realtime(upstream.config()) as rt:
        with pytest.raises(RealtimeError, match=re.escape(failure.message)) as caught:
            await drive(rt)
    assert HINT in str(caught.value)
    if failure.cause is not None:
        assert isinstance(caught.value.__cause__, failure.cause)


@DRIVES
@KINDS
async def test_handled_errors_go_to_the_handler_and_reading_goes_on(
    nursery: trio.Nursery, drive: Drive, kind: str
) -> None:
    failure = FAILURES[kind]
    upstream = await start_upstream(nursery, failure.script((delta(1),), (delta(2),)))
    errors: list[RealtimeError] = []
    async with open_realtime(upstream.config()) as rt:
        rt.on("error", errors.append)
        seen = await drive(rt)
    assert len(errors) == 1
    assert failure.message in str(errors[0])
    assert HINT not in str(errors[0])
    assert seen.count("response.output_audio_transcript.delta") == 2


async def test_a_handled_error_event_is_yielded_and_reaches_event_handlers(
    nursery: trio.Nursery,
) -> None:
    upstream = await start_upstream(nursery, play(error_event("invalid_value"), delta(1)))
    errors: list[RealtimeError] = []
    every: list[str] = []
    async with open_realtime(upstream.config()) as rt:
        rt.on("error", errors.append)
        rt.on("event", lambda event: every.append(event.type))
        yielded = [event async for event in rt]
    assert [e.type for e in yielded] == ["error", "response.output_audio_transcript.delta"]
    assert every == ["error", "response.output_audio_transcript.delta"]
    assert errors[0].event_id == "ev_err"
    assert errors[0].error is not None
    assert errors[0].error.code == "invalid_value"


async def test_a_normal_close_just_ends_reading(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(delta(1), close=1000))
    async with open_realtime(upstream.config()) as rt:
        await rt.dispatch_events()
        await rt.dispatch_events()  # Reading ended once; again is a no-op, not an error.
        assert rt.close_status == CloseStatus(1000)
        with pytest.raises(ConnectionClosedError):
            await rt.send({"type": "input_audio_buffer.clear"})


async def test_our_own_close_ends_reading_quietly(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(close=None))
    async with open_realtime(upstream.config()) as rt, trio.open_nursery() as inner:
        inner.start_soon(rt.dispatch_events)
        await trio.testing.wait_all_tasks_blocked()
        await rt.aclose(4000, "done")
    assert rt.close_status == CloseStatus(4000, "done")


async def test_handler_exceptions_take_the_error_path(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(delta(1), delta(2)))

    def explode(event: ServerEvent) -> None:
        raise ValueError(f"bad {event.type}")

    async with open_realtime(upstream.config()) as rt:
        rt.once("response.output_audio_transcript.delta", explode)
        with pytest.raises(RealtimeError, match=r"explode .* raised ValueError") as caught:
            await rt.dispatch_events()
        assert isinstance(caught.value.__cause__, ValueError)
        errors: list[RealtimeError] = []
        rt.on("error", errors.append)
        rt.once("response.output_audio_transcript.delta", explode)
        await rt.dispatch_events()
    assert len(errors) == 1
    assert isinstance(errors[0].__cause__, ValueError)


async def test_once_and_off_on_a_live_connection(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(delta(1), delta(2), delta(3)))
    once: list[str] = []
    always: list[str] = []

    def record(event: ServerEvent) -> None:
        always.append(event.type)
        if len(always) == 2:
            rt.off("event", record)

    async with open_realtime(upstream.config()) as rt:
        rt.once("response.output_audio_transcript.delta", lambda e: once.append(e.delta))
        rt.on("event", record)
        await rt.dispatch_events()
    assert once == ["word1 "]
    assert len(always) == 2


async def test_a_frame_over_the_size_limit_fails_with_1009(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, play(delta(1), close=None))
    options = ConnectOptions(max_message_size=100)
    async with open_realtime(upstream.config(), options=options) as rt:
        with pytest.raises(RealtimeError, match="code 1009") as caught:
            await rt.dispatch_events()
    cause = caught.value.__cause__
    assert isinstance(cause, ConnectionClosedError)
    assert cause.code == 1009


async def test_statistics_count_frames_and_bytes(nursery: trio.Nursery) -> None:
    frames = (delta(1), "{not json", delta(2))
    upstream = await start_upstream(nursery, play(*frames))
    async with open_realtime(upstream.config()) as rt:
        rt.on("error", lambda error: None)
        await rt.dispatch_events()
        stats = rt.statistics()
    assert stats.frames_received == 3
    assert stats.bytes_received == sum(len(f) for f in frames)
    assert stats.decode_errors == 1
    assert stats.close == CloseStatus(1000)


async def test_non_ascii_frames_count_bytes_not_characters(nursery: trio.Nursery) -> None:
    text = delta(1).replace("word1", "héllo")
    upstream = await start_upstream(nursery, play(text))
    async with open_realtime(upstream.config()) as rt:
        events = [event async for event in rt]
    assert events[0].delta == "héllo "  # type: ignore[union-attr]
    assert rt.statistics().bytes_received == len(text.encode())
