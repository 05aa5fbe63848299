"""The sans-IO session, driven synchronously; every emitted event is checked by ``Script``."""

from __future__ import annotations

import base64

import orjson
import pytest
from sim_support import Event, Script, b64, only_error, types

from rtbus.sim import SessionSettings, speech_like_pcm16

AUDIO_RESPONSE = [
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]


def user_text(text: str) -> Event:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def manual_mode(script: Script) -> None:
    update = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    script.send({"type": "session.update", "session": update})


def test_session_created_is_a_realistic_ga_session() -> None:
    session = Script().created["session"]
    assert isinstance(session, dict)
    assert session["type"] == "realtime"
    assert session["object"] == "realtime.session"
    assert str(session["id"]).startswith("sess_")
    assert session["model"] == "gpt-realtime"
    assert session["output_modalities"] == ["audio"]
    assert session["max_output_tokens"] == "inf"
    assert session["expires_at"] == 1_700_000_000 + 3600
    audio = session["audio"]
    assert isinstance(audio, dict)
    assert audio["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio["input"]["turn_detection"]["type"] == "server_vad"
    assert audio["output"]["voice"] == "marin"


def test_session_update_merges_and_fills_defaults() -> None:
    script = Script()
    update = {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {
            "output": {"voice": "cedar", "format": {"type": "audio/pcmu"}},
            "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}},
        },
    }
    [updated] = script.send({"type": "session.update", "session": update})
    session = updated["session"]
    assert isinstance(session, dict)
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcmu"},
        "voice": "cedar",
        "speed": 1.0,
    }
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "high",
        "create_response": True,
        "interrupt_response": True,
    }
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"audio": {"output": {"voice": "nope"}}}, "invalid_value", "session.audio.output.voice"),
        (
            {"audio": {"input": {"format": {"type": "audio/mp3"}}}},
            "invalid_value",
            "session.audio.input.format.type",
        ),
        ({"colour": "blue"}, "unknown_parameter", "session.colour"),
        ({"instructions": 42}, "invalid_type", "session.instructions"),
        (
            {"output_modalities": ["text", "audio"]},
            "array_above_max_length",
            "session.output_modalities",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
            "decimal_above_max_value",
            "session.audio.input.turn_detection.threshold",
        ),
        ({"tools": [{"type": "function"}]}, "missing_required_parameter", "session.tools[0].name"),
        ({"max_output_tokens": 0}, "integer_below_min_value", "session.max_output_tokens"),
    ],
)
def test_invalid_session_update_is_refused_and_changes_nothing(
    session: dict[str, object], code: str, param: str
) -> None:
    script = Script()
    before = script.session.session
    events = script.send(
        {"type": "session.update", "event_id": "evt_1", "session": {"type": "realtime", **session}}
    )
    error = only_error(events)
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_1")
    assert script.session.session == before


def test_invalid_value_message_lists_supported_values_like_the_real_service() -> None:
    update = {"type": "realtime", "audio": {"output": {"voice": "nope"}}}
    error = only_error(Script().send({"type": "session.update", "session": update}))
    assert error["message"] == (
        "Invalid value: 'nope'. Supported values are: 'alloy', 'ash', 'ballad', 'coral', "
        "'echo', 'sage', 'shimmer', 'verse', 'marin', and 'cedar'."
    )


def test_session_update_requires_session_type() -> None:
    error = only_error(Script().send({"type": "session.update", "session": {}}))
    assert (error["code"], error["param"]) == ("missing_required_parameter", "session.type")


def test_unknown_event_type_is_refused_with_the_supported_list() -> None:
    error = only_error(Script().send({"type": "session.delete", "event_id": "e9"}))
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "e9")
    assert "'response.create'" in str(error["message"])


def test_malformed_json_and_missing_type_are_errors() -> None:
    script = Script()
    assert only_error(script.send_raw(b"{nope"))["code"] == "invalid_json"
    assert only_error(script.send_raw(b"[1, 2]"))["code"] == "invalid_json"
    missing = only_error(script.send({"event_id": "x"}))
    assert (missing["code"], missing["param"]) == ("missing_required_parameter", "type")


