"""Where one connection attempt goes: the URL and the handshake headers (sans-IO).

Invariants:

* A ``ConnectTarget`` is valid HTTP before any socket opens: header names are tokens and
  values hold no control characters. (The HTTP layer below would reject them too, but its
  message quotes the value -- which may be the API key.)
* Its ``repr`` shows the header names, never their values; ``secrets`` lists the values of the
  credential headers so any server text can be scrubbed of them (``protocol.redact``).
* ``display_url`` (the URL without its query) is what error messages show.
* ``realtime_target`` says what the connection attaches to (a model, a call, a transcription
  session) when the target was built from a config; the URL names the same target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from rtbus.protocol import (
    AzureConfig,
    ConfigError,
    OpenAIConfig,
    RealtimeTarget,
    auth_headers,
    build_realtime_url,
)

__all__ = ["ConnectTarget", "Endpoint"]

Headers = tuple[tuple[str, str], ...]

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Headers whose values are credentials (lower case).
_CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "api-key", "proxy-authorization", "cookie", "x-api-key"}
)


def _header_names(headers: Headers) -> str:
    return repr([name for name, _ in headers])


def _check_headers(instance: object, attribute: attrs.Attribute[Headers], value: Headers) -> None:
    for name, field in value:
        if not _TOKEN.fullmatch(name):
            raise ConfigError("extra_headers", f"{name!r} is not a valid HTTP header name")
        if not _FIELD_VALUE.fullmatch(field):
            # Never quote the value: it may be a key with a stray newline from an env file.
            raise ConfigError("extra_headers", f"the value of {name!r} has control characters")


def _to_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    return tuple((str(name), str(value)) for name, value in headers)


@attrs.frozen
class Endpoint:
    """Where the socket goes: host, port, TLS or not, and the request target."""

    host: str
    port: int
    tls: bool
    resource: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"


@attrs.frozen
class ConnectTarget:
    """The URL and headers of one connection attempt.

    Built from a config with :meth:`from_config`; a reconnect hook may return a changed one
    (a fresh Azure AD token, another region) before each attempt.
    """

    url: str
    headers: Headers = attrs.field(
        default=(), converter=_to_headers, validator=_check_headers, repr=_header_names
    )
    realtime_target: RealtimeTarget | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError("url", "must be a ws:// or wss:// URL with a host")

    @classmethod
    def from_config(
        cls,
        config: OpenAIConfig | AzureConfig,
        target: str | RealtimeTarget,
        *,
        extra_headers: Iterable[tuple[str, str]] = (),
        extra_query: Mapping[str, str] | None = None,
    ) -> ConnectTarget:
        """The connection ``config`` names for ``target`` (a model name, or a
        :class:`~rtbus.protocol.RealtimeTarget` for a call or a transcription session), plus
        extra headers and query parameters.

        Extra query parameters win over the ones rtbus sets; extra headers are sent after
        the auth headers.
        """
        resolved = RealtimeTarget.of(target)
        url = build_realtime_url(config, resolved)
        headers = [*auth_headers(config), *extra_headers]
        return cls(url, headers, realtime_target=resolved).with_query(extra_query or {})

    def with_query(self, query: Mapping[str, str]) -> ConnectTarget:
        """A copy with ``query`` merged into the URL's query (``query`` wins on a clash)."""
        if not query:
            return self
        parts = urlsplit(self.url)
        merged = dict(parse_qsl(parts.query, keep_blank_values=True))
        merged.update(query)
        return attrs.evolve(self, url=urlunsplit(parts._replace(query=urlencode(merged))))

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> ConnectTarget:
        """A copy where ``headers`` replace any headers of the same names (case-insensitive)."""
        new = _to_headers(headers)
        replaced = {name.lower() for name, _ in new}
        kept = [(n, v) for n, v in self.headers if n.lower() not in replaced]
        return attrs.evolve(self, headers=(*kept, *new))

    @property
    def secrets(self) -> frozenset[str]:
        """The credential values this target sends: what must never appear in a message."""
        values = {v for n, v in self.headers if n.lower() in _CREDENTIAL_HEADERS}
        # A server may echo just the token of "Bearer <token>".
        tokens = {v.partition(" ")[2] for v in values if " " in v}
        return frozenset(values | tokens)

    @property
    def display_url(self) -> str:
        """The URL without its query: safe to show in messages."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(query="", fragment=""))

    @property
    def endpoint(self) -> Endpoint:
        """The host, port and request target the URL names."""
        parts = urlsplit(self.url)
        tls = parts.scheme == "wss"
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if tls else 80)
        return Endpoint(parts.hostname or "", port, tls, resource)

    def encoded_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as the handshake sends them: names and values as latin-1 bytes."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self.headers]
