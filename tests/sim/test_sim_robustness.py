"""Whatever a client sends, the session answers with conforming events and never raises."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_support import Script, b64

from rtbus.protocol import CLIENT_EVENT_TYPES
from rtbus.sim import SessionSettings, speech_like_pcm16

json_scalars = (
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(-2, 2) | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "event_id",
        "session",
        "audio",
        "item",
        "item_id",
        "previous_item_id",
        "content_index",
        "audio_end_ms",
        "response",
        "response_id",
        "type",
        "voice",
    ]
)
client_events = st.builds(
    lambda event_type, fields: {**fields, "type": event_type},
    st.sampled_from([*sorted(CLIENT_EVENT_TYPES), "nonsense"]),
    st.dictionaries(field_names, json_values, max_size=4),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(client_events, max_size=6))
def test_any_sequence_of_client_events_gets_conforming_answers(
    events: list[dict[str, object]],
) -> None:
    script = Script()
    for event in events:
        script.send(event)  # Script validates every emitted event


SPEECH = b64(speech_like_pcm16(0.3) + bytes(48 * 600))
WELL_FORMED: list[dict[str, object]] = [
    {"type": "response.create"},
    {"type": "response.create", "response": {"output_modalities": ["text"]}},
    {"type": "response.cancel"},
    {"type": "input_audio_buffer.append", "audio": SPEECH},
    {"type": "input_audio_buffer.commit"},
    {"type": "input_audio_buffer.clear"},
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "f"}],
        },
    },
    {
        "type": "session.update",
        "session": {"type": "realtime", "tools": [{"type": "function", "name": "f"}]},
    },
    {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    },
]
actions = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(WELL_FORMED) | client_events),
    st.tuples(st.just("pull"), st.integers(0, 12)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, max_size=12))
def test_interleaved_events_and_partial_responses_stay_well_formed(
    steps: list[tuple[str, object]],
) -> None:
    """Cancels and barge-ins land mid-response; every ``added`` still gets its ``done``."""
    script = Script(SessionSettings(response_audio_seconds=0.5))
    session = script.session
    for action, argument in steps:
        if action == "send":
            script._checked(session.receive(orjson.dumps(argument)))
        else:
            assert isinstance(argument, int)
            pulled = [session.next_step() for _ in range(argument)]
            script._checked([step.event for step in pulled if step is not None])
    script.send({"type": "response.cancel"})
    kinds = [event["type"] for event in script.sent]
    assert kinds.count("response.created") == kinds.count("response.done")
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done")
    assert kinds.count("response.content_part.added") == kinds.count("response.content_part.done")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_get_an_error_or_an_answer(frame: bytes) -> None:
    Script().send_raw(frame)


def test_a_valid_looking_session_update_with_every_field_is_accepted() -> None:
    session = {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "x",
        "output_modalities": ["text"],
        "max_output_tokens": 100,
        "include": ["item.input_audio_transcription.logprobs"],
        "parallel_tool_calls": False,
        "prompt": {"id": "pmpt_1", "version": "2", "variables": {"a": "b"}},
        "reasoning": {"effort": "low"},
        "tool_choice": "required",
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {}}],
        "tracing": {"workflow_name": "w", "group_id": "g", "metadata": {}},
        "truncation": {"type": "retention_ratio", "retention_ratio": 0.5},
        "audio": {
            "input": {
                "format": {"type": "audio/pcma"},
                "noise_reduction": {"type": "near_field"},
                "transcription": {"model": "whisper-1", "language": "en", "prompt": "p"},
                "turn_detection": None,
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": {"id": "v1"},
                "speed": 1.2,
            },
        },
    }
    [updated] = Script().send({"type": "session.update", "session": session})
    assert updated["type"] == "session.updated"
    assert orjson.loads(orjson.dumps(updated))["session"]["audio"]["output"]["voice"] == {
        "id": "v1"
    }
