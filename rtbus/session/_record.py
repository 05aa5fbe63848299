"""The conversation record: what a session's upstream conversation holds, kept so that the
next upstream session (after a reconnect, an actor restart or a recycle) can be given it back.

Sans-IO: server events go in (``observe``), the ``conversation.item.create`` events that
restore it come out (``restore_plan``). No clock, no trio; the session actor does the I/O.

Invariants:

* Items are kept in the order the upstream confirmed them: ``conversation.item.added`` places
  an item right after its ``previous_item_id`` (first when that is ``None``; last when it is an
  item the bound already dropped). An id already held is updated in place, so the upstream's
  echo of a restore (which keeps the ids) never duplicates an item.
* Only text is kept: message text, audio transcripts, function calls and their outputs.
  Audio bytes never are; the audio sent per assistant item is counted (in bytes, from the
  deltas) only so a truncation can keep the share of the transcript that was heard.
* A user audio item has no text until its input transcription completes; restored without
  one it would be an empty message, so it is left out and counted (``untranscribed``).
* After every change the bound holds: at most ``max_items`` items and ``max_bytes`` bytes of
  text. The oldest go first, and a function call goes with its output (and the other way
  round), so a restored conversation never holds half a pair. What goes is folded into one
  summary by the ``summarize`` hook (or set with ``set_summary``), and counted in ``dropped``.
* A response cut off by a lost connection leaves its open item ``incomplete`` with the
  transcript streamed so far (``interrupt``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from rtbus.protocol import (
    ConversationItemAddedEvent,
    ConversationItemAssistantMessage,
    ConversationItemDeletedEvent,
    ConversationItemDoneEvent,
    ConversationItemFunctionCall,
    ConversationItemFunctionCallOutput,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemSystemMessage,
    ConversationItemTruncatedEvent,
    ConversationItemUserMessage,
    ResponseCreatedEvent,
    ResponseOutputAudioDeltaEvent,
    ResponseOutputAudioTranscriptDeltaEvent,
    ResponseOutputTextDeltaEvent,
    ServerEvent,
    UnknownEvent,
)

__all__ = [
    "SUMMARY_ITEM_ID",
    "ConversationRecord",
    "ConversationSnapshot",
    "RecordBound",
    "RecordedItem",
    "RestorePlan",
    "Summarize",
]

#: The id of the one item a restore puts in place of what the bound dropped.
SUMMARY_ITEM_ID: Final = "rtbus_summary"
_SUMMARY_PREFIX: Final = "Summary of the earlier conversation: "
# Bytes of audio per millisecond, by output format (PCM16 at 24 kHz; G.711 at 8 kHz).
_BYTES_PER_MS: Final[Mapping[str, int]] = {"audio/pcm": 48, "audio/pcmu": 8, "audio/pcma": 8}
_AUDIO_PARTS: Final = frozenset({"input_audio", "output_audio"})
_CONTENT_TYPE: Final[Mapping[str, str]] = {
    "user": "input_text",
    "system": "input_text",
    "assistant": "output_text",
}


@attrs.frozen(kw_only=True)
class RecordedItem:
    """One conversation item as the record keeps it: its text, never its audio.

    ``type`` is ``message`` (with ``role`` and ``text``; ``text`` is ``None`` for audio whose
    transcript has not arrived), ``function_call`` (``call_id``, ``name``, ``arguments``) or
    ``function_call_output`` (``call_id``, ``output``). ``status`` is ``incomplete`` for a
    response cut off by a lost connection; ``truncated`` when the caller interrupted it and
    only what was heard is kept.
    """

    id: str
    type: str
    role: str = ""
    text: str | None = None
    audio: bool = False
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str = ""
    status: str = "completed"
    truncated: bool = False

    @property
    def size(self) -> int:
        """Bytes of text this item holds (what ``max_bytes`` counts)."""
        text = self.text or ""
        return len(text) + len(self.name) + len(self.arguments) + len(self.output)

    @property
    def restorable(self) -> bool:
        """Whether it can be given back: a message needs its text."""
        return self.type != "message" or bool(self.text)

    def create_event(self, event_id: str) -> dict[str, Any]:
        """The ``conversation.item.create`` that gives this item back, under the same id."""
        return {"type": "conversation.item.create", "event_id": event_id, "item": self.as_item()}

    def as_item(self) -> dict[str, Any]:
        """The item in the shape ``conversation.item.create`` takes (text, never audio)."""
        fields: dict[str, Any]
        if self.type == "function_call":
            fields = {"call_id": self.call_id, "name": self.name, "arguments": self.arguments}
        elif self.type == "function_call_output":
            fields = {"call_id": self.call_id, "output": self.output}
        else:
            part = {"type": _CONTENT_TYPE.get(self.role, "input_text"), "text": self.text or ""}
            fields = {"role": self.role, "content": [part]}
        return {"id": self.id, "type": self.type, **fields}


Summarize = Callable[[str | None, RecordedItem], str | None]
"""Folds an item the bound dropped into the summary so far; returns the new summary."""


@attrs.frozen(kw_only=True)
class RecordBound:
    """How much of a conversation a session keeps: items and bytes of text."""

    max_items: int = attrs.field(default=200, validator=attrs.validators.ge(1))
    max_bytes: int = attrs.field(default=256 * 1024, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class ConversationSnapshot:
    """What a session's record holds now (``Session.conversation()``)."""

    items: tuple[RecordedItem, ...]
    bytes: int
    dropped: int
    summary: str | None


