"""The shapes the simulator accepts from clients and the defaults it serves, as data.

Every client event type maps to an ``Obj`` schema (``CLIENT_EVENT_SCHEMAS``); the session
config and the conversation items are written once and shared. The shapes follow the GA
Realtime protocol as the ``openai`` package (3.54.0) types it; where that package allows a
free-form value (a JSON Schema, metadata) the schema is ``AnyJSON``.

The simulator implements function tools only: an ``mcp`` tool is refused as an invalid
``tools[i].type`` rather than accepted and silently never called.
"""

from __future__ import annotations

from typing import Final

from ._schema import (
    AnyJSON,
    AnyOf,
    Bool,
    Int,
    ListOf,
    Nullable,
    Num,
    Obj,
    OneOf,
    Schema,
    Str,
    Tagged,
)

__all__ = [
    "CLIENT_EVENT_SCHEMAS",
    "ITEM",
    "SESSION",
    "TURN_DETECTION_DEFAULTS",
    "VOICES",
    "default_session",
]

VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)

_FORMAT = Tagged(
    {
        "audio/pcm": Obj({"type": Str(), "rate": Int(24_000, 24_000)}),
        "audio/pcmu": Obj({"type": Str()}),
        "audio/pcma": Obj({"type": Str()}),
    }
)

_TURN_DETECTION = Nullable(
    Tagged(
        {
            "server_vad": Obj(
                {
                    "type": Str(),
                    "threshold": Num(0, 1),
                    "prefix_padding_ms": Int(0),
                    "silence_duration_ms": Int(0),
                    "idle_timeout_ms": Nullable(Int(5_000, 30_000)),
                    "create_response": Bool(),
                    "interrupt_response": Bool(),
                }
            ),
            "semantic_vad": Obj(
                {
                    "type": Str(),
                    "eagerness": OneOf(("low", "medium", "high", "auto")),
                    "create_response": Bool(),
                    "interrupt_response": Bool(),
                }
            ),
        }
    )
)

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

_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")

_VOICE = AnyOf(
    ((str, OneOf(VOICES)), (dict, Obj({"id": Str()}, required=("id",)))),
    expected="a string or an object",
)

_AUDIO_INPUT = Obj(
    {
        "format": _FORMAT,
        "noise_reduction": Nullable(
            Obj({"type": OneOf(("near_field", "far_field")), "strength": Num(0, 1)})
        ),
        "transcription": Nullable(
            Obj(
                {
                    "model": Str(),
                    "language": Str(),
                    "languages": ListOf(Str()),
                    "prompt": Str(),
                    "keywords": ListOf(Str()),
                    "delay": OneOf(_EFFORTS),
                }
            )
        ),
        "turn_detection": _TURN_DETECTION,
    }
)

_AUDIO_OUTPUT = Obj({"format": _FORMAT, "speed": Num(0.25, 1.5), "voice": _VOICE})

_TOOL = Tagged(
    {
        "function": Obj(
            {"type": Str(), "name": Str(), "description": Str(), "parameters": AnyJSON(dict)},
            required=("name",),
        )
    }
)

_TOOL_CHOICE = AnyOf(
    (
        (str, OneOf(("none", "auto", "required"))),
        (dict, Tagged({"function": Obj({"type": Str(), "name": Str()}, required=("name",))})),
    ),
    expected="a string or an object",
)

_MAX_OUTPUT_TOKENS = AnyOf(
    ((int, Int(1, 4096)), (str, OneOf(("inf",)))), expected="an integer or 'inf'"
)

_MODALITIES = ListOf(OneOf(("text", "audio")), max_items=1)

_PROMPT = Nullable(
    Obj(
        {"id": Str(), "version": Nullable(Str()), "variables": AnyJSON(dict)},
        required=("id",),
    )
)

_TRACING = Nullable(
    AnyOf(
        (
            (str, OneOf(("auto",))),
            (dict, Obj({"workflow_name": Str(), "group_id": Str(), "metadata": AnyJSON(dict)})),
        ),
        expected="'auto' or an object",
    )
)

_TRUNCATION = AnyOf(
    (
        (str, OneOf(("auto", "disabled"))),
        (
            dict,
            Tagged(
                {
                    "retention_ratio": Obj(
                        {
                            "type": Str(),
                            "retention_ratio": Num(0, 1),
                            "token_limits": Obj({"post_instructions": Int(0)}),
                        },
                        required=("retention_ratio",),
                    )
                }
            ),
        ),
    ),
    expected="a string or an object",
)

