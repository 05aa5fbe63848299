"""The sans-IO Realtime session: client frames in, server event dicts out.

``SimSession`` holds one connection's protocol state (session config, input audio buffer,
voice detector, conversation, the active response) and no sockets and no clock. The I/O shell
calls ``start()`` once, ``receive(frame)`` for each client frame, and ``next_step()`` while a
response is active, pacing each step by its ``media_seconds``.

Invariants:

* A client frame either succeeds or produces one ``error`` event and leaves the state as it
  was (validation happens before any mutation).
* At most one response is active; it is created and cut only here, so the order of events a
  client sees is exactly the order in which these methods return them.
* ``error`` events echo the client ``event_id`` that caused them, as the real service does.
"""

from __future__ import annotations

import base64
import copy
import random
from collections.abc import Callable

import attrs
import orjson

from ._audio import (
    SpeechStarted,
    SpeechStopped,
    VoiceActivityDetector,
    audio_format,
)
from ._conversation import Conversation, Item, ItemNotFound, public
from ._defaults import (
    TRANSCRIPTION_TURN_DETECTION_DEFAULTS,
    TURN_DETECTION_DEFAULTS,
    default_session,
    default_transcription_session,
)
from ._ids import IdSource
from ._merge import merge_session
from ._refusals import Refusal, admitted
from ._response import ResponsePlan, ResponseRun, Step
from ._tools import choose_function_call, count_input_tokens

__all__ = ["SessionSettings", "SimSession"]

Event = dict[str, object]
JSONObject = dict[str, object]

_MIN_COMMIT_MS = 100.0


@attrs.frozen
class SessionSettings:
    """The simulator's knobs for one connection (what a response says and how long it is)."""

    voice: str = "marin"
    response_text: str = "Hello! This is the rtbus simulator. How can I help you today?"
    response_audio_seconds: float = 2.0
    audio_chunk_seconds: float = 0.1
    input_transcript: str = "Hello there."


