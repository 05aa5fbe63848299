"""The three targets of a Realtime connection (model, call, transcription), OpenAI and Azure."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtbus.protocol import (
    AzureConfig,
    ConfigError,
    OpenAIConfig,
    RealtimeTarget,
    TargetKind,
    build_realtime_url,
)
from rtbus.transport import ConnectTarget

SECRET = "sk-proj-SECRETSECRET"
OPENAI = OpenAIConfig(api_key=SECRET)
AZURE_GA = AzureConfig(endpoint="https://res.openai.azure.com", api_key=SECRET)
AZURE_PREVIEW = AzureConfig(
    endpoint="https://res.openai.azure.com/openai", api_key=SECRET, api_version="2025-04-01-preview"
)


@pytest.mark.parametrize(
    ("config", "target", "expected"),
    [
        (OPENAI, RealtimeTarget.model("gpt-realtime"), "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        (OPENAI, RealtimeTarget.call("rtc_abc123"), "wss://api.openai.com/v1/realtime?call_id=rtc_abc123"),
        (OPENAI, RealtimeTarget.transcription(), "wss://api.openai.com/v1/realtime?intent=transcription"),
        (AZURE_GA, RealtimeTarget.model("my-rt"), "wss://res.openai.azure.com/openai/v1/realtime?model=my-rt"),
        (AZURE_GA, RealtimeTarget.call("rtc_1"), "wss://res.openai.azure.com/openai/v1/realtime?call_id=rtc_1"),
        (AZURE_GA, RealtimeTarget.transcription(),
         "wss://res.openai.azure.com/openai/v1/realtime?intent=transcription"),
        (AZURE_PREVIEW, RealtimeTarget.model("my-rt"),
         "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=my-rt"),
        (AZURE_PREVIEW, RealtimeTarget.call("rtc_1"),
         "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&call_id=rtc_1"),
        (AZURE_PREVIEW, RealtimeTarget.transcription(),
         "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&intent=transcription"),
    ],
)  # fmt: skip
def test_each_target_in_each_form(
    config: OpenAIConfig | AzureConfig, target: RealtimeTarget, expected: str
) -> None:
    assert build_realtime_url(config, target) == expected


def test_a_string_is_a_model_as_before() -> None:
    assert build_realtime_url(OPENAI, "gpt-realtime") == build_realtime_url(
        OPENAI, RealtimeTarget.model("gpt-realtime")
    )
    assert RealtimeTarget.of("m") == RealtimeTarget(TargetKind.MODEL, "m")


def test_call_ids_are_url_encoded() -> None:
    url = build_realtime_url(OPENAI, RealtimeTarget.call("rtc_a&model=x y"))
    assert url == "wss://api.openai.com/v1/realtime?call_id=rtc_a%26model%3Dx+y"


def test_the_url_names_exactly_one_target() -> None:
    # A proxy's base URL may carry a stale target; the connection's own target replaces it.
    config = OpenAIConfig(api_key=SECRET, base_url="http://proxy.local/v1?tenant=t&model=old")
    url = build_realtime_url(config, RealtimeTarget.call("rtc_1"))
    assert url == "ws://proxy.local/v1/realtime?tenant=t&call_id=rtc_1"


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: RealtimeTarget.model(""), "model"),
        (lambda: RealtimeTarget.call(" "), "call_id"),
        (lambda: RealtimeTarget(TargetKind.TRANSCRIPTION, "whisper-1"), "name"),
    ],
)
def test_targets_are_checked(build: object, key: str) -> None:
    assert callable(build)
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.key == key


def test_connect_target_carries_its_target_and_no_secret_in_the_url() -> None:
    target = ConnectTarget.from_config(OPENAI, RealtimeTarget.call("rtc_9"))
    assert target.realtime_target == RealtimeTarget.call("rtc_9")
    assert target.url == "wss://api.openai.com/v1/realtime?call_id=rtc_9"
    assert SECRET not in target.url
    assert SECRET not in repr(target)
    assert ConnectTarget.from_config(OPENAI, "m").realtime_target == RealtimeTarget.model("m")


@given(st.text(min_size=1).filter(str.strip))
def test_any_call_id_round_trips_through_the_query(call_id: str) -> None:
    url = build_realtime_url(OPENAI, RealtimeTarget.call(call_id))
    assert parse_qs(urlsplit(url).query) == {"call_id": [call_id]}
