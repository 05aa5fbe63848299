"""The ``[calls]`` settings: routes matched on SIP headers, checked strictly, secrets hidden."""

from __future__ import annotations

import pytest

from rtbus.protocol import ConfigError, RealtimeCallIncoming, SipHeader
from rtbus.service import CallRoute, CallsSettings, SettingsError, load_settings

SECRET = "whsec_c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1zZW5kZXI="


def call(**headers: str) -> RealtimeCallIncoming:
    sip = tuple(SipHeader(name, value) for name, value in headers.items())
    return RealtimeCallIncoming(id="evt", created_at=0, call_id="rtc_1", sip_headers=sip)


SALES = CallRoute(name="sales", to="<sip:+1555*", session={"instructions": "Sell."})
BLOCKED = CallRoute(name="blocked", from_="*+1666*", action="reject", status_code=486)
VIP = CallRoute(name="vip", headers={"x-tier": "gold"})
ROUTES = CallsSettings(routes=(BLOCKED, SALES, VIP))


@pytest.mark.parametrize(
    ("headers", "route"),
    [
        ({"From": "<sip:+16660000@x>", "To": "<sip:+15551234@y>"}, "blocked"),  # first match wins
        ({"FROM": "<sip:+17770000@x>", "to": "<SIP:+15551234@y>"}, "sales"),  # any case
        ({"From": "<sip:+17770000@x>", "To": "<sip:+19990000@y>", "X-Tier": "GOLD"}, "vip"),
        ({"From": "<sip:+17770000@x>", "To": "<sip:+19990000@y>"}, "default"),
        ({}, "default"),  # a missing header matches only "*"
    ],
)
def test_the_first_matching_route_takes_the_call(headers: dict[str, str], route: str) -> None:
    assert ROUTES.route_for(call(**headers)).name == route


def test_the_accept_body_names_the_type_and_a_model() -> None:
    assert SALES.accept_body("gpt-realtime") == {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Sell.",
    }
    assert CallsSettings(browser={"instructions": "Web."}).browser_session() == {
        "instructions": "Web."
    }


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ({"session": {"audio": {"output": {"voice": 7}}}}, "session.audio.output.voice"),
        # A call's session is a conversation: caught by config check, not on every call.
        ({"session": {"type": "transcription"}}, "session.type"),
        ({"status_code": 200}, "status_code"),
        ({"to": ""}, "to"),
    ],
)
def test_a_bad_route_is_refused_naming_its_key(route: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        CallRoute(**route)  # type: ignore[arg-type]
    assert raised.value.key == key


def test_routes_load_with_from_spelled_as_in_sip() -> None:
    settings = load_settings(
        overrides={
            "calls.routes": [{"name": "b", "from": "*+1666*", "action": "reject"}],
            "calls.webhook_secret": SECRET,
        }
    )
    (route,) = settings.calls.routes
    assert (route.from_, route.action, route.status_code) == ("*+1666*", "reject", 603)
    assert SECRET not in repr(settings)
    assert SECRET in settings.secrets()


def test_a_malformed_webhook_secret_is_refused_and_never_shown() -> None:
    bad = "whsec_not*base64*at*all"
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"OPENAI_WEBHOOK_SECRET": bad})
    (problem,) = raised.value.problems
    assert problem.key == "calls.webhook_secret"
    assert "OPENAI_WEBHOOK_SECRET" in str(problem)
    assert bad not in str(raised.value)


def test_the_webhook_secret_comes_from_the_environment() -> None:
    settings = load_settings(environ={"OPENAI_WEBHOOK_SECRET": SECRET})
    assert settings.calls.secret() is not None
    assert settings.calls.webhook_secret == SECRET
