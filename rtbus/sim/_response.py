"""One response being generated: a lazy stream of server events with their media time.

A ``ResponseRun`` yields ``Step``s one at a time so that the I/O shell can pace audio and a
``response.cancel`` (or a barge-in) can cut the stream between any two events. Whatever is
open when the run is cut (a content part, an output item) is closed by ``cancel`` with the
events the real service sends, so every ``added`` a client saw gets its ``done``.

Invariants: events come out in the real order (``response.created``, ``rate_limits.updated``,
``response.output_item.added``, ``conversation.item.added``, ``response.content_part.added``,
deltas, the ``.done`` events inner to outer, ``response.done``); ``finished`` is true exactly
once ``response.done`` has been produced; output items enter the conversation only when the
response writes to it (``conversation: "auto"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs

from ._audio import audio_format, output_chunk
from ._conversation import Conversation, Item
from ._ids import IdSource

__all__ = ["FunctionCall", "ResponsePlan", "ResponseRun", "Step"]

Event = dict[str, object]

_RATE_LIMITS = [
    {"name": "requests", "limit": 5_000, "remaining": 4_999, "reset_seconds": 0.012},
    {"name": "tokens", "limit": 400_000, "remaining": 394_238, "reset_seconds": 0.864},
]


@attrs.frozen
class Step:
    """One server event of a response, and the seconds of audio it carries (for pacing)."""

    event: Event
    media_seconds: float = 0.0


@attrs.frozen
class FunctionCall:
    """The function call a response makes instead of speaking."""

    name: str
    call_id: str
    arguments: str


@attrs.frozen
class ResponsePlan:
    """Everything a response needs, fixed when ``response.create`` is accepted."""

    response_id: str
    conversation_id: str | None
    modality: str
    voice: object
    output_format: dict[str, object]
    text: str
    audio_seconds: float
    chunk_seconds: float
    max_output_tokens: object
    metadata: object
    input_tokens: int
    function_call: FunctionCall | None = None


@attrs.define
class ResponseRun:
    """The generation of one response, pulled one ``Step`` at a time."""

    plan: ResponsePlan
    _conversation: Conversation
    _ids: IdSource
    #: Shared with the session: milliseconds of audio sent per item (truncate checks it).
    audio_ms: dict[str, int] = attrs.field(factory=dict, kw_only=True)
    finished: bool = False
    _item: Item | None = None
    _part_open: bool = False
    _said: list[str] = attrs.field(factory=list)
    _output: list[Item] = attrs.field(factory=list)
    _steps: Iterator[Step] | None = None

    def next_step(self) -> Step | None:
        """The next event to send, or ``None`` once ``response.done`` has been produced."""
        if self._steps is None:
            self._steps = self._generate()
        return next(self._steps, None)

    def cancel(self, reason: str) -> list[Event]:
        """Cut the response now; the events that close what is open, then ``response.done``."""
        self._steps = iter(())
        closing = self._close_part() if self._part_open else []
        if self._item is not None:
            closing += self._close_item("incomplete")
        details: dict[str, object] = {"type": "cancelled", "reason": reason}
        return [*closing, self._done("cancelled", details)]

    # The generator: one method per phase, each yielding its events in the real order.

    def _generate(self) -> Iterator[Step]:
        yield Step(self._ids.event("response.created", response=self._response("in_progress")))
        yield Step(self._ids.event("rate_limits.updated", rate_limits=_RATE_LIMITS))
        if self.plan.function_call is not None:
            yield from self._function_call(self.plan.function_call)
        else:
            yield from self._message()
        yield Step(self._done("completed", None))

    def _message(self) -> Iterator[Step]:
        yield from self._open_item({"type": "message", "role": "assistant", "content": []})
        self._part_open = True
        yield Step(self._part_event("response.content_part.added", part=self._part("")))
        if self.plan.modality == "audio":
            yield from self._audio_deltas()
        else:
            yield from self._text_deltas()
        for event in self._close_part():
            yield Step(event)
        for event in self._close_item("completed"):
            yield Step(event)

    def _function_call(self, call: FunctionCall) -> Iterator[Step]:
        fields = {"type": "function_call", "name": call.name, "call_id": call.call_id}
        yield from self._open_item({**fields, "arguments": ""})
        for start in range(0, len(call.arguments), 16):
            delta = call.arguments[start : start + 16]
            yield Step(self._item_event("response.function_call_arguments.delta", delta=delta))
        assert self._item is not None
        self._item["arguments"] = call.arguments
        yield Step(
            self._item_event(
                "response.function_call_arguments.done",
                name=call.name,
                arguments=call.arguments,
            )
        )
        for event in self._close_item("completed"):
            yield Step(event)

    def _open_item(self, fields: Item) -> Iterator[Step]:
        item: Item = {"id": self._ids.new("item"), "object": "realtime.item", **fields}
        item["status"] = "in_progress"
        self._item = item
        yield Step(self._output_event("response.output_item.added", item=dict(item)))
        if self.plan.conversation_id is not None:
            previous = self._conversation.insert(item, None)
            added = self._ids.event("conversation.item.added", previous_item_id=previous)
            yield Step({**added, "item": _snapshot(item)})

    def _audio_deltas(self) -> Iterator[Step]:
        fmt = audio_format(str(self.plan.output_format["type"]))
        total = fmt.bytes_for(self.plan.audio_seconds)
        chunk = max(fmt.bytes_for(self.plan.chunk_seconds), fmt.sample_width)
        chunks = math.ceil(total / chunk)
        words = _spread(_words(self.plan.text), chunks)
        assert self._item is not None
        item_id = str(self._item["id"])
        for index in range(chunks):
            length = min(chunk, total - index * chunk)
            audio = output_chunk(fmt.type, index * chunk, length)
            sent_ms = fmt.milliseconds(index * chunk + length)
            self.audio_ms[item_id] = round(sent_ms)
            yield Step(
                self._part_event("response.output_audio.delta", delta=audio),
                fmt.milliseconds(length) / 1000,
            )
            yield from self._say(words.get(index, []))
        yield from self._say(words.get(-1, []))
        yield Step(self._part_event("response.output_audio.done"))
        transcript = "".join(self._said)
        yield Step(self._part_event("response.output_audio_transcript.done", transcript=transcript))

    def _say(self, words: list[str]) -> Iterator[Step]:
        for word in words:
            self._said.append(word)
            yield Step(self._part_event("response.output_audio_transcript.delta", delta=word))

    def _text_deltas(self) -> Iterator[Step]:
        for word in _words(self.plan.text):
            self._said.append(word)
            yield Step(self._part_event("response.output_text.delta", delta=word))
        text = "".join(self._said)
        yield Step(self._part_event("response.output_text.done", text=text))

    def _close_part(self) -> list[Event]:
        self._part_open = False
        said = "".join(self._said)
        assert self._item is not None
        kind = "output_audio" if self.plan.modality == "audio" else "output_text"
        field = "transcript" if self.plan.modality == "audio" else "text"
        self._item["content"] = [{"type": kind, field: said}]
        return [self._part_event("response.content_part.done", part=self._part(said))]

    def _close_item(self, status: str) -> list[Event]:
        item = self._item
        assert item is not None
        item["status"] = status
        self._item = None
        events = [self._output_event("response.output_item.done", item=_snapshot(item))]
        if self.plan.conversation_id is not None:
            previous = _previous_id(self._conversation, str(item["id"]))
            done = self._ids.event("conversation.item.done", previous_item_id=previous)
            events.append({**done, "item": _snapshot(item)})
        self._output.append(_snapshot(item))
        return events

    # Event builders.

    def _done(self, status: str, details: dict[str, object] | None) -> Event:
        self.finished = True
        response = self._response(status)
        response["status_details"] = details
        response["usage"] = self._usage()
        return self._ids.event("response.done", response=response)

    def _response(self, status: str) -> dict[str, object]:
        plan = self.plan
        return {
            "object": "realtime.response",
            "id": plan.response_id,
            "status": status,
            "status_details": None,
            "output": list(self._output),
            "conversation_id": plan.conversation_id,
            "output_modalities": [plan.modality],
            "max_output_tokens": plan.max_output_tokens,
            "audio": {"output": {"format": plan.output_format, "voice": plan.voice}},
            "usage": None,
            "metadata": plan.metadata,
        }

    def _usage(self) -> dict[str, object]:
        text_tokens = len(_words("".join(self._said)))
        audio_tokens = round(self.plan.audio_seconds * 10) if self.plan.modality == "audio" else 0
        output_tokens = text_tokens + audio_tokens
        cached = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
        return {
            "total_tokens": self.plan.input_tokens + output_tokens,
            "input_tokens": self.plan.input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "text_tokens": self.plan.input_tokens,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": cached,
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }

    def _part(self, said: str) -> dict[str, object]:
        if self.plan.modality == "audio":
            return {"type": "audio", "transcript": said}
        return {"type": "text", "text": said}

    def _output_event(self, event_type: str, **fields: object) -> Event:
        return self._ids.event(
            event_type, response_id=self.plan.response_id, output_index=0, **fields
        )

    def _item_event(self, event_type: str, **fields: object) -> Event:
        assert self._item is not None
        item = self._item
        extra = {"call_id": item["call_id"]} if item["type"] == "function_call" else {}
        return self._output_event(event_type, item_id=item["id"], **extra, **fields)

    def _part_event(self, event_type: str, **fields: object) -> Event:
        return self._item_event(event_type, content_index=0, **fields)


def _snapshot(item: Item) -> Item:
    """A copy deep enough that later changes to the open item do not reach sent events."""
    content = item.get("content")
    if not isinstance(content, list):
        return dict(item)
    return {**item, "content": [dict(part) for part in content]}


def _previous_id(conversation: Conversation, item_id: str) -> str | None:
    ids = [str(item["id"]) for item in conversation.items()]
    index = ids.index(item_id) if item_id in ids else 0
    return ids[index - 1] if index > 0 else None


def _words(text: str) -> list[str]:
    """``text`` cut into deltas that join back to it exactly: each word with its leading space."""
    pieces = text.split(" ")
    return [pieces[0], *(" " + piece for piece in pieces[1:])] if text else []


def _spread(words: list[str], chunks: int) -> dict[int, list[str]]:
    """Which words are spoken during each audio chunk, spread evenly (``-1``: no audio)."""
    spoken: dict[int, list[str]] = {}
    for index, word in enumerate(words):
        chunk = index * chunks // len(words) if chunks else -1
        spoken.setdefault(chunk, []).append(word)
    return spoken
