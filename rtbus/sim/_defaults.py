"""What the simulated server fills in: a new session, and turn detection of a named type.

What a client may send is not written here: the simulator checks client events with
``rtbus.protocol``'s own models (see ``_refusals``), so there is one schema.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "TRANSCRIPTION_TURN_DETECTION_DEFAULTS",
    "TURN_DETECTION_DEFAULTS",
    "default_session",
    "default_transcription_session",
]

#: What the server fills in when a client names a turn detection type (the real defaults).
TURN_DETECTION_DEFAULTS: Final[dict[str, dict[str, object]]] = {
    "server_vad": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    },
    "semantic_vad": {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    },
}

#: The same in a transcription session, which never responds.
TRANSCRIPTION_TURN_DETECTION_DEFAULTS: Final[dict[str, dict[str, object]]] = {
    name: {k: v for k, v in turn.items() if k not in ("create_response", "interrupt_response")}
    for name, turn in TURN_DETECTION_DEFAULTS.items()
}

DEFAULT_INSTRUCTIONS: Final = (
    "You are a helpful, witty, and friendly AI. Act like a human, but remember that you aren't "
    "a human and that you can't do human things in the real world. Your voice and personality "
    "should be warm and engaging, with a lively and playful tone."
)


def default_session(
    *, session_id: str, model: str, voice: str, expires_at: int
) -> dict[str, object]:
    """The session a new connection starts with, as the real ``session.created`` shows it."""
    pcm = {"type": "audio/pcm", "rate": 24_000}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(TURN_DETECTION_DEFAULTS["server_vad"]),
            },
            "output": {"format": dict(pcm), "voice": voice, "speed": 1.0},
        },
        "include": None,
    }


def default_transcription_session(*, session_id: str, expires_at: int) -> dict[str, object]:
    """The session an ``intent=transcription`` connection starts with: input audio only,
    transcribed, and turn detection that commits the buffer but never starts a response."""
    turn = dict(TRANSCRIPTION_TURN_DETECTION_DEFAULTS["server_vad"])
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24_000},
                "transcription": {"model": "gpt-4o-transcribe", "language": None, "prompt": ""},
                "noise_reduction": None,
                "turn_detection": turn,
            },
        },
        "include": None,
    }
