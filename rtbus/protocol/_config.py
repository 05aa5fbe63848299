"""Where a Realtime connection goes and how it proves who it is (sans-IO).

Invariants:

* ``build_realtime_url`` turns ``https`` into ``wss`` and ``http`` into ``ws`` (so a local
  simulator works), appends ``/realtime`` to the base path without doubling a slash, and puts
  the model in the query, URL-encoded. Azure: with ``api_version`` the preview form
  ``{endpoint}/openai/realtime?api-version=..&deployment=<model>``, without it the GA form
  ``{endpoint}/openai/v1/realtime?model=<deployment>``.
* ``auth_headers``: OpenAI sends ``Authorization: Bearer <key>`` (an ephemeral ``ek_`` client
  secret is a key like any other); Azure sends ``api-key`` or ``Authorization: Bearer <AAD token>``.
* No secret is ever placed in a URL, and the ``repr`` of a config never shows one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from ._errors import ConfigError

__all__ = ["AzureConfig", "OpenAIConfig", "auth_headers", "build_realtime_url", "is_azure"]

_WEBSOCKET_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}
# Azure endpoints are often given with the API prefix already on them; strip it, never double it.
_AZURE_API_SUFFIXES = ("/openai/v1", "/openai")


def _redacted(value: str | None) -> str:
    return "None" if value is None else "'***'"


def _check_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in _WEBSOCKET_SCHEMES or not parts.netloc:
        raise ConfigError(key, f"must be an absolute http(s) or ws(s) URL, got {url!r}")


def _require_text(key: str, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ConfigError(key, "must not be empty")


@attrs.frozen(kw_only=True)
class OpenAIConfig:
    """Connect to the OpenAI Realtime API, or to anything that speaks it (``rtbus.sim``).

    ``api_key`` may be a project key or an ephemeral client secret (``ek_...``).
    """

    api_key: str = attrs.field(repr=_redacted)
    base_url: str = "https://api.openai.com/v1"
    organization: str | None = None
    project: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.api_key or not self.api_key.strip():
            raise ConfigError("api_key", "is required (set OPENAI_API_KEY or pass api_key=...)")
        _check_url("base_url", self.base_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpenAIConfig:
        """The config ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID`` and
        ``OPENAI_PROJECT_ID`` describe."""
        env = os.environ if environ is None else environ
        base_url = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return cls(
            api_key=env.get("OPENAI_API_KEY", ""),
            base_url=base_url,
            organization=env.get("OPENAI_ORG_ID"),
            project=env.get("OPENAI_PROJECT_ID"),
        )


@attrs.frozen(kw_only=True)
class AzureConfig:
    """Connect to an Azure OpenAI resource; the model argument names the deployment.

    Exactly one of ``api_key`` and ``ad_token`` (a Microsoft Entra ID access token) is required.
    """

    endpoint: str
    api_key: str | None = attrs.field(default=None, repr=_redacted)
    ad_token: str | None = attrs.field(default=None, repr=_redacted)
    api_version: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_url("endpoint", self.endpoint)
        _require_text("api_key", self.api_key)
        _require_text("ad_token", self.ad_token)
        _require_text("api_version", self.api_version)
        if (self.api_key is None) == (self.ad_token is None):
            raise ConfigError("api_key", "give exactly one of api_key and ad_token for Azure")


RealtimeConfig = OpenAIConfig | AzureConfig


def is_azure(config: RealtimeConfig) -> bool:
    """Whether the config points at Azure OpenAI, whose URL and auth rules differ."""
    return isinstance(config, AzureConfig)


def build_realtime_url(config: RealtimeConfig, model: str) -> str:
    """The WebSocket URL of a Realtime session for ``model`` (an Azure deployment name)."""
    if not model:
        raise ConfigError("model", "is required")
    if isinstance(config, AzureConfig):
        return _azure_url(config, model)
    return _with_path_and_query(urlsplit(config.base_url), "/realtime", {"model": model})


def _azure_url(config: AzureConfig, model: str) -> str:
    parts = urlsplit(config.endpoint)
    path = parts.path.rstrip("/")
    for suffix in _AZURE_API_SUFFIXES:
        path = path.removesuffix(suffix)
    parts = parts._replace(path=path)
    if config.api_version is not None:
        query = {"api-version": config.api_version, "deployment": model}
        return _with_path_and_query(parts, "/openai/realtime", query)
    return _with_path_and_query(parts, "/openai/v1/realtime", {"model": model})


def _with_path_and_query(parts: SplitResult, suffix: str, query: Mapping[str, str]) -> str:
    path = parts.path.rstrip("/") + suffix
    # Query parameters already on the base URL (a proxy's, say) are kept; ours win on a clash.
    merged = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in query}
    merged.update(query)
    scheme = _WEBSOCKET_SCHEMES[parts.scheme]
    return urlunsplit((scheme, parts.netloc, path, urlencode(merged), ""))


def auth_headers(config: RealtimeConfig) -> list[tuple[str, str]]:
    """The handshake headers that authenticate ``config`` (they carry the secret: never log)."""
    if isinstance(config, AzureConfig):
        if config.api_key is not None:
            return [("api-key", config.api_key)]
        return [("Authorization", f"Bearer {config.ad_token}")]
    headers = [("Authorization", f"Bearer {config.api_key}")]
    if config.organization:
        headers.append(("OpenAI-Organization", config.organization))
    if config.project:
        headers.append(("OpenAI-Project", config.project))
    return headers
