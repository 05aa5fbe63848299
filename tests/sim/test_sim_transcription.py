"""A transcription session (``intent=transcription``): input audio in, transcripts out, and
nothing that makes a response."""

from __future__ import annotations

import pytest
from sim_support import Event, Script, b64, only_error, types

from rtbus.sim import SessionSettings, speech_like_pcm16
from rtbus.sim._handshake import Admission, Rejection, admit

TRANSCRIPT = "book a table for two"


def transcribing() -> Script:
    return Script(SessionSettings(input_transcript=TRANSCRIPT), transcription=True)


def test_session_created_is_a_transcription_session() -> None:
    session = transcribing().created["session"]
    assert isinstance(session, dict)
    assert (session["type"], session["object"]) == (
        "transcription",
        "realtime.transcription_session",
    )
    assert "model" not in session
    assert "output_modalities" not in session
    audio_input = session["audio"]["input"]
    assert audio_input["transcription"]["model"] == "gpt-4o-transcribe"
    assert "create_response" not in audio_input["turn_detection"]


def test_speech_is_committed_and_transcribed_and_never_answered() -> None:
    script = transcribing()
    audio = speech_like_pcm16(1.0) + bytes(48_000)
    events = script.send({"type": "input_audio_buffer.append", "audio": b64(audio)})
    assert types(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    committed, delta, completed = events[2:]
    assert delta["delta"] == completed["transcript"] == TRANSCRIPT
    assert committed["item_id"] == delta["item_id"] == completed["item_id"]
    assert completed["usage"] == {"type": "duration", "seconds": 2.0}
    assert not script.session.responding


def test_manual_commits_chain_their_items() -> None:
    script = transcribing()
    update = {"type": "transcription", "audio": {"input": {"turn_detection": None}}}
    assert types(script.send({"type": "session.update", "session": update})) == ["session.updated"]
    append: Event = {"type": "input_audio_buffer.append", "audio": b64(bytes(9_600))}
    first = second = None
    for _ in range(2):
        assert script.send(append) == []
        committed = script.send({"type": "input_audio_buffer.commit"})[0]
        first, second = second, committed
    assert first is not None
    assert second is not None
    assert second["previous_item_id"] == first["item_id"]


def test_transcription_turned_off_commits_without_a_transcript() -> None:
    script = transcribing()
    update = {
        "type": "transcription",
        "audio": {"input": {"turn_detection": None, "transcription": None}},
    }
    script.send({"type": "session.update", "session": update})
    script.send({"type": "input_audio_buffer.append", "audio": b64(bytes(9_600))})
    assert types(script.send({"type": "input_audio_buffer.commit"})) == [
        "input_audio_buffer.committed"
    ]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "response.create"},
        {"type": "response.cancel"},
        {"type": "conversation.item.retrieve", "item_id": "item_1"},
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        },
    ],
)
def test_what_makes_or_edits_a_conversation_is_refused(event: Event) -> None:
    error = only_error(transcribing().send({**event, "event_id": "evt_3"}))
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "evt_3")
    assert "transcription session" in str(error["message"])


def test_a_session_keeps_its_kind() -> None:
    realtime: Event = {"type": "session.update", "session": {"type": "realtime"}}
    error = only_error(transcribing().send(realtime))
    assert error["param"] == "session.type"
    assert error["message"] == (
        "Passing a realtime session update event to a transcription session is not allowed."
    )
    transcription: Event = {"type": "session.update", "session": {"type": "transcription"}}
    assert only_error(Script().send(transcription))["param"] == "session.type"


def test_the_handshake_takes_intent_transcription_without_a_model() -> None:
    admitted = admit("/v1/realtime?intent=transcription", [], None)
    assert admitted == Admission("", transcription=True)
    refused = admit("/v1/realtime?intent=translation", [], None)
    assert isinstance(refused, Rejection)
    assert refused.status == 400
    assert b"'transcription'" in refused.body
    missing = admit("/v1/realtime", [], None)
    assert isinstance(missing, Rejection)
    assert b"'model'" in missing.body


def test_a_new_turn_detection_type_starts_from_defaults_that_never_respond() -> None:
    script = transcribing()
    for kind in ("semantic_vad", "server_vad"):
        update = {"type": "transcription", "audio": {"input": {"turn_detection": {"type": kind}}}}
        [updated] = script.send({"type": "session.update", "session": update})
        turn = updated["session"]["audio"]["input"]["turn_detection"]  # type: ignore[index]
        assert turn["type"] == kind
        assert "create_response" not in turn
        assert "interrupt_response" not in turn


@pytest.mark.parametrize("named", ["model=gpt-realtime", "call_id=rtc_1"])
def test_a_transcription_intent_with_another_target_is_refused(named: str) -> None:
    refused = admit(f"/v1/realtime?intent=transcription&{named}", [], None)
    assert isinstance(refused, Rejection)
    assert refused.status == 400
    assert named.partition("=")[0].encode() in refused.body
