"""The conversation record, sans-IO: server events in, restore events out."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from rtbus.protocol import decode_server_event
from rtbus.session import ConversationRecord, RecordBound, RecordedItem

_ids = iter(range(1, 1_000_000))


def event(type: str, **fields: Any) -> Any:
    return decode_server_event(
        orjson.dumps({"type": type, "event_id": f"ev_{next(_ids)}", **fields})
    )


def added(item: dict[str, Any], previous: str | None = None) -> Any:
    return event("conversation.item.added", item=item, previous_item_id=previous)


def user(id: str, text: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def user_audio(id: str) -> dict[str, Any]:
    part = {"type": "input_audio", "transcript": None}
    return {"id": id, "type": "message", "role": "user", "content": [part]}


def assistant(id: str, transcript: str | None, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_audio", "transcript": transcript}
    return {"id": id, "type": "message", "role": "assistant", "status": status, "content": [part]}


def call(id: str, call_id: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function_call",
        "call_id": call_id,
        "name": "lookup",
        "arguments": "{}",
    }


def output(id: str, call_id: str) -> dict[str, Any]:
    return {"id": id, "type": "function_call_output", "call_id": call_id, "output": '{"ok":true}'}


def feed(record: ConversationRecord, *events: Any) -> None:
    for e in events:
        record.observe(e)


def ids(record: ConversationRecord) -> list[str]:
    return [item.id for item in record.snapshot().items]


def test_items_keep_the_order_the_upstream_confirmed() -> None:
    record = ConversationRecord()
    feed(record, added(user("a", "one")), added(user("c", "three"), "a"))
    feed(record, added(user("b", "two"), "a"), added(user("z", "first"), None))
    assert ids(record) == ["z", "a", "b", "c"]


def test_the_echo_of_a_restore_updates_in_place() -> None:
    record = ConversationRecord()
    feed(record, added(user("a", "one")), added(assistant("b", "hi"), "a"))
    feed(record, added(user("a", "one"), None), added(assistant("b", "hi"), "a"))
    assert ids(record) == ["a", "b"]
    assert record.snapshot().bytes == len("one") + len("hi")


def test_audio_is_kept_as_its_transcript_once_it_comes() -> None:
    record = ConversationRecord()
    feed(record, added(user_audio("a")), event("conversation.item.done", item=user_audio("a")))
    plan = record.restore_plan()
    assert (plan.items, plan.untranscribed) == ((), 1), "no transcript yet: left out, counted"
    transcribed = event(
        "conversation.item.input_audio_transcription.completed",
        item_id="a",
        content_index=0,
        transcript="my name is Ada",
        usage={"type": "duration", "seconds": 1.0},
    )
    feed(record, transcribed, event("conversation.item.done", item=user_audio("a")))
    (item,) = record.restore_plan().items
    assert item.text == "my name is Ada", "a later done without a transcript keeps it"
    create = item.create_event("e1")
    assert create["item"] == {
        "id": "a",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "my name is Ada"}],
    }


def test_assistant_audio_is_restored_as_output_text() -> None:
    record = ConversationRecord()
    feed(record, added(assistant("b", "Hello Ada.")))
    (item,) = record.restore_plan().items
    assert item.create_event("e")["item"]["content"] == [
        {"type": "output_text", "text": "Hello Ada."}
    ]


def test_a_truncation_keeps_what_was_heard() -> None:
    record = ConversationRecord()
    one_second = base64.b64encode(bytes(48_000)).decode()  # PCM16 at 24 kHz
    feed(record, added(assistant("b", None, "in_progress")))
    for _ in range(2):
        feed(record, event("response.output_audio.delta", response_id="r", item_id="b",
                           output_index=0, content_index=0, delta=one_second))  # fmt: skip
    feed(record, event("conversation.item.done", item=assistant("b", "one two three four")))
    feed(
        record,
        event("conversation.item.truncated", item_id="b", content_index=0, audio_end_ms=1000),
    )
    (item,) = record.snapshot().items
    assert (item.text, item.truncated) == ("one two", True), "half the audio: half the words"


def test_a_deletion_removes_the_item() -> None:
    record = ConversationRecord()
    feed(record, added(user("a", "one")), added(user("b", "two"), "a"))
    feed(record, event("conversation.item.deleted", item_id="a"))
    assert ids(record) == ["b"]
    assert record.snapshot().bytes == 3


def test_a_response_cut_off_is_kept_incomplete_with_what_it_streamed() -> None:
    record = ConversationRecord()
    created = {"id": "r1", "object": "realtime.response", "status": "in_progress", "output": []}
    feed(record, event("response.created", response=created))
    feed(record, added(assistant("b", None, "in_progress")))
    for word in ("Hello", " Ada"):
        feed(record, event("response.output_audio_transcript.delta", response_id="r1",
                           item_id="b", output_index=0, content_index=0, delta=word))  # fmt: skip
    assert record.interrupt() == "r1"
    (item,) = record.snapshot().items
    assert (item.text, item.status) == ("Hello Ada", "incomplete")
    assert record.interrupt() is None, "nothing runs after the loss"


def test_a_thousand_items_stay_within_the_bound_oldest_first_pairs_together() -> None:
    folded: list[str] = []

    def summarize(summary: str | None, item: RecordedItem) -> str:
        folded.append(item.id)
        return f"{len(folded)} earlier items"

    record = ConversationRecord(RecordBound(max_items=100), summarize)
    previous = None
    for n in range(1000):
        item = (
            call(f"i{n}", f"c{n}")
            if n % 10 == 5
            else output(f"i{n}", f"c{n - 1}")
            if n % 10 == 6
            else user(f"i{n}", f"turn {n}")
        )
        feed(record, added(item, previous))
        previous = f"i{n}"
        assert len(record) <= 100
    snapshot = record.snapshot()
    assert ids(record) == [f"i{n}" for n in range(900, 1000)]
    assert snapshot.dropped == 900
    assert folded == [f"i{n}" for n in range(900)]
    plan = record.restore_plan()
    assert plan.summary is not None
    assert plan.summary.text is not None
    assert plan.summary.text.endswith("900 earlier items")
    events = plan.events(iter(f"e{n}" for n in range(1000)).__next__)
    assert events[0]["item"]["role"] == "system"
    assert len(events) == 101


def test_a_call_and_its_output_leave_together() -> None:
    record = ConversationRecord(RecordBound(max_items=3))
    feed(record, added(call("a", "c1")), added(output("b", "c1"), "a"), added(user("c", "x"), "b"))
    feed(record, added(user("d", "y"), "c"))
    assert ids(record) == ["c", "d"], "the call went, and its output with it"
    assert record.snapshot().dropped == 2


def test_the_byte_bound_counts_text() -> None:
    record = ConversationRecord(RecordBound(max_items=100, max_bytes=10))
    feed(
        record,
        added(user("a", "12345")),
        added(user("b", "67890"), "a"),
        added(user("c", "x"), "b"),
    )
    assert ids(record) == ["b", "c"]


def test_a_recycle_sends_only_what_came_after_its_first_restore() -> None:
    record = ConversationRecord()
    feed(record, added(user("a", "one")))
    first = record.restore_plan()
    feed(record, added(user("b", "two"), "a"))
    later = record.restore_plan(since=first.item_ids)
    assert [item.id for item in later.items] == ["b"]