@attrs.frozen(kw_only=True)
class RestorePlan:
    """What a restore sends, in order, and what it leaves out."""

    items: tuple[RecordedItem, ...]
    summary: RecordedItem | None
    untranscribed: int
    dropped: int

    def events(self, event_id: Callable[[], str]) -> list[dict[str, Any]]:
        """The ``conversation.item.create`` events, summary first, each with a fresh id."""
        head = [] if self.summary is None else [self.summary]
        return [item.create_event(event_id()) for item in (*head, *self.items)]

    @property
    def item_ids(self) -> frozenset[str]:
        head = () if self.summary is None else (self.summary.id,)
        return frozenset((*head, *(item.id for item in self.items)))


class ConversationRecord:
    """A bounded record of one session's conversation, fed with its server events."""

    def __init__(self, bound: RecordBound | None = None, summarize: Summarize | None = None):
        self._bound = bound or RecordBound()
        self._summarize = summarize
        self._items: dict[str, RecordedItem] = {}  # insertion-ordered: the conversation
        self._bytes = 0
        self._dropped = 0
        self._summary: str | None = None
        self._bytes_per_ms = _BYTES_PER_MS["audio/pcm"]
        self._audio_bytes: dict[str, int] = {}  # assistant item id -> audio bytes sent
        self._streamed: dict[str, str] = {}  # open assistant item id -> transcript so far
        self._response_id: str | None = None

    # -- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def snapshot(self) -> ConversationSnapshot:
        return ConversationSnapshot(
            items=tuple(self._items.values()),
            bytes=self._bytes,
            dropped=self._dropped,
            summary=self._summary,
        )

    def restore_plan(self, since: frozenset[str] = frozenset()) -> RestorePlan:
        """What to send a new upstream session; ``since``: ids it already holds (a recycle
        sends what was added after its first restore)."""
        items = [item for item in self._items.values() if item.id not in since]
        summary = None
        if self._summary is not None and SUMMARY_ITEM_ID not in since:
            text = _SUMMARY_PREFIX + self._summary
            summary = RecordedItem(id=SUMMARY_ITEM_ID, type="message", role="system", text=text)
        return RestorePlan(
            items=tuple(item for item in items if item.restorable),
            summary=summary,
            untranscribed=sum(not item.restorable for item in items),
            dropped=self._dropped,
        )

    @property
    def dropped(self) -> int:
        """Items the bound has let go, over the session's life."""
        return self._dropped

    @property
    def response_id(self) -> str | None:
        """The response running upstream, as far as the events said."""
        return self._response_id

    # -- writing ----------------------------------------------------------------------

    def observe(self, event: ServerEvent | UnknownEvent) -> None:
        """Take one server event into account (most change nothing)."""
        apply = _APPLY.get(event.type)
        if apply is not None:
            apply(self, event)

    def set_summary(self, summary: str | None) -> None:
        """Replace the summary that stands in for dropped items (a worker's own, say)."""
        self._summary = summary

    def interrupt(self) -> str | None:
        """The connection was lost: close what a response left open as ``incomplete``, with
        what it had streamed. Returns the id of the response cut off, if one ran."""
        for item_id, streamed in self._streamed.items():
            item = self._items.get(item_id)
            if item is not None:
                self._replace(attrs.evolve(item, text=streamed, status="incomplete"))
        self._streamed.clear()
        response_id, self._response_id = self._response_id, None
        return response_id

    def _session(self, event: Any) -> None:
        fmt = _dig(event, "session", "audio", "output", "format", "type")
        self._bytes_per_ms = _BYTES_PER_MS.get(str(fmt), self._bytes_per_ms)

    def _added(self, event: Any) -> None:
        assert isinstance(event, ConversationItemAddedEvent | ConversationItemDoneEvent)
        item = _recorded(event.item)
        if item is None or item.id == SUMMARY_ITEM_ID:
            return
        held = self._items.get(item.id)
        if held is not None:
            self._replace(_merged(held, item))
        else:
            self._insert(item, event.previous_item_id)
        self._enforce_bound()

    def _transcribed(self, event: Any) -> None:
        assert isinstance(event, ConversationItemInputAudioTranscriptionCompletedEvent)
        item = self._items.get(event.item_id)
        if item is not None:
            self._replace(attrs.evolve(item, text=event.transcript))
            self._enforce_bound()

    def _truncated(self, event: Any) -> None:
        assert isinstance(event, ConversationItemTruncatedEvent)
        item = self._items.get(event.item_id)
        if item is None:
            return
        sent_ms = self._audio_bytes.get(item.id, 0) / self._bytes_per_ms
        heard = min(1.0, event.audio_end_ms / sent_ms) if sent_ms else 0.0
        self._replace(attrs.evolve(item, text=_heard(item.text or "", heard), truncated=True))

    def _deleted(self, event: Any) -> None:
        assert isinstance(event, ConversationItemDeletedEvent)
        self._remove(event.item_id)

    def _audio_delta(self, event: Any) -> None:
        assert isinstance(event, ResponseOutputAudioDeltaEvent)
        # Base64: three bytes for every four characters.
        sent = self._audio_bytes.get(event.item_id, 0)
        self._audio_bytes[event.item_id] = sent + len(event.delta) * 3 // 4

    def _text_delta(self, event: Any) -> None:
        assert isinstance(
            event, ResponseOutputAudioTranscriptDeltaEvent | ResponseOutputTextDeltaEvent
        )
        self._streamed[event.item_id] = self._streamed.get(event.item_id, "") + event.delta

    def _response_created(self, event: Any) -> None:
        assert isinstance(event, ResponseCreatedEvent)
        self._response_id = event.response.id

    def _response_done(self, event: Any) -> None:
        self._response_id = None
        self._streamed.clear()

    # -- the items ----------------------------------------------------------------------

    def _insert(self, item: RecordedItem, previous_item_id: str | None) -> None:
        if previous_item_id is None and self._items:
            self._items = {item.id: item, **self._items}
        elif previous_item_id is None or previous_item_id not in self._items:
            self._items[item.id] = item
        else:
            self._items = dict(_after(self._items, previous_item_id, item))
        self._bytes += item.size

    def _replace(self, item: RecordedItem) -> None:
        self._bytes += item.size - self._items[item.id].size
        self._items[item.id] = item

    def _remove(self, item_id: str) -> RecordedItem | None:
        item = self._items.pop(item_id, None)
        if item is not None:
            self._bytes -= item.size
            self._audio_bytes.pop(item_id, None)
            self._streamed.pop(item_id, None)
        return item

    def _enforce_bound(self) -> None:
        bound = self._bound
        while self._items and (len(self._items) > bound.max_items or self._bytes > bound.max_bytes):
            for item in self._oldest_with_partner():
                self._drop(item)

    def _oldest_with_partner(self) -> list[RecordedItem]:
        oldest = next(iter(self._items.values()))
        if not oldest.call_id:
            return [oldest]
        return [item for item in self._items.values() if item.call_id == oldest.call_id]

    def _drop(self, item: RecordedItem) -> None:
        self._remove(item.id)
        self._dropped += 1
        if self._summarize is not None:
            self._summary = self._summarize(self._summary, item)


