"""How ``rtbus tail`` shows an envelope: a readable line, or a JSON line for jq."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
import pytest

from rtbus.actors import ActorExited, ExitReason
from rtbus.bus import Envelope, Undecoded
from rtbus.cli._tail_format import format_json, format_line, styled_line
from rtbus.protocol import UnknownEvent, decode_server_event, encode
from rtbus.session import SessionReconnected


def server_envelope(frame: Mapping[str, object], seq: int = 7, raw: bool = True) -> Envelope:
    data = orjson.dumps(frame)
    event = decode_server_event(data)
    return Envelope("demo-1", seq, event.type, event, 12.5, data if raw else None)


def delta(type: str, text: str) -> dict[str, object]:
    ids = {"event_id": "e1", "response_id": "r", "item_id": "i", "output_index": 0}
    return {"type": type, **ids, "content_index": 0, "delta": text}


@pytest.mark.parametrize("size", [4800, 4799, 4798])
def test_an_audio_delta_is_shown_by_its_size(size: int) -> None:
    audio = base64.b64encode(bytes(size)).decode()
    envelope = server_envelope(delta("response.output_audio.delta", audio))
    line = format_line(envelope)
    assert line == f"demo-1 #7 response.output_audio.delta {size} bytes"


def test_a_text_delta_is_shown_and_a_long_one_elided() -> None:
    short = server_envelope(delta("response.output_audio_transcript.delta", "Hello there"))
    assert format_line(short) == "demo-1 #7 response.output_audio_transcript.delta 'Hello there'"
    long = format_line(server_envelope(delta("response.output_text.delta", "x" * 500)))
    assert long.endswith("x…'")
    assert len(long) < 150


def test_an_error_and_a_response() -> None:
    error = {
        "type": "error",
        "event_id": "e2",
        "error": {"type": "invalid_request_error", "code": "bad", "message": "No.", "param": None},
    }
    assert format_line(server_envelope(error)) == "demo-1 #7 error bad: No."
    done = {
        "type": "response.done",
        "event_id": "e3",
        "response": {"id": "r", "object": "realtime.response", "status": "cancelled", "output": []},
    }
    assert format_line(server_envelope(done)) == "demo-1 #7 response.done status=cancelled"


def test_lifecycle_events_show_their_fields() -> None:
    event = SessionReconnected(reason="closed with 1011", attempt=2, upstream_session_id="sess_1")
    fields = format_line(Envelope("demo-1", 3, event.type, event, 1.0)).split(" ", 3)[3]
    assert "reason='closed with 1011'" in fields
    assert "attempt=2" in fields
    exited = ActorExited("root/sessions", "demo-1", 4.0, ExitReason.SHUTDOWN)
    line = format_line(Envelope("root/sessions", 9, exited.type, exited, 4.0))
    fields = "supervisor=root/sessions child=demo-1 reason=shutdown"
    assert line == f"root/sessions #9 rtbus.actor.exited {fields}"
    # A lifecycle type this client does not know yet arrives as an UnknownEvent.
    unknown = UnknownEvent(type="rtbus.session.newer", payload={"type": "x", "reason": "bye"})
    assert format_line(Envelope("s", 1, unknown.type, unknown, 1.0)).endswith("reason=bye")


def test_a_raw_event_is_shown_by_its_size() -> None:
    raw = b'{"type":"session.created"}'
    envelope = Envelope("demo-1", 1, "session.created", Undecoded("session.created"), 1.0, raw)
    assert format_line(envelope) == "demo-1 #1 session.created (26 bytes, raw)"


def test_json_splices_the_frame_as_the_server_sent_it() -> None:
    frame = delta("response.output_audio.delta", base64.b64encode(bytes(48)).decode())
    envelope = server_envelope(frame)
    line = format_json(envelope)
    assert envelope.raw is not None
    assert envelope.raw in line
    assert orjson.loads(line) == {
        "session_id": "demo-1",
        "seq": 7,
        "type": "response.output_audio.delta",
        "received_at": 12.5,
        "event": frame,
    }
    raw_only = Envelope("demo-1", 7, envelope.type, Undecoded(envelope.type), 12.5, envelope.raw)
    assert format_json(raw_only) == line


def test_json_encodes_an_event_without_its_frame() -> None:
    envelope = server_envelope(delta("response.output_text.delta", "hi"), raw=False)
    assert orjson.loads(format_json(envelope))["event"] == orjson.loads(encode(envelope.event))
    event = SessionReconnected(reason="recycled", attempt=1, upstream_session_id="sess_2")
    loaded = orjson.loads(format_json(Envelope("demo-1", 4, event.type, event, 2.0)))
    assert loaded["event"]["reason"] == "recycled"
    assert loaded["event"]["upstream_session_id"] == "sess_2"


def test_a_function_call_shows_its_name_and_arguments() -> None:
    call = {
        "type": "response.function_call_arguments.done",
        "event_id": "e4",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    line = format_line(server_envelope(call))
    assert line == 'demo-1 #7 response.function_call_arguments.done get_weather({"city":"Paris"})'


def test_transcripts_read_as_what_was_said() -> None:
    ids = {"event_id": "e5", "item_id": "i", "content_index": 0}
    said = {
        "type": "response.output_audio_transcript.done",
        **ids,
        "response_id": "r",
        "output_index": 0,
        "transcript": "It is sunny in Paris.",
    }
    heard = {
        "type": "conversation.item.input_audio_transcription.completed",
        **ids,
        "transcript": "What's the weather?",
        "usage": {"type": "duration", "seconds": 1.0},
    }
    assert format_line(server_envelope(said)).endswith(" assistant: It is sunny in Paris.")
    assert format_line(server_envelope(heard)).endswith(" user: What's the weather?")


def test_the_line_leads_with_the_wall_clock_time_and_is_coloured_by_kind() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000).timestamp()
    error = {
        "type": "error",
        "event_id": "e2",
        "error": {"type": "invalid_request_error", "code": "bad", "message": "No.", "param": None},
    }
    styled = styled_line(server_envelope(error), at)
    assert styled.plain == "03:04:05.678 demo-1 #7 error bad: No."
    styles = {styled.plain[span.start : span.end]: str(span.style) for span in styled.spans}
    assert styles["error"] == "bold red"
    assert styles["03:04:05.678 "] == "dim"


def test_json_gives_received_at_as_wall_clock_time() -> None:
    envelope = server_envelope(delta("response.output_text.delta", "hi"))
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp()
    assert orjson.loads(format_json(envelope, at))["received_at"] == "2026-01-02T03:04:05.678Z"