def test_unknown_key_on_a_client_event_is_refused() -> None:
    error = only_error(Script().send({"type": "input_audio_buffer.clear", "extra": 1}))
    assert (error["code"], error["param"]) == ("unknown_parameter", "extra")


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "response.create", "extra": 1}, "unknown_parameter", "extra"),
        (
            {"type": "response.create", "response": {"extra": 1}},
            "unknown_parameter",
            "response.extra",
        ),
        (
            {
                "type": "response.create",
                "response": {"input": [{"type": "message", "role": "user", "content": [{"x": 1}]}]},
            },
            "unknown_parameter",
            "response.input[0].content[0].x",
        ),
        (
            {
                "type": "response.create",
                "response": {"tools": [{"type": "mcp", "server_label": "s"}]},
            },
            "invalid_value",
            "response.tools[0].type",
        ),
        (
            {"type": "session.update", "session": {"type": "transcription"}},
            "invalid_value",
            "session.type",
        ),
        (
            {"type": "response.create", "response": {"conversation": "elsewhere"}},
            "invalid_value",
            "response.conversation",
        ),
    ],
)
def test_the_protocols_refusals_come_back_in_the_servers_words(
    event: Event, code: str, param: str
) -> None:
    # The simulator checks with rtbus.protocol's models; the codes and params are the server's.
    error = only_error(Script().send({**event, "event_id": "evt_9"}))
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_9")


def test_range_and_type_messages_are_the_servers() -> None:
    update = {"type": "realtime", "max_output_tokens": 0, "instructions": "x"}
    error = only_error(Script().send({"type": "session.update", "session": update}))
    assert error["message"] == (
        "Invalid 'session.max_output_tokens': integer below minimum value. "
        "Expected a value >= 1, but got 0 instead."
    )
    error = only_error(Script().send({"type": "session.update", "session": {"type": 7}}))
    assert error["code"] == "invalid_value"
    update = {"type": "realtime", "audio": {"output": {"speed": "fast"}}}
    error = only_error(Script().send({"type": "session.update", "session": update}))
    assert error["message"] == (
        "Invalid type for 'session.audio.output.speed': expected a decimal, "
        "but got a string instead."
    )


def test_an_absent_optional_tag_is_read_as_the_protocol_reads_it() -> None:
    # The session works on the event as the models read it, so the tag the schema lets a
    # client leave out is there: a format with no type is PCM, a tool with no type a function.
    update = {
        "type": "realtime",
        "audio": {"input": {"format": {}}},
        "tools": [{"name": "lookup"}],
    }
    [updated] = Script().send({"type": "session.update", "session": update})
    session = updated["session"]
    assert isinstance(session, dict)
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["tools"] == [{"type": "function", "name": "lookup"}]


def test_response_create_takes_item_references_as_input() -> None:
    script = Script()
    [*_, done] = script.send(user_text("hi"))
    item_id = done["item"]["id"]  # type: ignore[index]
    reference = {"type": "item_reference", "id": item_id}
    events = script.send(
        {"type": "response.create", "response": {"conversation": "none", "input": [reference]}}
    )
    assert types(events)[0] == "response.created"


def test_append_rejects_invalid_base64() -> None:
    error = only_error(Script().send({"type": "input_audio_buffer.append", "audio": "***"}))
    assert (error["code"], error["param"]) == ("invalid_value", "audio")


def test_commit_of_an_empty_or_short_buffer_is_an_error() -> None:
    script = Script()
    error = only_error(script.send({"type": "input_audio_buffer.commit"}))
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert "only has 0.00ms of audio" in str(error["message"])
    script.send({"type": "input_audio_buffer.append", "audio": b64(bytes(2400))})  # 50 ms
    error = only_error(script.send({"type": "input_audio_buffer.commit"}))
    assert "only has 50.00ms of audio" in str(error["message"])


