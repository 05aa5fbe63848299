"""The sans-IO parts of the HTTP surface: its config, the routing table, the wire helpers."""

from __future__ import annotations

from typing import Any

import pytest

from rtbus.protocol import ConfigError
from rtbus.service import HttpAddress, HttpConfig
from rtbus.service._http_routes import Route, Router
from rtbus.service._http_wire import HttpError, Request, Response, check_bearer, parse_json_object


def test_the_config_defaults_and_never_shows_the_token() -> None:
    config = HttpConfig(token="tok-very-secret")
    assert (config.host, config.port, config.max_body_bytes) == ("127.0.0.1", 9464, 1024 * 1024)
    assert "tok-very-secret" not in repr(config)
    assert "token='***'" in repr(config)
    assert "token=None" in repr(HttpConfig())


BAD_CONFIG = [
    pytest.param({"port": -1}, "http.port", id="port-negative"),
    pytest.param({"port": 65536}, "http.port", id="port-high"),
    pytest.param({"port": "80"}, "http.port", id="port-text"),
    pytest.param({"port": True}, "http.port", id="port-bool"),
    pytest.param({"host": ""}, "http.host", id="host-empty"),
    pytest.param({"max_body_bytes": 0}, "http.max_body_bytes", id="body-zero"),
    pytest.param({"session_start_timeout": 0}, "http.session_start_timeout", id="timeout-zero"),
    pytest.param({"session_start_timeout": float("inf")}, "http.session_start_timeout", id="inf"),
    pytest.param({"token": ""}, "http.token", id="token-empty"),
    pytest.param({"token": " tok-padded-secret"}, "http.token", id="token-padded"),
]


@pytest.mark.parametrize(("changes", "key"), BAD_CONFIG)
def test_a_bad_config_names_its_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        HttpConfig(**changes)
    assert raised.value.key == key
    assert "secret" not in str(raised.value)


def test_an_address_makes_its_url() -> None:
    assert HttpAddress("127.0.0.1", 9464).url == "http://127.0.0.1:9464"
    assert HttpAddress("::1", 80).url == "http://[::1]:80"


async def _ok(request: Request) -> Response:
    return Response(204, content_type=None)


ROUTER = Router(
    [
        Route("GET", "/v1/sessions", _ok),
        Route("GET", "/v1/sessions/{id}", _ok),
        Route("DELETE", "/v1/sessions/{id}", _ok),
        Route("POST", "/v1/sessions/{id}/events", _ok),
    ]
)


def test_routes_match_templates_and_hand_over_their_parameters() -> None:
    route, params = ROUTER.match("DELETE", "/v1/sessions/s-1")
    assert (route.template, params) == ("/v1/sessions/{id}", {"id": "s-1"})
    assert ROUTER.match("GET", "/v1/sessions/")[0].template == "/v1/sessions"
    assert ROUTER.template("/v1/sessions/x/events") == "/v1/sessions/{id}/events"
    assert ROUTER.template("/v1/sessions/x/y") is None


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/sessions/x/y", "/v1/sessions//events"])
def test_no_route_is_404(path: str) -> None:
    with pytest.raises(HttpError) as raised:
        ROUTER.match("GET", path)
    assert (raised.value.status, raised.value.code) == (404, "not_found")


def test_a_wrong_method_is_405_and_says_which_are_allowed() -> None:
    with pytest.raises(HttpError) as raised:
        ROUTER.match("PUT", "/v1/sessions/s1")
    assert (raised.value.status, raised.value.headers) == (405, {"allow": "DELETE, GET"})
    assert "use DELETE, GET" in raised.value.message


def test_the_bearer_scheme_is_case_insensitive_and_the_token_exact() -> None:
    check_bearer({"authorization": "bearer tok"}, "tok")
    check_bearer({"authorization": "Bearer  tok "}, "tok")
    for given in ["Bearer to", "Bearer tokk", "Bearer TOK", "Token tok", "tok"]:
        with pytest.raises(HttpError) as raised:
            check_bearer({"authorization": given}, "tok")
        assert raised.value.status == 401
        assert "www-authenticate" in raised.value.headers


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[]", "not an array"),
        (b"1", "not a number"),
        (b"null", "not null"),
        (b'"x"', "not a string"),
        (b"{", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_an_object_says_what_it_is(body: bytes, says: str) -> None:
    with pytest.raises(HttpError) as raised:
        parse_json_object(body, {"content-type": "application/json; charset=utf-8"})
    assert raised.value.status == 400
    assert says in raised.value.message


def test_an_empty_body_is_an_empty_object() -> None:
    assert parse_json_object(b"", {}) == {}
