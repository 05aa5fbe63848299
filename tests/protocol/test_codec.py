"""The codec's promises, one at a time: forward compatibility, strictness, paths, null, aliases."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rtbus.protocol import _models as m
from rtbus.protocol._codec import (
    CLIENT_EVENT_CLASSES,
    PREVIEW_EVENT_ALIASES,
    SERVER_EVENT_CLASSES,
    UnknownEvent,
    client_event_from_dict,
    decode_client_event,
    decode_server_event,
    encode,
    server_event_from_dict,
)
from rtbus.protocol._errors import ProtocolError
from rtbus.protocol._models_base import JsonValue
from rtbus.protocol._null import NULL

AUDIO_DELTA: dict[str, Any] = {
    "type": "response.output_audio.delta",
    "event_id": "event_1",
    "response_id": "resp_1",
    "item_id": "item_1",
    "output_index": 0,
    "content_index": 0,
    "delta": "AAAA",
}


def _response_done(output: list[Any]) -> dict[str, Any]:
    return {
        "type": "response.done",
        "event_id": "event_2",
        "response": {"id": "resp_1", "status": "completed", "output": output},
    }


def _assistant(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "id": "item_1", "content": list(content)}


def _round_trip(payload: dict[str, Any]) -> Any:
    event = decode_server_event(orjson.dumps(payload))
    assert orjson.loads(encode(event)) == payload
    return event


def test_decode_gives_the_typed_class() -> None:
    event = decode_server_event(orjson.dumps(AUDIO_DELTA))
    assert event == m.ResponseOutputAudioDeltaEvent(
        event_id="event_1",
        response_id="resp_1",
        item_id="item_1",
        output_index=0,
        content_index=0,
        delta="AAAA",
    )
    assert isinstance(event, m.ResponseOutputAudioDeltaEvent)


def test_str_and_bytes_frames_decode_alike() -> None:
    text = orjson.dumps(AUDIO_DELTA).decode()
    assert decode_server_event(text) == decode_server_event(text.encode())


def test_nested_union_picks_the_message_by_role() -> None:
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    event = _round_trip(
        {"type": "conversation.item.added", "event_id": "e", "item": user, "previous_item_id": "p"}
    )
    assert isinstance(event.item, m.ConversationItemUserMessage)
    assert event.item.content == (m.UserMessageContent(type="input_text", text="hi"),)


def test_unknown_event_round_trips_whole() -> None:
    payload: dict[str, JsonValue] = {
        "type": "response.hologram.delta",
        "event_id": "e",
        "nested": {"a": [1, None]},
    }
    event = decode_server_event(orjson.dumps(payload))
    assert event == UnknownEvent("response.hologram.delta", payload)
    assert orjson.loads(encode(event)) == payload


def test_unknown_event_built_by_hand_still_encodes_its_type() -> None:
    assert orjson.loads(encode(UnknownEvent("x.y", {"a": 1}))) == {"a": 1, "type": "x.y"}


def test_unknown_top_level_field_is_kept_and_re_encoded() -> None:
    event = _round_trip({**AUDIO_DELTA, "obfuscation": "zz", "z_new": {"k": [1, 2]}})
    assert event._extra == {"obfuscation": "zz", "z_new": {"k": [1, 2]}}
    assert event != decode_server_event(orjson.dumps(AUDIO_DELTA))


def test_unknown_nested_field_is_kept_and_re_encoded() -> None:
    text = {"type": "output_text", "text": "hi", "annotations": [{"kind": "cite"}]}
    event = _round_trip(_response_done([_assistant(text)]))
    part = event.response.output[0].content[0]
    assert part.text == "hi"
    assert part._extra == {"annotations": [{"kind": "cite"}]}


def test_unknown_field_is_not_in_repr() -> None:
    event = decode_server_event(orjson.dumps({**AUDIO_DELTA, "secret_ish": "s3"}))
    assert "secret_ish" not in repr(event)


@pytest.mark.parametrize(
    ("payload", "message", "path"),
    [
        ({k: v for k, v in AUDIO_DELTA.items() if k != "delta"}, "missing required field", "delta"),
        ({**AUDIO_DELTA, "output_index": "0"}, "expected an integer, got a string", "output_index"),
        (
            {**AUDIO_DELTA, "output_index": True},
            "expected an integer, got a boolean",
            "output_index",
        ),
        ({**AUDIO_DELTA, "output_index": 1.0}, "expected an integer, got a number", "output_index"),
        ({**AUDIO_DELTA, "delta": 7}, "expected a string, got an integer", "delta"),
        ({**AUDIO_DELTA, "delta": None}, "expected a string, got null", "delta"),
        ({**AUDIO_DELTA, "type": None}, "has no 'type'", None),
    ],
)
def test_field_errors_name_the_field(payload: dict[str, Any], message: str, path: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        decode_server_event(orjson.dumps(payload))
    assert caught.value.path == path


def test_error_path_reaches_into_lists_and_unions() -> None:
    bad = _response_done([_assistant({"type": "output_text"}, {"type": "bogus"})])
    with pytest.raises(ProtocolError) as caught:
        decode_server_event(orjson.dumps(bad))
    assert caught.value.event_type == "response.done"
    assert caught.value.path == "response.output[0].content[1].type"
    assert str(caught.value) == (
        "'bogus' is not one of 'output_text', 'output_audio' in 'response.done' "
        "at 'response.output[0].content[1].type'"
    )


def test_error_path_for_a_wrong_nested_type() -> None:
    bad = _response_done([{"type": "function_call", "name": "f", "arguments": 5}])
    with pytest.raises(ProtocolError, match="expected a string") as caught:
        decode_server_event(orjson.dumps(bad))
    assert caught.value.path == "response.output[0].arguments"


def test_unknown_nested_tag_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="'telepathy' is not one of") as caught:
        decode_server_event(orjson.dumps(_response_done([{"type": "telepathy"}])))
    assert caught.value.path == "response.output[0].type"


def test_message_with_unknown_role_is_an_error() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_server_event(orjson.dumps(_response_done([{"type": "message", "role": "god"}])))
    assert caught.value.path == "response.output[0].role"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b'"response.done"', "must be a JSON object, not a string"),
        (b"{}", "has no 'type'"),
        (b'{"type": 5}', "'type' that is not a string"),
        (b'{"type": ["error"]}', "'type' that is not a string"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_frames_that_are_not_events(frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_server_event(frame)


def test_a_frame_of_the_wrong_python_type() -> None:
    with pytest.raises(ProtocolError, match="must be bytes or str, not int"):
        decode_server_event(5)  # type: ignore[arg-type]


def test_messages_never_echo_values() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_server_event(orjson.dumps({**AUDIO_DELTA, "delta": ["sk-SECRET"]}))
    assert "SECRET" not in str(caught.value)


def test_float_fields_take_json_integers() -> None:
    event = _round_trip(
        {"type": "rate_limits.updated", "event_id": "e", "rate_limits": [{"reset_seconds": 3}]}
    )
    assert event.rate_limits[0].reset_seconds == 3


def test_null_and_absent_both_decode_to_none_and_encode_omits_none() -> None:
    absent = decode_server_event(orjson.dumps(_response_done([])))
    response: JsonValue = {"id": "resp_1", "status": "completed", "output": [], "usage": None}
    null = decode_server_event(orjson.dumps({**_response_done([]), "response": response}))
    assert absent == null
    assert isinstance(null, m.ResponseDoneEvent)
    assert null.response.usage is None
    assert "usage" not in orjson.loads(encode(null))["response"]


SESSION_NULLS: dict[str, Any] = {
    "type": "session.updated",
    "event_id": "e",
    "session": {
        "type": "realtime",
        "audio": {"input": {"turn_detection": None, "noise_reduction": None}},
        "tracing": None,
    },
}


def test_meaningful_null_decodes_to_null_and_round_trips() -> None:
    event = _round_trip(SESSION_NULLS)
    assert event.session.audio.input.turn_detection is NULL
    assert event.session.audio.input.noise_reduction is NULL
    assert event.session.audio.input.transcription is None
    assert event.session.tracing is NULL


def test_client_can_send_null_to_switch_vad_off() -> None:
    update = m.SessionUpdateEvent(
        session=m.SessionConfig(audio=m.AudioConfig(input=m.AudioInputConfig(turn_detection=NULL)))
    )
    assert orjson.loads(encode(update)) == {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    }


@pytest.mark.parametrize(("preview", "ga"), sorted(PREVIEW_EVENT_ALIASES.items()))
def test_preview_names_decode_to_ga_classes(preview: str, ga: str) -> None:
    payload = {**AUDIO_DELTA, "type": preview, "text": "t", "transcript": "t"}
    event = decode_server_event(orjson.dumps(payload))
    assert type(event) is SERVER_EVENT_CLASSES[ga]
    assert event.type == ga
    assert orjson.loads(encode(event))["type"] == ga


def test_preview_name_errors_report_the_ga_type() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_server_event(orjson.dumps({"type": "response.audio.delta"}))
    assert caught.value.event_type == "response.audio.delta"


def test_from_dict_accepts_nested_instances() -> None:
    session = m.SessionConfig(instructions="be brief")
    event = client_event_from_dict({"type": "session.update", "session": session})
    assert event == m.SessionUpdateEvent(session=session)


def test_from_dict_accepts_tuples_for_arrays() -> None:
    item = {"type": "message", "role": "user", "content": ({"type": "input_text", "text": "hi"},)}
    event = client_event_from_dict({"type": "conversation.item.create", "item": item})
    assert isinstance(event, m.ConversationItemCreateEvent)
    assert isinstance(event.item, m.ConversationItemUserMessage)


def test_from_dict_rejects_what_decode_rejects() -> None:
    with pytest.raises(ProtocolError, match="expected a string") as caught:
        client_event_from_dict({"type": "input_audio_buffer.append", "audio": b"raw"})
    assert (caught.value.event_type, caught.value.path) == ("input_audio_buffer.append", "audio")
    with pytest.raises(ProtocolError, match="not a string"):
        server_event_from_dict("response.done")


def test_client_events_decode_on_the_client_table() -> None:
    frame = b'{"type": "response.create", "response": {"output_modalities": ["text"]}}'
    event = decode_client_event(frame)
    assert event == m.ResponseCreateEvent(
        response=m.ResponseCreateParams(output_modalities=("text",))
    )
    assert isinstance(decode_server_event(frame), UnknownEvent)
    assert set(CLIENT_EVENT_CLASSES) & set(SERVER_EVENT_CLASSES) == set()


def test_encode_puts_type_first_and_leaves_out_defaults() -> None:
    encoded = encode(m.InputAudioBufferCommitEvent())
    assert encoded == b'{"type":"input_audio_buffer.commit"}'


def test_encode_refuses_what_is_not_a_model() -> None:
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode(object())


def test_encode_refuses_a_non_json_value() -> None:
    tool = m.FunctionTool(name="f", parameters={"default": {1, 2}})  # type: ignore[dict-item]
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode(m.SessionUpdateEvent(session=m.SessionConfig(tools=(tool,))))


def test_encode_refuses_a_plain_dict() -> None:
    # Plain dicts go through client_event_from_dict first, which checks them.
    with pytest.raises(ProtocolError, match="not a Realtime model"):
        encode({"type": "response.cancel"})


def test_a_union_the_compiler_cannot_read_fails_at_import() -> None:
    from collections.abc import Mapping

    from rtbus.protocol._models_compile import _union_function

    with pytest.raises(TypeError, match="no structure rule"):
        _union_function((int, Mapping[str, str]), lambda t: lambda v: v)


def test_decoded_instances_are_ordinary_frozen_instances() -> None:
    # The decoder fills instances through a twin class; nothing of that may show afterwards.
    import copy
    import pickle

    import attrs

    decoded = decode_server_event(orjson.dumps(AUDIO_DELTA))
    built = m.ResponseOutputAudioDeltaEvent(**{k: v for k, v in AUDIO_DELTA.items() if k != "type"})
    assert type(decoded) is m.ResponseOutputAudioDeltaEvent
    assert (decoded == built, hash(decoded) == hash(built)) == (True, True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        decoded.delta = "BBBB"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(decoded)) == decoded
    assert copy.deepcopy(decoded) == decoded
    assert attrs.evolve(decoded, delta="BBBB").delta == "BBBB"