class SimSession:
    """One simulated Realtime session, driven by its I/O shell."""

    def __init__(
        self,
        *,
        model: str,
        settings: SessionSettings,
        rng: random.Random,
        now: float,
        transcription: bool = False,
    ) -> None:
        self._ids = IdSource(rng)
        self._settings = settings
        self._session: JSONObject = (
            default_transcription_session(
                session_id=self._ids.new("sess"), expires_at=int(now) + 3600
            )
            if transcription
            else default_session(
                session_id=self._ids.new("sess"),
                model=model,
                voice=settings.voice,
                expires_at=int(now) + 3600,
            )
        )
        self._last_committed: str | None = None
        self._conversation = Conversation()
        self._conversation_id = self._ids.new("conv")
        self._buffer = bytearray()
        self._detector = VoiceActivityDetector()
        self._speech_item_id: str | None = None
        self._run: ResponseRun | None = None
        # Milliseconds of audio each assistant item received, for truncate's bounds check.
        self._audio_ms: dict[str, int] = {}
        self._handlers: dict[str, Callable[[JSONObject], list[Event]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "output_audio_buffer.clear": self._output_clear,
            "conversation.item.create": self._item_create,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.delete": self._item_delete,
            "conversation.item.truncate": self._item_truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }
        if transcription:
            # A transcription session takes input audio and nothing that makes a response.
            self._handlers = {
                name: handler
                for name, handler in self._handlers.items()
                if name.startswith(("session.", "input_audio_buffer."))
            }
        self._sync_detector()

    @property
    def transcription(self) -> bool:
        """Whether this is a transcription session (``intent=transcription``)."""
        return self._session["type"] == "transcription"

    @property
    def session(self) -> JSONObject:
        """A copy of the current session config, as ``session.updated`` would show it."""
        return copy.deepcopy(self._session)

    @property
    def responding(self) -> bool:
        """Whether a response is being generated."""
        return self._run is not None

    @property
    def response_id(self) -> str | None:
        """The id of the response being generated, if any."""
        return self._run.plan.response_id if self._run is not None else None

    def start(self) -> list[Event]:
        """The events of a new connection: ``session.created``."""
        return [self._ids.event("session.created", session=self.session)]

    def receive(self, frame: str | bytes) -> list[Event]:
        """Handle one client frame; return the events to send now, in order."""
        try:
            payload: object = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return [self._invalid_json(str(exc))]
        if not isinstance(payload, dict):
            return [self._invalid_json("the event must be a JSON object")]
        return self._dispatch(payload)

    def next_step(self) -> Step | None:
        """The active response's next event, or ``None`` when no response is active."""
        if self._run is None:
            return None
        step = self._run.next_step()
        if step is None or self._run.finished:
            self._run = None
        return step

    def expire(self) -> Event:
        """The ``error`` event the real service sends when a session hits its time limit."""
        return self.error("session_expired", "Your session hit the maximum duration of 60 minutes.")

    def error(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> Event:
        """An ``error`` event shaped like the real service's."""
        details = {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        }
        return self._ids.event("error", error=details)

    # Dispatch and validation.

    def _dispatch(self, payload: JSONObject) -> list[Event]:
        raw_id = payload.get("event_id")
        event_id = raw_id if isinstance(raw_id, str) else None
        event = admitted(payload)
        if isinstance(event, Refusal):
            return [self._refused(event, event_id)]
        handler = self._handlers.get(str(event["type"]))
        if handler is None:
            message = f"'{event['type']}' is not supported in a transcription session."
            return [self.error("invalid_value", message, param="type", event_id=event_id)]
        events = handler(event)
        return [_with_event_id(e, event_id) for e in events]

    def _refused(self, refusal: Refusal, event_id: str | None) -> Event:
        return self.error(refusal.code, refusal.message, param=refusal.param, event_id=event_id)

    def _invalid_json(self, detail: str) -> Event:
        message = f"We could not parse the JSON body of your request. ({detail})"
        return self.error("invalid_json", message)

    # session.update

    def _session_update(self, payload: JSONObject) -> list[Event]:
        update = payload["session"]
        assert isinstance(update, dict)
        if update["type"] != self._session["type"]:
            return [self._wrong_session_type(str(update["type"]))]
        defaults = (
            TRANSCRIPTION_TURN_DETECTION_DEFAULTS if self.transcription else TURN_DETECTION_DEFAULTS
        )
        self._session = merge_session(self._session, update, turn_defaults=defaults)
        self._sync_detector()
        return [self._ids.event("session.updated", session=self.session)]

    def _wrong_session_type(self, sent: str) -> Event:
        message = (
            f"Passing a {sent} session update event to a {self._session['type']} session "
            "is not allowed."
        )
        return self.error("invalid_value", message, param="session.type")

    def _sync_detector(self) -> None:
        turn = self._turn_detection()
        if turn is not None:
            threshold = turn.get("threshold", 0.5)
            silence = turn.get("silence_duration_ms", 500)
            self._detector.threshold = (
                float(threshold) if isinstance(threshold, int | float) else 0.5
            )
            self._detector.silence_duration_ms = int(silence) if isinstance(silence, int) else 500

    def _turn_detection(self) -> JSONObject | None:
        turn = _dig(self._session, "audio", "input", "turn_detection")
        return turn if isinstance(turn, dict) else None

    def _input_format(self) -> str:
        return str(_dig(self._session, "audio", "input", "format", "type"))

    # Input audio.

    def _append(self, payload: JSONObject) -> list[Event]:
        audio = base64.b64decode(str(payload["audio"]))  # checked by the protocol's rules
        self._buffer += audio
        if self._turn_detection() is None or self._input_format() != "audio/pcm":
            return []
        events: list[Event] = []
        for transition in self._detector.feed(audio):
            events += self._on_speech(transition)
        return events

    def _on_speech(self, transition: SpeechStarted | SpeechStopped) -> list[Event]:
        if isinstance(transition, SpeechStarted):
            return self._speech_started(transition.audio_ms)
        return self._speech_stopped(transition.audio_ms)

    def _speech_started(self, audio_ms: int) -> list[Event]:
        self._speech_item_id = self._ids.new("item")
        started = self._ids.event(
            "input_audio_buffer.speech_started",
            audio_start_ms=audio_ms,
            item_id=self._speech_item_id,
        )
        turn = self._turn_detection() or {}
        if self._run is None or not turn.get("interrupt_response", True):
            return [started]
        run, self._run = self._run, None
        return [started, *run.cancel("turn_detected")]

    def _speech_stopped(self, audio_ms: int) -> list[Event]:
        item_id = self._speech_item_id or self._ids.new("item")
        self._speech_item_id = None
        stopped = self._ids.event(
            "input_audio_buffer.speech_stopped", audio_end_ms=audio_ms, item_id=item_id
        )
        events = [stopped, *self._commit_buffer(item_id)]
        turn = self._turn_detection() or {}
        if turn.get("create_response", True) and self._run is None and not self.transcription:
            events += self._start_response({})
        return events

    def _commit(self, payload: JSONObject) -> list[Event]:
        buffered_ms = audio_format(self._input_format()).milliseconds(len(self._buffer))
        if buffered_ms < _MIN_COMMIT_MS:
            message = (
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{_MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {buffered_ms:.2f}ms "
                "of audio."
            )
            return [self.error("input_audio_buffer_commit_empty", message)]
        # A manual commit ends any utterance the detector was in the middle of, so the
        # item id it reserved is used once.
        item_id = self._speech_item_id or self._ids.new("item")
        self._speech_item_id = None
        self._detector.reset()
        return self._commit_buffer(item_id)

    def _commit_buffer(self, item_id: str) -> list[Event]:
        seconds = audio_format(self._input_format()).milliseconds(len(self._buffer)) / 1000
        if self.transcription:
            self._buffer.clear()  # no item keeps the audio: it is not encoded at all
            return self._transcribe_only(item_id, seconds)
        audio = base64.b64encode(bytes(self._buffer)).decode("ascii")
        self._buffer.clear()
        item: Item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "audio": audio, "transcript": None}],
        }
        previous = self._conversation.insert(item, None)
        committed = self._ids.event(
            "input_audio_buffer.committed", previous_item_id=previous, item_id=item_id
        )
        return [committed, *self._item_events(item, previous), *self._transcribe(item, seconds)]

    def _transcribe(self, item: Item, seconds: float) -> list[Event]:
        """With input transcription on, the user's audio gets ``input_transcript`` as text."""
        if _dig(self._session, "audio", "input", "transcription") is None:
            return []
        content = item["content"]
        assert isinstance(content, list)
        content[0]["transcript"] = self._settings.input_transcript
        return [self._transcription_completed(str(item["id"]), seconds)]

    def _transcribe_only(self, item_id: str, seconds: float) -> list[Event]:
        """A transcription session's commit: no conversation, the transcript as a delta (the
        real service streams it) and then whole."""
        previous, self._last_committed = self._last_committed, item_id
        events = [
            self._ids.event(
                "input_audio_buffer.committed", previous_item_id=previous, item_id=item_id
            )
        ]
        if _dig(self._session, "audio", "input", "transcription") is None:
            return events
        delta = self._ids.event(
            "conversation.item.input_audio_transcription.delta",
            item_id=item_id,
            content_index=0,
            delta=self._settings.input_transcript,
        )
        return [*events, delta, self._transcription_completed(item_id, seconds)]

    def _transcription_completed(self, item_id: str, seconds: float) -> Event:
        return self._ids.event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=self._settings.input_transcript,
            usage={"type": "duration", "seconds": round(seconds, 3)},
        )

    def _clear(self, payload: JSONObject) -> list[Event]:
        self._buffer.clear()
        self._detector.reset()
        self._speech_item_id = None
        return [self._ids.event("input_audio_buffer.cleared")]

    def _output_clear(self, payload: JSONObject) -> list[Event]:
        message = "output_audio_buffer.clear is only supported for WebRTC and SIP connections."
        return [self.error("unsupported_event_for_transport", message, param="type")]

    # Conversation items.

    def _item_events(self, item: Item, previous: str | None) -> list[Event]:
        shown = public(item)
        added = self._ids.event("conversation.item.added", previous_item_id=previous, item=shown)
        done = self._ids.event("conversation.item.done", previous_item_id=previous, item=shown)
        return [added, done]

    def _item_create(self, payload: JSONObject) -> list[Event]:
        item = copy.deepcopy(payload["item"])
        assert isinstance(item, dict)
        item.setdefault("id", self._ids.new("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        previous_id = payload.get("previous_item_id")
        try:
            self._conversation.get(str(item["id"]))
        except ItemNotFound:
            pass
        else:
            message = f"Error adding item: the item with id '{item['id']}' already exists."
            return [self.error("item_already_exists", message, param="item.id")]
        try:
            previous = self._conversation.insert(item, _optional_str(previous_id))
        except ItemNotFound as exc:
            return [self._not_found("adding", exc.item_id, "previous_item_id")]
        return self._item_events(item, previous)

    def _item_retrieve(self, payload: JSONObject) -> list[Event]:
        item_id = str(payload["item_id"])
        try:
            item = copy.deepcopy(self._conversation.get(item_id))
        except ItemNotFound:
            return [self._not_found("retrieving", item_id, "item_id")]
        return [self._ids.event("conversation.item.retrieved", item=item)]

    def _item_delete(self, payload: JSONObject) -> list[Event]:
        item_id = str(payload["item_id"])
        try:
            self._conversation.delete(item_id)
        except ItemNotFound:
            return [self._not_found("deleting", item_id, "item_id")]
        return [self._ids.event("conversation.item.deleted", item_id=item_id)]

    def _item_truncate(self, payload: JSONObject) -> list[Event]:
        item_id = str(payload["item_id"])
        index, end_ms = payload["content_index"], payload["audio_end_ms"]
        assert isinstance(index, int)
        assert isinstance(end_ms, int)
        try:
            item = self._conversation.get(item_id)
        except ItemNotFound:
            return [self._not_found("truncating", item_id, "item_id")]
        part = _audio_part(item, index)
        if part is None:
            message = "Only model output audio messages can be truncated"
            return [self.error("unsupported_content_type", message, param="item_id")]
        spoken_ms = self._audio_ms.get(item_id, 0)
        if end_ms > spoken_ms:
            message = f"Audio content of {spoken_ms}ms is already shorter than {end_ms}ms"
            return [self.error("invalid_value", message, param="audio_end_ms")]
        part["transcript"] = ""
        return [
            self._ids.event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=index,
                audio_end_ms=end_ms,
            )
        ]

    def _not_found(self, verb: str, item_id: str, param: str) -> Event:
        message = f"Error {verb} item: the item with id '{item_id}' does not exist."
        return self.error("item_not_found", message, param=param)

    # Responses.

    def _response_create(self, payload: JSONObject) -> list[Event]:
        if self._run is not None:
            message = (
                "Conversation already has an active response in progress: "
                f"{self._run.plan.response_id}. Wait until the response is finished before "
                "creating a new one."
            )
            return [self.error("conversation_already_has_active_response", message)]
        params = payload.get("response", {})
        assert isinstance(params, dict)
        return self._start_response(params)

    def _start_response(self, params: JSONObject) -> list[Event]:
        self._run = ResponseRun(
            self._plan(params), self._conversation, self._ids, audio_ms=self._audio_ms
        )
        first = self.next_step()
        assert first is not None
        return [first.event]

    def _plan(self, params: JSONObject) -> ResponsePlan:
        output = _dig(params, "audio", "output") or {}
        assert isinstance(output, dict)
        session_output = _dig(self._session, "audio", "output")
        assert isinstance(session_output, dict)
        output_format = output.get("format", session_output["format"])
        assert isinstance(output_format, dict)
        modalities = params.get("output_modalities", self._session["output_modalities"])
        assert isinstance(modalities, list)
        settings = self._settings
        in_conversation = params.get("conversation", "auto") == "auto"
        return ResponsePlan(
            response_id=self._ids.new("resp"),
            conversation_id=self._conversation_id if in_conversation else None,
            modality=str(modalities[0]) if modalities else "audio",
            voice=output.get("voice", session_output["voice"]),
            output_format=output_format,
            text=_reply(settings.response_text, self._conversation),
            audio_seconds=settings.response_audio_seconds,
            chunk_seconds=settings.audio_chunk_seconds,
            max_output_tokens=params.get("max_output_tokens", self._session["max_output_tokens"]),
            metadata=params.get("metadata"),
            input_tokens=count_input_tokens(self._conversation, self._session),
            function_call=choose_function_call(
                self._conversation, self._session, params, self._ids
            ),
        )

    def _response_cancel(self, payload: JSONObject) -> list[Event]:
        if self._run is None:
            message = "Cancellation failed: no active response found"
            return [self.error("response_cancel_not_active", message)]
        wanted = payload.get("response_id")
        if wanted is not None and wanted != self._run.plan.response_id:
            message = f"Cancellation failed: no active response found with id '{wanted}'"
            return [self.error("response_cancel_not_active", message, param="response_id")]
        run, self._run = self._run, None
        return run.cancel("client_cancelled")


def _with_event_id(event: Event, event_id: str | None) -> Event:
    """Errors caused by a client event carry its id (handlers build them without it)."""
    if event.get("type") != "error" or event_id is None:
        return event
    details = event["error"]
    assert isinstance(details, dict)
    return {**event, "error": {**details, "event_id": event_id}}


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _audio_part(item: Item, index: int) -> JSONObject | None:
    content = item.get("content")
    if item.get("role") != "assistant" or not isinstance(content, list):
        return None
    part = content[index] if index < len(content) else None
    return part if isinstance(part, dict) and part.get("type") == "output_audio" else None


def _reply(template: str, conversation: Conversation) -> str:
    """What a response says: ``template`` with ``{items}`` (the items the conversation holds)
    and ``{last_user_text}`` (the newest user message's text or transcript) filled in, so a
    client can tell through the protocol alone what the conversation holds."""
    return template.replace("{items}", str(len(conversation))).replace(
        "{last_user_text}", _last_user_text(conversation)
    )


def _last_user_text(conversation: Conversation) -> str:
    for item in reversed(conversation.items()):
        if item.get("role") != "user" or not isinstance(item.get("content"), list):
            continue
        parts = item["content"]
        assert isinstance(parts, list)
        texts = [
            str(p.get("text") or p.get("transcript") or "") for p in parts if isinstance(p, dict)
        ]
        return " ".join(text for text in texts if text)
    return ""