SESSION: Final = Obj(
    {
        "type": OneOf(("realtime",)),
        "audio": Obj({"input": _AUDIO_INPUT, "output": _AUDIO_OUTPUT}),
        "include": Nullable(ListOf(OneOf(("item.input_audio_transcription.logprobs",)))),
        "instructions": Str(),
        "max_output_tokens": _MAX_OUTPUT_TOKENS,
        "model": Str(),
        "output_modalities": _MODALITIES,
        "parallel_tool_calls": Bool(),
        "prompt": _PROMPT,
        "reasoning": Obj({"effort": OneOf(_EFFORTS)}),
        "tool_choice": _TOOL_CHOICE,
        "tools": ListOf(_TOOL),
        "tracing": _TRACING,
        "truncation": _TRUNCATION,
    },
    required=("type",),
)

_ITEM_COMMON: Final[dict[str, Schema]] = {
    "id": Str(),
    "object": OneOf(("realtime.item",)),
    "status": OneOf(("completed", "incomplete", "in_progress")),
    "type": Str(),
}


def _message(role: str, content_types: tuple[str, ...], content_fields: tuple[str, ...]) -> Obj:
    part_fields: dict[str, Schema] = {name: Str() for name in content_fields}
    part = Obj({**part_fields, "type": OneOf(content_types)})
    fields: dict[str, Schema] = {**_ITEM_COMMON, "role": OneOf((role,)), "content": ListOf(part)}
    return Obj(fields, required=("content",))


_MESSAGE = Tagged(
    {
        "system": _message("system", ("input_text",), ("text",)),
        "user": _message(
            "user",
            ("input_text", "input_audio", "input_image"),
            ("text", "audio", "transcript", "image_url", "detail"),
        ),
        "assistant": _message(
            "assistant", ("output_text", "output_audio"), ("text", "audio", "transcript")
        ),
    },
    tag="role",
)

ITEM: Final = Tagged(
    {
        "message": _MESSAGE,
        "function_call": Obj(
            {**_ITEM_COMMON, "name": Str(), "arguments": Str(), "call_id": Str()},
            required=("name", "arguments"),
        ),
        "function_call_output": Obj(
            {**_ITEM_COMMON, "call_id": Str(), "output": Str()},
            required=("call_id", "output"),
        ),
    }
)

_RESPONSE_PARAMS = Obj(
    {
        "conversation": OneOf(("auto", "none")),
        "input": ListOf(AnyJSON(dict)),
        "instructions": Str(),
        "max_output_tokens": _MAX_OUTPUT_TOKENS,
        "metadata": Nullable(AnyJSON(dict)),
        "output_modalities": _MODALITIES,
        "prompt": _PROMPT,
        "tool_choice": _TOOL_CHOICE,
        "tools": ListOf(_TOOL),
        "audio": Obj({"output": Obj({"format": _FORMAT, "voice": _VOICE})}),
    }
)


def _event(fields: dict[str, Schema], required: tuple[str, ...] = ()) -> Obj:
    return Obj({"type": Str(), "event_id": Str(), **fields}, required=required)


CLIENT_EVENT_SCHEMAS: Final[dict[str, Obj]] = {
    "session.update": _event({"session": SESSION}, required=("session",)),
    "input_audio_buffer.append": _event({"audio": Str()}, required=("audio",)),
    "input_audio_buffer.commit": _event({}),
    "input_audio_buffer.clear": _event({}),
    "output_audio_buffer.clear": _event({}),
    "conversation.item.create": _event(
        {"previous_item_id": Nullable(Str()), "item": ITEM}, required=("item",)
    ),
    "conversation.item.retrieve": _event({"item_id": Str()}, required=("item_id",)),
    "conversation.item.delete": _event({"item_id": Str()}, required=("item_id",)),
    "conversation.item.truncate": _event(
        {"item_id": Str(), "content_index": Int(0), "audio_end_ms": Int(0)},
        required=("item_id", "content_index", "audio_end_ms"),
    ),
    "response.create": _event({"response": _RESPONSE_PARAMS}),
    "response.cancel": _event({"response_id": Str()}),
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