def _merged(held: RecordedItem, news: RecordedItem) -> RecordedItem:
    """An update of an item the record holds, keeping what only the record knows: a
    transcript that came in its own event, and that a response was cut off or truncated
    (the echo of a restore shows the item as created, complete)."""
    return attrs.evolve(
        news,
        text=held.text if news.text is None else news.text,
        status="incomplete" if held.status == "incomplete" else news.status,
        truncated=held.truncated or news.truncated,
    )


def _after(
    items: Mapping[str, RecordedItem], previous_id: str, new: RecordedItem
) -> list[tuple[str, RecordedItem]]:
    placed: list[tuple[str, RecordedItem]] = []
    for item_id, item in items.items():
        placed.append((item_id, item))
        if item_id == previous_id:
            placed.append((new.id, new))
    return placed


def _dig(value: object, *names: str) -> object:
    for name in names:
        value = getattr(value, name, None)
    return value


def _heard(text: str, share: float) -> str:
    """The first ``share`` of ``text``, in whole words: what the caller heard of it."""
    words = text.split()
    return " ".join(words[: round(len(words) * share)])


_Message = (
    ConversationItemSystemMessage | ConversationItemUserMessage | ConversationItemAssistantMessage
)


def _message(item: Any) -> RecordedItem:
    assert isinstance(item, _Message)
    texts = [part.text or getattr(part, "transcript", None) for part in item.content]
    audio = any(part.type in _AUDIO_PARTS for part in item.content)
    known = [text for text in texts if text is not None]
    text = " ".join(known) if known or not audio else None
    status = item.status or "completed"
    return RecordedItem(
        id=item.id or "", type="message", role=item.role, text=text, audio=audio, status=status
    )


