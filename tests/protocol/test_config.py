"""The URL and auth rules (openai-node's realtime base module's, for OpenAI and Azure), as a
table of cases."""

from __future__ import annotations

import pytest

from rtbus import AzureConfig, ConfigError, OpenAIConfig, build_realtime_url, is_azure
from rtbus.protocol import RealtimeConfig, auth_headers

SECRET = "sk-proj-SECRETSECRET"
AAD = "eyJ0eXAiOiJKV1QiSECRET"


@pytest.mark.parametrize(
    ("base_url", "model", "expected"),
    [
        ("https://api.openai.com/v1", "gpt-realtime", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("https://api.openai.com/v1/", "gpt-realtime", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("http://127.0.0.1:8080/v1", "m", "ws://127.0.0.1:8080/v1/realtime?model=m"),
        ("http://127.0.0.1:8080", "m", "ws://127.0.0.1:8080/realtime?model=m"),
        ("https://proxy.example/openai/v1//", "m", "wss://proxy.example/openai/v1/realtime?model=m"),
        ("wss://edge.example/v1", "m", "wss://edge.example/v1/realtime?model=m"),
        ("https://api.openai.com/v1", "gpt realtime/2025&x=1",
         "wss://api.openai.com/v1/realtime?model=gpt+realtime%2F2025%26x%3D1"),
        ("https://proxy.example/v1?tenant=a&model=old", "m",
         "wss://proxy.example/v1/realtime?tenant=a&model=m"),
    ],
)  # fmt: skip
def test_openai_url(base_url: str, model: str, expected: str) -> None:
    config = OpenAIConfig(api_key=SECRET, base_url=base_url)
    assert build_realtime_url(config, model) == expected
    assert not is_azure(config)


@pytest.mark.parametrize(
    ("endpoint", "api_version", "expected"),
    [
        ("https://res.openai.azure.com", "2024-10-01-preview",
         "wss://res.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=my-rt"),
        ("https://res.openai.azure.com/", None,
         "wss://res.openai.azure.com/openai/v1/realtime?model=my-rt"),
        ("https://res.openai.azure.com/openai/v1/", None,
         "wss://res.openai.azure.com/openai/v1/realtime?model=my-rt"),
        ("https://res.openai.azure.com/openai", "2025-04-01-preview",
         "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=my-rt"),
        ("http://127.0.0.1:9000", None, "ws://127.0.0.1:9000/openai/v1/realtime?model=my-rt"),
    ],
)  # fmt: skip
def test_azure_url(endpoint: str, api_version: str | None, expected: str) -> None:
    config = AzureConfig(endpoint=endpoint, api_key=SECRET, api_version=api_version)
    assert build_realtime_url(config, "my-rt") == expected
    assert is_azure(config)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (OpenAIConfig(api_key=SECRET), [("Authorization", f"Bearer {SECRET}")]),
        (
            OpenAIConfig(api_key="ek_68af_ephemeral"),
            [("Authorization", "Bearer ek_68af_ephemeral")],
        ),
        (
            OpenAIConfig(api_key=SECRET, organization="org-1", project="proj_2"),
            [
                ("Authorization", f"Bearer {SECRET}"),
                ("OpenAI-Organization", "org-1"),
                ("OpenAI-Project", "proj_2"),
            ],
        ),
        (AzureConfig(endpoint="https://r.openai.azure.com", api_key=SECRET), [("api-key", SECRET)]),
        (
            AzureConfig(endpoint="https://r.openai.azure.com", ad_token=AAD),
            [("Authorization", f"Bearer {AAD}")],
        ),
    ],
)
def test_auth_headers(config: RealtimeConfig, expected: list[tuple[str, str]]) -> None:
    assert auth_headers(config) == expected


@pytest.mark.parametrize(
    "config",
    [
        OpenAIConfig(api_key=SECRET),
        AzureConfig(endpoint="https://r.openai.azure.com", api_key=SECRET),
        AzureConfig(endpoint="https://r.openai.azure.com", ad_token=AAD),
    ],
)
def test_secrets_never_in_url_or_repr(config: RealtimeConfig) -> None:
    url = build_realtime_url(config, "gpt-realtime")
    for text in (url, repr(config), str(config)):
        assert "SECRET" not in text


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: OpenAIConfig(api_key=""), "api_key"),
        (lambda: OpenAIConfig(api_key="  "), "api_key"),
        (lambda: OpenAIConfig(api_key=SECRET, base_url="api.openai.com/v1"), "base_url"),
        (lambda: OpenAIConfig(api_key=SECRET, base_url="ftp://x/v1"), "base_url"),
        (lambda: AzureConfig(endpoint="https://r.openai.azure.com"), "api_key"),
        (lambda: AzureConfig(endpoint="https://r", api_key=SECRET, ad_token=AAD), "api_key"),
        (lambda: AzureConfig(endpoint="r.openai.azure.com", api_key=SECRET), "endpoint"),
        (lambda: AzureConfig(endpoint="https://r", api_key=SECRET, api_version=""), "api_version"),
    ],
)
def test_bad_config_names_the_key(make: object, key: str) -> None:
    assert callable(make)
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
    assert "SECRET" not in str(info.value)


def test_model_is_required() -> None:
    with pytest.raises(ConfigError, match="model"):
        build_realtime_url(OpenAIConfig(api_key=SECRET), "")


def test_from_env() -> None:
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    config = OpenAIConfig.from_env(env)
    assert config.api_key == SECRET
    assert build_realtime_url(config, "m") == "ws://127.0.0.1:1/v1/realtime?model=m"
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIConfig.from_env({})
