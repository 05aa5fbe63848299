"""What the Realtime server checks in a client event beyond the schema, as data.

The ``openai`` package types what a field may hold; the server also holds numbers to ranges,
audio to base64, a voice to the voices it has, and a few optional-typed fields to being
present. These rules are written once here and applied by the codec's strict structure
functions (``decode_client_event``, ``client_event_from_dict``), so a client event rtbus
accepts is one the server accepts. Sources: the field descriptions in the ``openai`` package
(3.54.0) and the checks rtbus's simulator made in the server's words before it used these
models (``tests/protocol/test_strict.py`` holds one refused event per rule kind).

Each check takes the structured value and raises ``Mismatch`` (the codec adds the path). A
message never repeats a value a client sent, except one outside an enum (cut short).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._models import (
    AssistantMessageContent,
    AudioOutputConfig,
    ConversationItemTruncateEvent,
    FunctionTool,
    InputAudioBufferAppendEvent,
    NoiseReduction,
    ResponseCreateAudioOutput,
    ResponseCreateParams,
    ServerVad,
    SessionConfig,
    TokenLimits,
    TranscriptionServerVad,
    TruncationRetentionRatio,
    UserMessageContent,
)
from ._models_compile import Mismatch, Strict, not_allowed

__all__ = ["SERVER_RULES", "VOICES"]

#: The built-in voices; a ``voice`` string must be one of them (a custom voice is ``{"id"}``).
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

Check = Callable[[Any], None]
_INF: Final = float("inf")


def number_in(low: float = -_INF, high: float = _INF, *, kind: str = "integer") -> Check:
    """A number within ``[low, high]``; the code names the bound and the field's ``kind``
    (``integer`` or ``decimal``, as the server words it)."""

    def check(value: Any) -> None:
        if value < low:
            message = f"{kind} below minimum value {low:g}"
            raise Mismatch(message, code=f"{kind}_below_min_value", limit=low)
        if value > high:
            message = f"{kind} above maximum value {high:g}"
            raise Mismatch(message, code=f"{kind}_above_max_value", limit=high)

    return check


def at_most_items(limit: int) -> Check:
    """An array of at most ``limit`` elements."""

    def check(value: Any) -> None:
        if len(value) > limit:
            message = f"array longer than {limit}"
            raise Mismatch(message, code="array_above_max_length", limit=limit)

    return check


def base64_audio(value: Any) -> None:
    """Base64 text, as the server decodes audio (padding required, no stray characters)."""
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        expected = "base64-encoded audio bytes"
        raise Mismatch(f"expected {expected}", expected=expected) from None


def one_of(*values: str) -> Check:
    """One of ``values`` when a string: the schema leaves the enum open (``str | Literal``),
    the server does not. Any other kind (a ``VoiceID`` object) passes as the schema says."""

    def check(value: Any) -> None:
        if isinstance(value, str) and value not in values:
            raise not_allowed(values, value)

    return check


def when_int(check: Check) -> Check:
    """``check`` on integers only (``max_output_tokens`` may also be ``"inf"``)."""
    return lambda value: check(value) if isinstance(value, int) else None


_UNIT: Final = number_in(0, 1, kind="decimal")
_NOT_NEGATIVE: Final = number_in(0)
_OUTPUT_TOKENS: Final = when_int(number_in(1, 4096))
_ONE_MODALITY: Final = at_most_items(1)
_VOICE: Final = one_of(*VOICES)


def _vad_checks(cls: type) -> dict[tuple[type, str], Check]:
    return {
        (cls, "threshold"): _UNIT,
        (cls, "prefix_padding_ms"): _NOT_NEGATIVE,
        (cls, "silence_duration_ms"): _NOT_NEGATIVE,
        (cls, "idle_timeout_ms"): number_in(5_000, 30_000),
    }


_CHECKS: Final[Mapping[tuple[type, str], Check]] = {
    (InputAudioBufferAppendEvent, "audio"): base64_audio,
    (UserMessageContent, "audio"): base64_audio,
    (AssistantMessageContent, "audio"): base64_audio,
    (ConversationItemTruncateEvent, "content_index"): _NOT_NEGATIVE,
    (ConversationItemTruncateEvent, "audio_end_ms"): _NOT_NEGATIVE,
    **_vad_checks(ServerVad),
    **_vad_checks(TranscriptionServerVad),
    (NoiseReduction, "strength"): _UNIT,
    (AudioOutputConfig, "speed"): number_in(0.25, 1.5, kind="decimal"),
    (AudioOutputConfig, "voice"): _VOICE,
    (ResponseCreateAudioOutput, "voice"): _VOICE,
    (ResponseCreateParams, "conversation"): one_of("auto", "none"),
    (SessionConfig, "max_output_tokens"): _OUTPUT_TOKENS,
    (ResponseCreateParams, "max_output_tokens"): _OUTPUT_TOKENS,
    (SessionConfig, "output_modalities"): _ONE_MODALITY,
    (ResponseCreateParams, "output_modalities"): _ONE_MODALITY,
    (TruncationRetentionRatio, "retention_ratio"): _UNIT,
    (TokenLimits, "post_instructions"): _NOT_NEGATIVE,
}

# A function tool without a name cannot be called; the schema leaves it optional.
_REQUIRED: Final[Mapping[type, frozenset[str]]] = {FunctionTool: frozenset({"name"})}

#: The rules the codec's strict (client event) structure functions apply.
SERVER_RULES: Final = Strict(checks=_CHECKS, required=_REQUIRED)
