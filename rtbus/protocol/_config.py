"""Where a Realtime connection goes and how it proves who it is (sans-IO).

Invariants:

* ``build_realtime_url`` turns ``https`` into ``wss`` and ``http`` into ``ws`` (so a local
  simulator works), appends ``/realtime`` to the base path without doubling a slash, and puts
  the target in the query, URL-encoded. Azure: with ``api_version`` the preview form
  ``{endpoint}/openai/realtime?api-version=..&deployment=<model>``, without it the GA form
  ``{endpoint}/openai/v1/realtime?model=<deployment>``.
* A connection has exactly one target (``RealtimeTarget``): a ``model`` (``model=``; Azure
  preview ``deployment=``), a ``call_id`` (``call_id=``: the server-side control connection of
  a SIP or WebRTC call, which carries no model), or a transcription session
  (``intent=transcription``, no model). Only the query key differs; base, path and Azure form
  follow the rules above.
* ``auth_headers``: OpenAI sends ``Authorization: Bearer <key>`` (an ephemeral ``ek_`` client
  secret is a key like any other); Azure sends ``api-key`` or ``Authorization: Bearer <AAD token>``.
* No secret is ever placed in a URL, and the ``repr`` of a config never shows one.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from ._errors import ConfigError

__all__ = [
    "AzureConfig",
    "OpenAIConfig",
    "RealtimeTarget",
    "TargetKind",
    "auth_headers",
    "build_realtime_url",
    "is_azure",
]

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


class TargetKind(enum.Enum):
    """What a Realtime connection attaches to."""

    MODEL = "model"
    CALL = "call"
    TRANSCRIPTION = "transcription"


@attrs.frozen
class RealtimeTarget:
    """What one connection is for: a model, a call, or a transcription session.

    Build one with :meth:`model`, :meth:`call` or :meth:`transcription`; ``name`` is the
    model (Azure: deployment) or the call id, and ``None`` for transcription.
    """

    kind: TargetKind
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        wants_name = self.kind is not TargetKind.TRANSCRIPTION
        if wants_name and not (self.name and self.name.strip()):
            raise ConfigError(_NAME_KEYS[self.kind], "is required")
        if not wants_name and self.name is not None:
            raise ConfigError("name", "a transcription session has no model in its URL")

    @classmethod
    def model(cls, model: str) -> RealtimeTarget:
        """A conversation with ``model`` (an Azure deployment name on Azure)."""
        return cls(TargetKind.MODEL, model)

    @classmethod
    def call(cls, call_id: str) -> RealtimeTarget:
        """The server-side control ("sideband") connection of an accepted call."""
        return cls(TargetKind.CALL, call_id)

    @classmethod
    def transcription(cls) -> RealtimeTarget:
        """A transcription session (``intent=transcription``; the model is set in the session)."""
        return cls(TargetKind.TRANSCRIPTION)

    @classmethod
    def of(cls, target: str | RealtimeTarget) -> RealtimeTarget:
        """``target`` as a target: a plain string names a model, as it always has."""
        return target if isinstance(target, RealtimeTarget) else cls.model(target)

    def query(self, *, azure_preview: bool = False) -> dict[str, str]:
        """The query parameters that name this target (Azure's preview form says ``deployment``)."""
        if self.kind is TargetKind.TRANSCRIPTION:
            return {"intent": "transcription"}
        key = _NAME_KEYS[self.kind]
        if azure_preview and self.kind is TargetKind.MODEL:
            key = "deployment"
        assert self.name is not None  # checked at construction
        return {key: self.name}


# Every query key that names a target, in any form.
_TARGET_QUERY_KEYS = frozenset({"model", "deployment", "call_id", "intent"})
# The query key that names each target that has a name (and the config key its errors cite).
_NAME_KEYS: dict[TargetKind, str] = {TargetKind.MODEL: "model", TargetKind.CALL: "call_id"}


def build_realtime_url(config: RealtimeConfig, target: str | RealtimeTarget) -> str:
    """The WebSocket URL of a Realtime connection for ``target``.

    A plain string is a model (an Azure deployment name); a :class:`RealtimeTarget` may also
    name a call or a transcription session.
    """
    if isinstance(target, str) and not target:
        raise ConfigError("model", "is required")
    resolved = RealtimeTarget.of(target)
    if isinstance(config, AzureConfig):
        return _azure_url(config, resolved)
    return _with_path_and_query(urlsplit(config.base_url), "/realtime", resolved.query())


def _azure_url(config: AzureConfig, target: RealtimeTarget) -> str:
    parts = urlsplit(config.endpoint)
    path = parts.path.rstrip("/")
    for suffix in _AZURE_API_SUFFIXES:
        path = path.removesuffix(suffix)
    parts = parts._replace(path=path)
    if config.api_version is not None:
        query = {"api-version": config.api_version, **target.query(azure_preview=True)}
        return _with_path_and_query(parts, "/openai/realtime", query)
    return _with_path_and_query(parts, "/openai/v1/realtime", target.query())


def _with_path_and_query(parts: SplitResult, suffix: str, query: Mapping[str, str]) -> str:
    path = parts.path.rstrip("/") + suffix
    # Query parameters already on the base URL (a proxy's, say) are kept; ours win on a clash,
    # and a target named there is dropped, so that the URL names exactly one target.
    dropped = query.keys() | _TARGET_QUERY_KEYS
    merged = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in dropped}
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