def _function_call(item: Any) -> RecordedItem:
    assert isinstance(item, ConversationItemFunctionCall)
    return RecordedItem(
        id=item.id or "",
        type="function_call",
        call_id=item.call_id or "",
        name=item.name,
        arguments=item.arguments,
        status=item.status or "completed",
    )


def _function_output(item: Any) -> RecordedItem:
    assert isinstance(item, ConversationItemFunctionCallOutput)
    return RecordedItem(
        id=item.id or "", type="function_call_output", call_id=item.call_id, output=item.output
    )


_RECORDERS: Final[Mapping[type, Callable[[Any], RecordedItem]]] = {
    ConversationItemSystemMessage: _message,
    ConversationItemUserMessage: _message,
    ConversationItemAssistantMessage: _message,
    ConversationItemFunctionCall: _function_call,
    ConversationItemFunctionCallOutput: _function_output,
}


def _recorded(item: object) -> RecordedItem | None:
    """The record's form of a protocol item; ``None`` for kinds a restore cannot give back
    (MCP items: the MCP server is asked again) or an item without an id."""
    record = _RECORDERS.get(type(item))
    recorded = None if record is None else record(item)
    return recorded if recorded is not None and recorded.id else None


_APPLY: Final[Mapping[str, Callable[[ConversationRecord, Any], None]]] = {
    "session.created": ConversationRecord._session,
    "session.updated": ConversationRecord._session,
    "conversation.item.added": ConversationRecord._added,
    "conversation.item.done": ConversationRecord._added,
    "conversation.item.input_audio_transcription.completed": ConversationRecord._transcribed,
    "conversation.item.truncated": ConversationRecord._truncated,
    "conversation.item.deleted": ConversationRecord._deleted,
    "response.output_audio.delta": ConversationRecord._audio_delta,
    "response.output_audio_transcript.delta": ConversationRecord._text_delta,
    "response.output_text.delta": ConversationRecord._text_delta,
    "response.created": ConversationRecord._response_created,
    "response.done": ConversationRecord._response_done,
}
