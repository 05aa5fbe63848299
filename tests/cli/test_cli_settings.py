"""``load_settings``: the TOML file, the environment and the command line, and every kind of
mistake named by its key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rtbus import AzureConfig, ConfigError, OpenAIConfig
from rtbus.bus import BusLimits
from rtbus.service import Settings, SettingsError, SimUpstream, StartupSession, load_settings

KEY = "sk-test-0123456789abcdef"
Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write(text: str) -> Path:
        path = tmp_path / "rtbus.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def problems(path: Path | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """Every problem ``load_settings`` reports, by key."""
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ=env or {})
    found = {p.key: p.problem for p in caught.value.problems}
    assert len(found) == len(caught.value.problems), "one problem per key"
    return found


def test_no_file_is_the_embedded_default() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert isinstance(settings.upstream, SimUpstream)
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 9464)
    assert settings.demo_sessions == 3
    assert settings.upstream_kind == "sim"


def test_an_empty_file_is_the_default_too(write: Write) -> None:
    assert load_settings(write(""), environ={}) == Settings()


def test_a_full_file_maps_onto_the_service_config(write: Write) -> None:
    path = write(
        f"""
        [upstream]
        kind = "openai"
        api_key = "{KEY}"
        base_url = "http://127.0.0.1:1/v1"
        [service]
        drain_seconds = 3.5
        worker_shutdown = 2
        [service.session_intensity]
        max_restarts = 7
        period = 9.0
        [service.worker_backoff]
        base = 0.25
        [session_defaults]
        model = "gpt-realtime-mini"
        recycle_after = 600.0
        session = {{ instructions = "Be brief." }}
        [[sessions]]
        id = "a"
        [[sessions]]
        id = "b"
        model = "other-model"
        session = {{ instructions = "Be long." }}
        """
    )
    settings = load_settings(path, environ={})
    assert settings.upstream == OpenAIConfig(api_key=KEY, base_url="http://127.0.0.1:1/v1")
    config = settings.service_config()
    assert config.upstream == settings.upstream
    assert config.session_shutdown == 3.5
    assert config.worker_shutdown == 2.0
    assert config.session_intensity.max_restarts == 7
    assert config.worker_backoff.base == 0.25
    assert config.session_defaults.model == "gpt-realtime-mini"
    assert config.session_defaults.recycle_after == 600.0
    assert settings.sessions == (
        StartupSession(id="a"),
        StartupSession(id="b", model="other-model", session={"instructions": "Be long."}),
    )
    a, b = (settings.session_spec(s) for s in settings.sessions)
    assert (a.model, a.session) == ("gpt-realtime-mini", {"instructions": "Be brief."})
    assert (b.model, b.session) == ("other-model", {"instructions": "Be long."})
    assert settings.demo_sessions == 0  # not the simulator: no demo unless asked for


def test_the_simulator_needs_its_address_for_a_service_config() -> None:
    with pytest.raises(ValueError, match="upstream="):
        Settings().service_config()
    upstream = OpenAIConfig(api_key="sk-rtbus-demo", base_url="http://127.0.0.1:5/v1")
    assert Settings().service_config(upstream).upstream is upstream


def test_azure(write: Write) -> None:
    path = write('[upstream]\nkind = "azure"\nendpoint = "https://r.openai.azure.com"\n')
    env = {"AZURE_OPENAI_API_KEY": KEY, "OPENAI_API_KEY": "sk-not-this-one-0000"}
    settings = load_settings(path, environ=env)
    assert settings.upstream == AzureConfig(endpoint="https://r.openai.azure.com", api_key=KEY)


def test_an_unknown_key_is_an_error_with_a_suggestion(write: Write) -> None:
    assert problems(write("[http]\nprot = 9000\n")) == {
        "http.prot": "unknown key (did you mean 'port'?)"
    }


def test_an_unknown_section_is_an_error(write: Write) -> None:
    assert problems(write('[bus.kafka]\nurl = "kafka://localhost"\n')) == {
        "bus.kafka": "unknown key"
    }
    assert problems(write("[redis]\n")) == {"redis": "unknown section"}


def test_redis_and_placement_tables(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTBUS_BUS_REDIS_MAXLEN", "5000")
    settings = load_settings(
        write('[bus.redis]\nurl = "redis://r:6379/1"\n[placement]\nnode = "a"\n')
    )
    assert settings.bus.redis is not None
    assert (settings.bus.redis.url, settings.bus.redis.maxlen) == ("redis://r:6379/1", 5000)
    assert settings.placement is not None
    assert settings.node == "a"


def test_a_redis_variable_alone_turns_the_bridge_on(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTBUS_BUS_REDIS_URL", "redis://r:6379/2")
    monkeypatch.setenv("RTBUS_BUS_REDIS_PASSWORD", "pw-from-env")
    settings = load_settings(write(""))
    assert settings.bus.redis is not None
    assert settings.bus.redis.url == "redis://r:6379/2"
    assert "pw-from-env" in settings.secrets()
    assert "pw-from-env" not in repr(settings)


def test_a_key_of_another_upstream_kind(write: Write) -> None:
    found = problems(write('[upstream]\nendpoint = "https://x.example"\n'))
    assert found == {"upstream.endpoint": "unknown key for this kind (it is a key of kind 'azure')"}


@pytest.mark.parametrize(
    ("toml", "key", "problem"),
    [
        ('[http]\nport = "abc"', "http.port", "expected an integer, got 'abc'"),
        ("[http]\nport = true", "http.port", "expected an integer, got True"),
        ("[http]\nport = 70000", "http.port", "must be an integer 0..65535, got 70000"),
        ("[http]\nhost = 1", "http.host", "expected a string, got 1"),
        ('[service]\ndrain_seconds = "10"', "service.drain_seconds", "expected a number"),
        ("[service]\ndrain_seconds = -1", "service.drain_seconds", "must be a number >= 0"),
        ("[service]\ngc_threshold = -1", "service.gc_threshold", "must be an integer 0.."),
        (
            "[service]\ngc_threshold = 3000000000",
            "service.gc_threshold",
            "must be an integer 0..2147483647, got 3000000000",
        ),
        ("[service]\ngc_threshold = 1.5", "service.gc_threshold", "expected an integer"),
        (
            "[session_defaults]\nsequence_responses = 1",
            "session_defaults.sequence_responses",
            "expected true or false, got 1",
        ),
        ("http = 5", "http", "expected a table, got 5"),
        ('sessions = { id = "a" }', "sessions", "expected an array of tables ([[sessions]])"),
        ("[demo]\nsessions = -1", "demo.sessions", "must be a number >= 0, got -1"),
        ("[demo]\nturn_seconds = 0", "demo.turn_seconds", "must be a positive number, got 0"),
        (
            "[service.session_backoff]\nbase = -1",
            "service.session_backoff.base",
            "must be a finite number of seconds >= 0, got -1",
        ),
        (
            "[service.worker_intensity]\nmax_restarts = -1",
            "service.worker_intensity.max_restarts",
            "must be >= 0",
        ),
        ("[upstream]\nspeed = 0", "upstream.speed", "must be a positive number, got 0"),
    ],
)
def test_a_wrong_value_names_its_key(write: Write, toml: str, key: str, problem: str) -> None:
    found = problems(write(toml))
    assert list(found) == [key]
    assert problem in found[key]


@pytest.mark.parametrize(
    ("toml", "key", "problem"),
    [
        ('[log]\nformat = "xml"', "log.format", "expected one of 'logfmt', 'json', got 'xml'"),
        (
            '[log]\nlevel = "loud"',
            "log.level",
            "expected one of 'debug', 'info', 'warning', 'error', 'critical', got 'loud'",
        ),
        (
            '[upstream]\nkind = "gpt"',
            "upstream.kind",
            "expected one of 'sim', 'openai', 'azure', got 'gpt'",
        ),
    ],
)
def test_a_value_outside_its_choices_names_them(
    write: Write, toml: str, key: str, problem: str
) -> None:
    assert problems(write(toml)) == {key: problem}


def test_missing_required_keys(write: Write) -> None:
    found = problems(write('[upstream]\nkind = "openai"\n[[sessions]]\nmodel = "m"\n'))
    assert found == {
        "upstream.api_key": "is required (or set OPENAI_API_KEY)",
        "sessions[0].id": "is required",
    }
    found = problems(write('[upstream]\nkind = "azure"\napi_key = "azure-key-1"\n'))
    assert found == {"upstream.endpoint": "is required (or set AZURE_OPENAI_ENDPOINT)"}


def test_every_problem_is_reported_at_once(write: Write) -> None:
    path = write(
        """
        [http]
        port = "abc"
        [log]
        format = "xml"
        [[sessions]]
        id = "a"
        [[sessions]]
        id = "b"
        session = { instructions = 5 }
        [unknown]
        """
    )
    found = problems(path)
    assert set(found) == {"http.port", "log.format", "sessions[1].session.instructions", "unknown"}
    assert "expected a string" in found["sessions[1].session.instructions"]


def test_a_session_config_is_checked_in_the_defaults_too(write: Write) -> None:
    found = problems(write('[session_defaults]\nsession = { audio = "loud" }\n'))
    assert list(found) == ["session_defaults.session.audio"]


def test_duplicate_session_ids(write: Write) -> None:
    found = problems(
        write('[[sessions]]\nid = "a"\n[[sessions]]\nid = "b"\n[[sessions]]\nid = "a"\n')
    )
    assert found == {"sessions[2].id": "'a' is also sessions[0]'s id"}


def test_a_file_that_is_not_toml_or_not_there(write: Write, tmp_path: Path) -> None:
    path = write("[http\nport = 1\n")
    with pytest.raises(ConfigError, match=r"is not valid TOML: .*line 1") as caught:
        load_settings(path, environ={})
    assert caught.value.key == str(path)
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        load_settings(tmp_path / "missing.toml", environ={})
    assert caught.value.key == str(tmp_path / "missing.toml")


# --- the environment and the command line -------------------------------------------------


def test_rtbus_variables_override_the_file(write: Write) -> None:
    path = write('[http]\nport = 1000\n[log]\nlevel = "warning"\n')
    env = {
        "RTBUS_HTTP_PORT": "2000",
        "RTBUS_LOG_LEVEL": "debug",
        "RTBUS_SERVICE_SESSION_BACKOFF_BASE": "1.5",
        "RTBUS_SESSION_DEFAULTS_SEQUENCE_RESPONSES": "off",
        "RTBUS_DEMO_SESSIONS": "1",
        "RTBUS_HTTP_TOKEN": "",  # empty: unset
    }
    settings = load_settings(path, environ=env)
    assert settings.http.port == 2000
    assert settings.http.token is None
    assert settings.log.level == "debug"
    assert settings.service.session_backoff.base == 1.5
    assert settings.session_defaults.sequence_responses is False
    assert settings.demo_sessions == 1


def test_the_command_line_overrides_the_environment(write: Write) -> None:
    path = write("[http]\nport = 1000\n")
    overrides = {"http.port": 0, "http.host": "0.0.0.0"}
    settings = load_settings(path, environ={"RTBUS_HTTP_PORT": "2000"}, overrides=overrides)
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 0)


def test_vendor_variables_only_reach_their_kind(write: Write) -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:2/v1"}
    assert isinstance(load_settings(None, environ=env).upstream, SimUpstream)
    settings = load_settings(None, environ={**env, "RTBUS_UPSTREAM_KIND": "openai"})
    assert settings.upstream == OpenAIConfig(api_key=KEY, base_url="http://127.0.0.1:2/v1")
    path = write('[upstream]\nkind = "openai"\napi_key = "sk-from-the-file-000"\n')
    assert load_settings(path, environ=env).upstream == settings.upstream  # the variables win


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("RTBUS_HTTP_PORT", "abc", "expected an integer, got 'abc'"),
        ("RTBUS_SERVICE_DRAIN_SECONDS", "soon", "expected a number, got 'soon'"),
        ("RTBUS_SESSION_DEFAULTS_SEQUENCE_RESPONSES", "maybe", "expected true or false"),
        ("RTBUS_HTTP_PROT", "1", "is not a setting (did you mean RTBUS_HTTP_PORT?)"),
    ],
)
def test_a_bad_variable_is_named(name: str, value: str, problem: str) -> None:
    found = problems(None, {name: value})
    assert list(found) == [name]
    assert problem in found[name]


def test_a_variable_whose_value_is_wrong_is_named_beside_the_key() -> None:
    found = problems(None, {"RTBUS_HTTP_PORT": "70000", "RTBUS_LOG_FORMAT": "xml"})
    assert found["http.port"].endswith("(from RTBUS_HTTP_PORT)")
    assert (
        found["log.format"] == "expected one of 'logfmt', 'json', got 'xml' (from RTBUS_LOG_FORMAT)"
    )


def test_other_variables_are_left_alone() -> None:
    env = {"RTBUS_SIM_API_KEY": "x", "RTBUS_SOMETHING": "y", "HTTP_PORT": "z"}
    assert load_settings(None, environ=env) == Settings()


# --- secrets --------------------------------------------------------------------------------


def test_a_secret_is_never_in_a_repr(write: Write) -> None:
    path = write(
        f'[upstream]\nkind = "openai"\napi_key = "{KEY}"\n[http]\ntoken = "tok-secret-1"\n'
    )
    settings = load_settings(path, environ={})
    assert KEY not in repr(settings)
    assert "tok-secret-1" not in repr(settings)
    assert set(settings.secrets()) == {KEY, "tok-secret-1"}


def test_a_secret_is_never_in_an_error(write: Write) -> None:
    # A key pasted into the wrong field, and a wrong value under a secret key.
    path = write(f'[upstream]\nkind = "openai"\napi_key = "{KEY}"\nbase_url = "{KEY}"\n')
    found = problems(path)
    assert found == {"upstream.base_url": "must be an absolute http(s) or ws(s) URL, got '***'"}
    found = problems(write('[upstream]\nkind = "openai"\napi_key = 1234567\n[http]\ntoken = 99\n'))
    assert found == {"upstream.api_key": "expected a string", "http.token": "expected a string"}
    env = {"OPENAI_API_KEY": KEY, "RTBUS_UPSTREAM_KIND": "openai", "OPENAI_BASE_URL": KEY}
    assert KEY not in str(problems(None, env))


def test_the_conversation_record_is_configured_per_session_defaults(write: Write) -> None:
    path = write(
        """
        [session_defaults]
        resume = false
        record_max_items = 50
        record_max_bytes = 4096
        """
    )
    spec = load_settings(path, environ={}).session_defaults.spec()
    assert (spec.resume, spec.record.max_items, spec.record.max_bytes) == (False, 50, 4096)
    assert load_settings(None, environ={}).session_defaults.spec().resume is True


def test_a_record_bound_below_one_is_refused(write: Write) -> None:
    found = problems(write("[session_defaults]\nrecord_max_items = 0\n"))
    assert "session_defaults.record_max_items" in found


def test_bus_limits_come_from_the_file_and_the_environment(write: Write) -> None:
    path = write("[bus]\nblock_timeout_seconds = 2.5\npublisher_blocked_warn_seconds = 0.5\n")
    settings = load_settings(path, environ={"RTBUS_BUS_BLOCK_TIMEOUT_SECONDS": "7"})
    limits = settings.service_config(OpenAIConfig(api_key=KEY)).bus_limits
    assert (limits.remote_block_timeout, limits.blocked_warn_seconds) == (7.0, 0.5)
    assert Settings().bus.limits() == BusLimits()  # the bus owns the defaults
    assert problems(write("[bus]\nblock_timeout_seconds = 0\n")) == {
        "bus.block_timeout_seconds": "must be a positive number, got 0.0"
    }