def test_manual_commit_adds_a_user_audio_item_without_responding() -> None:
    script = Script()
    manual_mode(script)
    assert (
        script.send({"type": "input_audio_buffer.append", "audio": b64(speech_like_pcm16(0.5))})
        == []
    )
    events = script.send({"type": "input_audio_buffer.commit"})
    assert types(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    item = events[1]["item"]
    assert isinstance(item, dict)
    assert item["role"] == "user"
    assert item["content"] == [{"type": "input_audio", "transcript": None}]
    assert events[0]["item_id"] == item["id"]


def test_clear_empties_the_buffer() -> None:
    script = Script()
    manual_mode(script)
    script.send({"type": "input_audio_buffer.append", "audio": b64(bytes(9600))})
    assert types(script.send({"type": "input_audio_buffer.clear"})) == [
        "input_audio_buffer.cleared"
    ]
    error = only_error(script.send({"type": "input_audio_buffer.commit"}))
    assert error["code"] == "input_audio_buffer_commit_empty"


def test_server_vad_detects_speech_then_silence_and_responds() -> None:
    script = Script()
    audio = speech_like_pcm16(1.0) + bytes(48_000 * 1)  # 1 s of speech, 1 s of silence
    events = script.send({"type": "input_audio_buffer.append", "audio": b64(audio)})
    assert types(events)[:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert types(events)[5:10] == AUDIO_RESPONSE
    assert types(events)[-1] == "response.done"
    started, stopped, committed = events[:3]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 0 <= int(str(started["audio_start_ms"])) <= 40
    assert 960 <= int(str(stopped["audio_end_ms"])) <= 1000


def test_server_vad_silence_duration_comes_from_the_config() -> None:
    script = Script()
    turn = {"type": "server_vad", "silence_duration_ms": 800, "create_response": False}
    script.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": turn}}},
        }
    )
    speech = script.send(
        {"type": "input_audio_buffer.append", "audio": b64(speech_like_pcm16(0.5))}
    )
    assert types(speech) == ["input_audio_buffer.speech_started"]
    short_pause = script.send({"type": "input_audio_buffer.append", "audio": b64(bytes(48 * 700))})
    assert short_pause == []
    rest = script.send({"type": "input_audio_buffer.append", "audio": b64(bytes(48 * 200))})
    assert types(rest) == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]


def test_quiet_audio_below_the_threshold_is_not_speech() -> None:
    script = Script()
    quiet = bytes(b"\x10\x00" * 24_000)  # amplitude 16: about -66 dBFS
    assert script.send({"type": "input_audio_buffer.append", "audio": b64(quiet)}) == []


def test_manual_mode_never_detects_speech() -> None:
    script = Script()
    manual_mode(script)
    audio = speech_like_pcm16(1.0) + bytes(48_000)
    assert script.send({"type": "input_audio_buffer.append", "audio": b64(audio)}) == []


def test_speech_during_a_response_interrupts_it() -> None:
    script = Script(SessionSettings(response_audio_seconds=5.0))
    script.session.receive(orjson.dumps({"type": "response.create"}))
    for _ in range(8):
        assert script.session.next_step() is not None
    frame = orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": b64(speech_like_pcm16(0.1))}
    )
    events = script.session.receive(frame)
    assert types(events)[0] == "input_audio_buffer.speech_started"
    done = events[-1]
    assert done["type"] == "response.done"
    assert done["response"]["status"] == "cancelled"  # type: ignore[index]
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}  # type: ignore[index]
    assert script.session.next_step() is None


