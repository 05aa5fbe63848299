"""Shared helpers for the simulator's tests: conformance checks and a scripted session."""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import AsyncIterator, Iterator

import orjson
import pydantic
import trio
import trio_websocket
from openai.types.realtime import RealtimeServerEvent
from openai.types.realtime.realtime_session_create_response import RealtimeSessionCreateResponse
from openai.types.realtime.realtime_transcription_session_create_response import (
    RealtimeTranscriptionSessionCreateResponse,
)

from rtbus.sim import SessionSettings, SimSession

SERVER_EVENT: pydantic.TypeAdapter[RealtimeServerEvent] = pydantic.TypeAdapter(RealtimeServerEvent)

#: Keys the real service sends in ``session`` that the SDK declares only on
#: ``RealtimeSessionCreateResponse`` (checked against that model, strictly, on their own).
SESSION_ONLY_KEYS = frozenset({"id", "object", "expires_at"})

Event = dict[str, object]


def _extras(value: object, path: str) -> Iterator[str]:
    """Dotted paths of every key the SDK models did not declare."""
    if isinstance(value, pydantic.BaseModel):
        for key in value.__pydantic_extra__ or {}:
            yield f"{path}.{key}"
        for name in type(value).model_fields:
            yield from _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, element in enumerate(value):
            yield from _extras(element, f"{path}[{index}]")


def conforms(event: Event) -> pydantic.BaseModel:
    """Validate ``event`` against the SDK's server event union, with no undeclared keys.

    Also checks that the model dumps back to exactly the event (no coercion happened).
    """
    model = SERVER_EVENT.validate_python(event)
    extras = set(_extras(model, ""))
    if event["type"] in ("session.created", "session.updated"):
        extras -= {f".session.{key}" for key in SESSION_ONLY_KEYS}
        session = event["session"]
        assert isinstance(session, dict)
        declared = {key: session[key] for key in (*SESSION_ONLY_KEYS, "type")}
        created = (
            RealtimeTranscriptionSessionCreateResponse
            if session["type"] == "transcription"
            else RealtimeSessionCreateResponse
        )
        created.model_validate(declared, strict=True)
    assert not extras, f"{event['type']} has undeclared keys {sorted(extras)}"
    dumped = model.model_dump(mode="json", exclude_unset=True)
    assert dumped == orjson.loads(orjson.dumps(event)), f"{event['type']} did not round-trip"
    return model


def conforms_frame(frame: str | bytes) -> Event:
    """Decode a frame the server sent and check it conforms."""
    event = orjson.loads(frame)
    assert isinstance(event, dict)
    conforms(event)
    return event


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Script:
    """Drives a ``SimSession`` synchronously and checks every event it emits."""

    def __init__(
        self, settings: SessionSettings | None = None, seed: int = 7, *, transcription: bool = False
    ) -> None:
        self.session = SimSession(
            model="gpt-realtime",
            transcription=transcription,
            settings=settings or SessionSettings(response_audio_seconds=0.3),
            rng=random.Random(seed),
            now=1_700_000_000.0,
        )
        self.sent: list[Event] = []
        self.created = self._checked(self.session.start())[0]

    def send(self, event: Event) -> list[Event]:
        """Send one client event; return everything emitted, the whole response included."""
        return self.send_raw(orjson.dumps(event))

    def send_raw(self, frame: str | bytes) -> list[Event]:
        events = self.session.receive(frame)
        while (step := self.session.next_step()) is not None:
            events.append(step.event)
        return self._checked(events)

    def _checked(self, events: list[Event]) -> list[Event]:
        for event in events:
            conforms(event)
        self.sent += events
        return events


def types(events: list[Event]) -> list[object]:
    return [event["type"] for event in events]


def only_error(events: list[Event]) -> dict[str, object]:
    """The error object of the single ``error`` event in ``events``."""
    assert types(events) == ["error"], types(events)
    error = events[0]["error"]
    assert isinstance(error, dict)
    return error


@contextlib.asynccontextmanager
async def connect(
    port: int,
    path: str = "/v1/realtime?model=gpt-realtime",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client whose TCP stream the test owns and always closes.

    trio-websocket 0.12.2's client never closes its socket when the server closes first (its
    ``aclose`` returns early once a close reason is set), which warnings-as-errors turns into
    a failure; owning the stream sidesteps that without touching the library's privates.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, f"127.0.0.1:{port}", path, extra_headers=headers
        )
        try:
            yield ws
        finally:
            nursery.cancel_scope.cancel()
