"""The Realtime calls REST API as data: operations, their routes, and what a reply carries.

Sans-IO. One table, ``CALLS_API``, holds every operation's method and path (relative to the
REST base URL, e.g. ``https://api.openai.com/v1``); the client in ``rtbus.calls`` builds its
requests from it and the simulator routes its requests by it, so the two cannot drift apart.
The paths and bodies are those the ``openai`` package sends (``client.realtime.calls`` and
``client.realtime.client_secrets``).

Invariants:

* A call id is one path segment, percent-encoded (``/`` and ``..`` can never change the path).
* ``rest_base_url`` is ``http(s)``: a config's ``ws(s)`` base is mapped back; Azure's REST
  base is ``{endpoint}/openai/v1`` (the GA surface, the one with the calls API).
* ``call_id_from_location`` accepts only a ``.../realtime/calls/<id>`` Location.
"""

from __future__ import annotations

import enum
from typing import Final
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import attrs

from ._config import _AZURE_API_SUFFIXES, AzureConfig, RealtimeConfig
from ._errors import ProtocolError

__all__ = [
    "CALLS_API",
    "DEFAULT_REJECT_STATUS",
    "CallOperation",
    "Route",
    "call_id_from_location",
    "match_route",
    "rest_base_url",
]

#: SIP 603 Decline: what ``reject`` answers the caller when no status is given.
DEFAULT_REJECT_STATUS: Final = 603

_HTTP_SCHEMES = {"https": "https", "http": "http", "wss": "https", "ws": "http"}


class CallOperation(enum.Enum):
    """One operation of the calls REST API."""

    CREATE = "create"
    ACCEPT = "accept"
    REJECT = "reject"
    HANGUP = "hangup"
    REFER = "refer"
    CLIENT_SECRET = "client_secret"


@attrs.frozen
class Route:
    """An operation's HTTP method and path template (``{call_id}`` is one segment)."""

    method: str
    template: str

    def path(self, call_id: str | None = None) -> str:
        """The path for ``call_id`` (percent-encoded as one segment)."""
        if "{call_id}" not in self.template:
            return self.template
        if not call_id:
            raise ProtocolError("call_id is required", path="call_id")
        return self.template.replace("{call_id}", quote(call_id, safe=""))

    @property
    def name(self) -> str:
        """``POST /realtime/calls/{call_id}/accept``: how messages name the endpoint."""
        return f"{self.method} {self.template}"


CALLS_API: Final[dict[CallOperation, Route]] = {
    CallOperation.CREATE: Route("POST", "/realtime/calls"),
    CallOperation.ACCEPT: Route("POST", "/realtime/calls/{call_id}/accept"),
    CallOperation.REJECT: Route("POST", "/realtime/calls/{call_id}/reject"),
    CallOperation.HANGUP: Route("POST", "/realtime/calls/{call_id}/hangup"),
    CallOperation.REFER: Route("POST", "/realtime/calls/{call_id}/refer"),
    CallOperation.CLIENT_SECRET: Route("POST", "/realtime/client_secrets"),
}

# Path -> operation, for matching: the operations with a call id end in their verb.
_BY_VERB: Final = {
    op.value: op
    for op in (
        CallOperation.ACCEPT,
        CallOperation.REJECT,
        CallOperation.HANGUP,
        CallOperation.REFER,
    )
}


def rest_base_url(config: RealtimeConfig) -> str:
    """The base URL the calls API paths are appended to (no trailing slash)."""
    if isinstance(config, AzureConfig):
        parts = urlsplit(config.endpoint)
        path = parts.path.rstrip("/")
        for suffix in _AZURE_API_SUFFIXES:
            path = path.removesuffix(suffix)
        parts = parts._replace(path=path + "/openai/v1")
    else:
        parts = urlsplit(config.base_url)
        parts = parts._replace(path=parts.path.rstrip("/"))
    return urlunsplit(parts._replace(scheme=_HTTP_SCHEMES[parts.scheme], fragment=""))


def match_route(method: str, path: str) -> tuple[CallOperation, str | None] | None:
    """The operation (and call id) a request for ``path`` under the base path names."""
    if method != "POST":
        return None
    segments = path.strip("/").split("/")
    if segments == ["realtime", "calls"]:
        return CallOperation.CREATE, None
    if segments == ["realtime", "client_secrets"]:
        return CallOperation.CLIENT_SECRET, None
    if len(segments) == 4 and segments[:2] == ["realtime", "calls"] and segments[3] in _BY_VERB:
        return _BY_VERB[segments[3]], unquote(segments[2])
    return None


def call_id_from_location(location: str) -> str:
    """The call id in a ``Location`` such as ``/v1/realtime/calls/rtc_abc``."""
    segments = urlsplit(location).path.rstrip("/").split("/")
    if len(segments) < 3 or segments[-3:-1] != ["realtime", "calls"] or not segments[-1]:
        raise ProtocolError(f"Location does not name a call: {location!r}", path="Location")
    return unquote(segments[-1])