def test_audio_response_streams_pcm16_deltas_and_a_transcript() -> None:
    script = Script(SessionSettings(response_audio_seconds=0.25, response_text="one two three"))
    events = script.send({"type": "response.create"})
    assert types(events)[:5] == AUDIO_RESPONSE
    deltas = [
        base64.b64decode(str(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta"
    ]
    assert [len(d) for d in deltas] == [4800, 4800, 2400]
    words = [e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"]
    assert "".join(map(str, words)) == "one two three"
    done = events[-1]["response"]
    assert isinstance(done, dict)
    assert done["status"] == "completed"
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": "one two three"}]
    assert done["usage"]["output_token_details"] == {"text_tokens": 3, "audio_tokens": 2}


def test_audio_response_ends_with_the_done_events_inner_to_outer() -> None:
    events = Script().send({"type": "response.create"})
    assert types(events)[-6:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]


def test_text_mode_streams_text_deltas() -> None:
    script = Script(SessionSettings(response_text="Hi there"))
    script.send(
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
    )
    events = script.send({"type": "response.create"})
    assert types(events) == [
        *AUDIO_RESPONSE,
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert events[-5]["text"] == "Hi there"


def test_response_level_modalities_and_out_of_band_conversation() -> None:
    script = Script()
    params = {"conversation": "none", "output_modalities": ["text"], "metadata": {"k": "v"}}
    events = script.send({"type": "response.create", "response": params})
    assert "conversation.item.added" not in types(events)
    done = events[-1]["response"]
    assert isinstance(done, dict)
    assert done["conversation_id"] is None
    assert done["metadata"] == {"k": "v"}
    assert done["output_modalities"] == ["text"]


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_g711_output_format_sends_8khz_bytes(fmt: str) -> None:
    script = Script(SessionSettings(response_audio_seconds=0.2))
    update = {"type": "realtime", "audio": {"output": {"format": {"type": fmt}}}}
    script.send({"type": "session.update", "session": update})
    events = script.send({"type": "response.create"})
    deltas = [
        base64.b64decode(str(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta"
    ]
    assert [len(d) for d in deltas] == [800, 800]


def test_function_call_when_the_user_names_the_tool() -> None:
    script = Script()
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        },
    }
    script.send({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
    script.send(user_text("Please call get_weather for Paris"))
    events = script.send({"type": "response.create"})
    assert "response.function_call_arguments.delta" in types(events)
    [done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done["name"] == "get_weather"
    assert orjson.loads(str(done["arguments"])) == {"city": "sim", "unit": "c"}
    call_id = done["call_id"]
    output = {"type": "function_call_output", "call_id": call_id, "output": '{"temp": 21}'}
    script.send({"type": "conversation.item.create", "item": output})
    answer = script.send({"type": "response.create"})
    assert "response.output_audio.delta" in types(answer)
    assert "response.function_call_arguments.done" not in types(answer)


def test_no_function_call_when_the_user_does_not_name_a_tool() -> None:
    script = Script()
    tool = {"type": "function", "name": "get_weather"}
    script.send({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
    script.send(user_text("hello"))
    assert "response.function_call_arguments.done" not in types(
        script.send({"type": "response.create"})
    )
    forced = {"tool_choice": {"type": "function", "name": "get_weather"}}
    events = script.send({"type": "response.create", "response": forced})
    assert "response.function_call_arguments.done" in types(events)


def test_second_response_create_while_active_is_refused() -> None:
    script = Script()
    first = script.session.receive(orjson.dumps({"type": "response.create"}))
    assert types(first) == ["response.created"]
    again = script.session.receive(orjson.dumps({"type": "response.create", "event_id": "e2"}))
    error = only_error(script._checked(again))
    assert error["code"] == "conversation_already_has_active_response"
    assert error["event_id"] == "e2"


def test_cancel_closes_what_is_open_then_reports_cancelled() -> None:
    script = Script(SessionSettings(response_audio_seconds=3.0))
    script.session.receive(orjson.dumps({"type": "response.create"}))
    for _ in range(7):
        script.session.next_step()
    events = script.send({"type": "response.cancel"})
    assert types(events) == [
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert events[1]["item"]["status"] == "incomplete"  # type: ignore[index]
    assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"  # type: ignore[index]
    assert script.session.next_step() is None


def test_cancel_right_after_create_is_well_formed() -> None:
    script = Script()
    script.session.receive(orjson.dumps({"type": "response.create"}))
    events = script.send({"type": "response.cancel"})
    assert types(events) == ["response.done"]


def test_cancel_without_a_response_is_an_error() -> None:
    error = only_error(Script().send({"type": "response.cancel"}))
    assert error["code"] == "response_cancel_not_active"


def test_items_honour_previous_item_id() -> None:
    script = Script()
    first = script.send(user_text("first"))[0]["item"]
    second = script.send(user_text("second"))[0]["item"]
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    between = {**user_text("between"), "previous_item_id": first["id"]}
    added = script.send(between)[0]
    assert added["previous_item_id"] == first["id"]
    root = script.send({**user_text("zeroth"), "previous_item_id": "root"})[0]
    assert root["previous_item_id"] is None
    error = only_error(script.send({**user_text("x"), "previous_item_id": "item_missing"}))
    assert (error["code"], error["param"]) == ("item_not_found", "previous_item_id")


def test_retrieve_returns_the_full_item_including_audio() -> None:
    script = Script()
    audio = b64(speech_like_pcm16(0.1))
    item = {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": audio}]}
    added = script.send({"type": "conversation.item.create", "item": {**item, "id": "item_mine"}})
    assert added[0]["item"]["content"] == [{"type": "input_audio", "transcript": None}]  # type: ignore[index]
    [retrieved] = script.send({"type": "conversation.item.retrieve", "item_id": "item_mine"})
    assert retrieved["item"]["content"][0]["audio"] == audio  # type: ignore[index]


def test_duplicate_item_id_is_refused() -> None:
    script = Script()
    item = {"type": "message", "role": "user", "id": "item_a", "content": []}
    script.send({"type": "conversation.item.create", "item": item})
    error = only_error(script.send({"type": "conversation.item.create", "item": item}))
    assert (error["code"], error["param"]) == ("item_already_exists", "item.id")


def test_delete_then_retrieve_is_not_found() -> None:
    script = Script()
    item_id = script.send(user_text("bye"))[0]["item"]["id"]  # type: ignore[index]
    assert script.send({"type": "conversation.item.delete", "item_id": item_id}) == [
        script.sent[-1]
    ]
    assert script.sent[-1]["type"] == "conversation.item.deleted"
    error = only_error(script.send({"type": "conversation.item.retrieve", "item_id": item_id}))
    assert (error["code"], error["param"]) == ("item_not_found", "item_id")
    error = only_error(script.send({"type": "conversation.item.delete", "item_id": item_id}))
    assert error["code"] == "item_not_found"


def test_truncate_an_assistant_audio_item() -> None:
    script = Script(SessionSettings(response_audio_seconds=1.0))
    events = script.send({"type": "response.create"})
    item_id = events[2]["item"]["id"]  # type: ignore[index]
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    [truncated] = script.send({**truncate, "audio_end_ms": 400})
    assert truncated == {**truncated, "type": "conversation.item.truncated", "audio_end_ms": 400}
    too_far = only_error(script.send({**truncate, "audio_end_ms": 1500}))
    assert too_far["message"] == "Audio content of 1000ms is already shorter than 1500ms"
    user_id = script.send(user_text("hi"))[0]["item"]["id"]  # type: ignore[index]
    wrong = only_error(script.send({**truncate, "item_id": user_id, "audio_end_ms": 0}))
    assert wrong["code"] == "unsupported_content_type"
    missing = only_error(script.send({**truncate, "item_id": "item_x", "audio_end_ms": 0}))
    assert missing["code"] == "item_not_found"


def test_output_audio_buffer_clear_is_webrtc_only() -> None:
    error = only_error(Script().send({"type": "output_audio_buffer.clear", "event_id": "c1"}))
    assert error["event_id"] == "c1"
    assert "WebRTC" in str(error["message"])


def test_expiry_error_has_the_real_message() -> None:
    script = Script()
    expired = script.session.expire()
    script._checked([expired])
    assert expired["error"] == {
        "type": "invalid_request_error",
        "code": "session_expired",
        "message": "Your session hit the maximum duration of 60 minutes.",
        "param": None,
        "event_id": None,
    }


def test_a_seeded_session_is_reproducible() -> None:
    assert Script(seed=3).created == Script(seed=3).created
    assert Script(seed=3).created != Script(seed=4).created


def test_manual_commit_mid_utterance_does_not_reuse_the_item_id() -> None:
    script = Script()
    turn = {"type": "server_vad", "create_response": False}
    update = {"type": "realtime", "audio": {"input": {"turn_detection": turn}}}
    script.send({"type": "session.update", "session": update})
    started = script.send(
        {"type": "input_audio_buffer.append", "audio": b64(speech_like_pcm16(0.3))}
    )
    committed = script.send({"type": "input_audio_buffer.commit"})[0]
    assert committed["item_id"] == started[0]["item_id"]
    later = script.send({"type": "input_audio_buffer.append", "audio": b64(speech_like_pcm16(0.3))})
    assert types(later) == ["input_audio_buffer.speech_started"]
    assert later[0]["item_id"] != committed["item_id"]


def test_truncate_bounds_use_the_audio_actually_sent_before_a_cancel() -> None:
    script = Script(SessionSettings(response_audio_seconds=10.0))
    script.session.receive(orjson.dumps({"type": "response.create"}))
    steps = [script.session.next_step() for _ in range(7)]  # up to the second audio delta
    item_id = next(s.event["item"]["id"] for s in steps if s and "item" in s.event)  # type: ignore[index]
    script.send({"type": "response.cancel"})
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    error = only_error(script.send({**truncate, "audio_end_ms": 500}))
    assert error["message"] == "Audio content of 200ms is already shorter than 500ms"
    assert types(script.send({**truncate, "audio_end_ms": 200})) == ["conversation.item.truncated"]


def test_input_transcription_names_what_the_user_said() -> None:
    script = Script(SessionSettings(input_transcript="please get_weather now"))
    tool = {"type": "function", "name": "get_weather"}
    update = {
        "type": "realtime",
        "tools": [tool],
        "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
    }
    script.send({"type": "session.update", "session": update})
    audio = speech_like_pcm16(1.0) + bytes(48_000)
    events = script.send({"type": "input_audio_buffer.append", "audio": b64(audio)})
    [completed] = [
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    assert completed["transcript"] == "please get_weather now"
    assert completed["usage"] == {"type": "duration", "seconds": 2.0}
    assert "response.function_call_arguments.done" in types(events)


#: Every server event type the simulator emits over WebSocket.
EMITTED = {
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.deleted",
    "conversation.item.truncated",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_audio.delta",
    "response.output_audio_transcript.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
}


def test_a_scripted_conversation_covers_every_event_kind() -> None:
    """Each event ``Script`` sees is validated; this drives the session through all of them."""
    script = Script()
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    transcription = {"model": "gpt-4o-transcribe"}
    update = {
        "type": "realtime",
        "tools": [tool],
        "audio": {"input": {"transcription": transcription}},
    }
    script.send({"type": "session.update", "session": update})
    script.send(
        {"type": "input_audio_buffer.append", "audio": b64(speech_like_pcm16(0.6) + bytes(48_000))}
    )
    script.send({"type": "input_audio_buffer.clear"})
    script.send(user_text("please lookup the answer"))
    script.send({"type": "response.create"})
    answer = script.send({"type": "response.create", "response": {"tool_choice": "none"}})
    item_id = answer[2]["item"]["id"]  # type: ignore[index]
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    script.send({**truncate, "audio_end_ms": 100})
    script.send({"type": "conversation.item.retrieve", "item_id": item_id})
    script.send({"type": "conversation.item.delete", "item_id": item_id})
    script.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    script.send({"type": "response.cancel"})
    assert set(types(script.sent)) == EMITTED
