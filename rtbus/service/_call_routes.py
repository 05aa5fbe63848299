"""Where an incoming call goes: the ``[calls]`` settings and its routing table (sans-IO).

``CallsSettings.route_for(event)`` is the first of ``routes`` whose every pattern matches the
caller's SIP headers, else ``default``. A route accepts the call with its ``session`` config
or rejects it with a SIP ``status_code``.

Invariants:

* Patterns are shell globs (``sip:+1555*``, ``*``); header names are matched case-insensitively
  (as SIP header names are), values too (a URI's scheme and host are case-insensitive, digits
  have no case). A header the INVITE lacks matches only ``*``.
* Every route's ``session`` is checked when the settings are made, as strictly as any
  session config (``SessionSpec``), so a typo fails ``rtbus config check``, not a call.
* ``webhook_secret`` is a secret: never in a repr or a message (a malformed one is refused
  without being quoted).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import attrs

from rtbus.protocol import ConfigError, RealtimeCallIncoming, RealtimeTarget, WebhookSecret
from rtbus.session import SessionSpec

__all__ = ["CallRoute", "CallsSettings", "RouteAction"]

RouteAction = Literal["accept", "reject"]
_ANY: Final = "*"
#: The SIP statuses a reject may send (4xx-6xx final responses).
_SIP_FINAL: Final = range(400, 700)


def _redacted(value: str | None) -> str:
    return "None" if value is None else "'***'"


def _checked_session(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError("session", "must be a table (a session config)")
    # Raises ConfigError naming the key; a call's session is a conversation, never a
    # transcription session, so the config is checked against a call target.
    SessionSpec(session=value, target=RealtimeTarget.call("rtc_config_check"))


def _pattern(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(attribute.name.rstrip("_"), "must be a non-empty glob, e.g. '*'")


def _headers(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError("headers", "must be a table of SIP header name = glob")


def _sip_status(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value not in _SIP_FINAL:
        raise ConfigError("status_code", f"must be a SIP final status 400-699, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(attribute.name, f"must be a positive number, got {value!r}")


def _webhook_secret(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        WebhookSecret.parse(value)  # its ConfigError never quotes the text


def _glob(value: str | None, pattern: str) -> bool:
    if pattern == _ANY:
        return True
    return value is not None and fnmatch.fnmatchcase(value.lower(), pattern.lower())


@attrs.frozen(kw_only=True)
class CallRoute:
    """One row of ``[[calls.routes]]`` (or ``[calls.default]``).

    ``to``, ``from`` (``from_`` here) and ``headers`` (other SIP headers, name = glob) must all
    match. ``action`` is ``accept`` (with ``session``: model, instructions, voice, tools...)
    or ``reject`` (the caller hears ``status_code``, 603 Decline by default; 486 is Busy Here).
    """

    name: str = "default"
    to: str = attrs.field(default=_ANY, validator=_pattern)
    from_: str = attrs.field(default=_ANY, validator=_pattern)
    headers: Mapping[str, str] = attrs.field(factory=dict, validator=_headers)
    action: RouteAction = "accept"
    status_code: int = attrs.field(default=603, validator=_sip_status)
    session: Mapping[str, Any] = attrs.field(factory=dict, validator=_checked_session)

    def matches(self, event: RealtimeCallIncoming) -> bool:
        """Whether every pattern of this route matches the call's SIP headers."""
        patterns = {"to": self.to, "from": self.from_, **self.headers}
        return all(_glob(event.sip_header(name), glob) for name, glob in patterns.items())

    def accept_body(self, default_model: str) -> dict[str, Any]:
        """The session config the accept sends: ``type`` and ``model`` filled in."""
        return {"type": "realtime", "model": default_model, **self.session}


def _routes(routes: Iterable[CallRoute]) -> tuple[CallRoute, ...]:
    return tuple(routes)


@attrs.frozen(kw_only=True)
class CallsSettings:
    """Phone and browser calls (``[calls]``; docs/config.md).

    ``webhook_secret`` (``whsec_...``, or ``OPENAI_WEBHOOK_SECRET``) verifies
    ``POST /v1/webhooks/openai``; without it (and off the simulator) the route answers 404.
    ``routes`` are tried in order, then ``default``. ``browser`` is the session config of
    browser calls and client secrets (default: the default route's). ``api_timeout`` and
    ``api_retries`` bound each calls API request; ``max_pending`` bounds the webhooks being
    acted on at once (past it a delivery is answered 503, so the sender redelivers later);
    ``max_calls`` bounds the calls held at once (past it a call is rejected 486 Busy Here).
    ``webhook_tolerance`` is how old a signed timestamp may be, in seconds.
    """

    webhook_secret: str | None = attrs.field(
        default=None, repr=_redacted, validator=_webhook_secret
    )
    webhook_tolerance: float = attrs.field(default=300.0, validator=_positive)
    routes: tuple[CallRoute, ...] = attrs.field(default=(), converter=_routes)
    default: CallRoute = attrs.field(factory=CallRoute)
    browser: Mapping[str, Any] | None = attrs.field(default=None)
    api_timeout: float = attrs.field(default=10.0, validator=_positive)
    api_retries: int = 2
    max_pending: int = 256
    max_calls: int = 1000

    def __attrs_post_init__(self) -> None:
        if self.browser is not None:
            _checked_session(self, attrs.fields(CallsSettings).browser, self.browser)
        for key in ("max_pending", "max_calls"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be at least 1, got {getattr(self, key)}")
        if self.api_retries < 0:
            raise ConfigError("api_retries", f"must be >= 0, got {self.api_retries}")

    def route_for(self, event: RealtimeCallIncoming) -> CallRoute:
        """The first route that matches the call, else the default one."""
        return next((route for route in self.routes if route.matches(event)), self.default)

    def browser_session(self) -> Mapping[str, Any]:
        """The session config of a browser call or a client secret, fixed by the server."""
        return self.browser if self.browser is not None else self.default.session

    def secret(self) -> WebhookSecret | None:
        return None if self.webhook_secret is None else WebhookSecret.parse(self.webhook_secret)
