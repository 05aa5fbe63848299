"""The abstract emitter: binding, once/off, sync and async handlers, and the one error path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from rtbus import RealtimeError, protocol
from rtbus.emitter import RealtimeEmitter


class Emitter(RealtimeEmitter):
    """The smallest concrete emitter: what it is fed is what it dispatches."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[object] = []
        self.closed = False

    async def send(self, event: protocol.ClientEvent | Mapping[str, Any]) -> None:
        self.sent.append(event)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    async def feed(self, frame: bytes) -> None:
        await self._dispatch(protocol.decode_server_event(frame))


DELTA = b'{"type":"response.output_text.delta","event_id":"e1","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"hi"}'  # noqa: E501
ERROR = b'{"type":"error","event_id":"e2","error":{"type":"invalid_request_error","code":"invalid_value","message":"Bad voice","param":"session.audio.output.voice","event_id":"c7"}}'  # noqa: E501


async def test_event_and_type_handlers_in_order() -> None:
    rt, seen = Emitter(), []
    rt.on("event", lambda ev: seen.append(("event", ev.type)))
    rt.on("response.output_text.delta", lambda ev: seen.append(("typed", ev.delta)))
    await rt.feed(DELTA)
    assert seen == [("event", "response.output_text.delta"), ("typed", "hi")]


async def test_async_handlers_are_awaited() -> None:
    rt, seen = Emitter(), []

    async def handler(event: protocol.ServerEvent) -> None:
        seen.append(event.type)

    rt.on("response.output_text.delta", handler)
    await rt.feed(DELTA)
    assert seen == ["response.output_text.delta"]


async def test_once_and_off() -> None:
    rt, seen = Emitter(), []

    def a(event: object) -> None:
        seen.append("a")

    def b(event: object) -> None:
        seen.append("b")

    rt.once("event", a)
    rt.on("event", b)
    assert rt.listener_count("event") == 2
    await rt.feed(DELTA)
    await rt.feed(DELTA)
    assert seen == ["a", "b", "b"]
    rt.off("event", b)
    await rt.feed(DELTA)
    assert seen == ["a", "b", "b"]
    rt.on("event", a)
    rt.on("event", b)
    rt.off("event")
    assert rt.listener_count("event") == 0


async def test_binding_during_dispatch_takes_effect_next_time() -> None:
    rt, seen = Emitter(), []

    def late(event: object) -> None:
        seen.append("late")

    rt.on("event", lambda ev: rt.on("event", late))
    await rt.feed(DELTA)
    assert seen == []
    await rt.feed(DELTA)
    assert seen == ["late"]


def test_unknown_names_are_refused() -> None:
    rt = Emitter()
    with pytest.raises(ValueError, match=r"respnse\.done.*bind 'event'"):
        rt.on("respnse.done", print)
    with pytest.raises(TypeError, match="callable"):
        rt.on("event", "not a function")  # type: ignore[call-overload]


async def test_server_error_without_handler_is_raised_with_hint() -> None:
    rt, seen = Emitter(), []
    rt.on("event", lambda ev: seen.append(ev.type))
    with pytest.raises(RealtimeError) as info:
        await rt.feed(ERROR)
    err = info.value
    assert seen == ["error"], (
        "an error event reaches 'event' handlers first, as in openai-node's realtime base module"
    )
    assert err.event_id == "e2"
    assert err.error is not None
    assert err.error.code == "invalid_value"
    message = str(err)
    assert message.startswith(
        "Bad voice code=invalid_value param=session.audio.output.voice "
        "type=invalid_request_error event_id=c7"
    )
    assert "rt.on('error'" in message


async def test_server_error_with_handler_is_handed_over() -> None:
    rt = Emitter()
    errors: list[RealtimeError] = []
    rt.on("error", errors.append)
    await rt.feed(ERROR)
    await rt.feed(DELTA)
    assert len(errors) == 1
    assert isinstance(errors[0], RealtimeError)
    assert "rt.on('error'" not in str(errors[0])


async def test_raising_handler_goes_through_error_path() -> None:
    rt = Emitter()
    errors: list[RealtimeError] = []

    def broken(event: object) -> None:
        raise KeyError("boom")

    rt.on("response.output_text.delta", broken)
    with pytest.raises(RealtimeError, match=r"broken.*raised KeyError") as info:
        await rt.feed(DELTA)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.error is None

    rt.on("error", errors.append)
    await rt.feed(DELTA)
    assert isinstance(errors[0].__cause__, KeyError)


async def test_error_handler_that_raises_escapes() -> None:
    rt = Emitter()

    def bad_handler(err: RealtimeError) -> None:
        raise RuntimeError("in the error handler")

    rt.on("error", bad_handler)
    with pytest.raises(RuntimeError, match="in the error handler"):
        await rt.feed(ERROR)


async def test_on_error_without_event() -> None:
    rt = Emitter()
    cause = OSError("reset")
    with pytest.raises(RealtimeError, match="transport failed") as info:
        await rt._on_error(None, "transport failed", cause)
    assert info.value.__cause__ is cause
    assert info.value.error is None
    assert info.value.event_id is None
