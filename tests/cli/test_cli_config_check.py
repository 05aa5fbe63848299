"""``rtbus config check FILE``: a one-line summary and 0, or every problem and 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtbus.cli import main

EXAMPLE = Path(__file__).parents[2] / "examples" / "rtbus.toml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads the environment, as serve does: start from none of ours."""
    import os

    for name in [n for n in os.environ if n.startswith(("RTBUS_", "OPENAI_", "AZURE_OPENAI_"))]:
        monkeypatch.delenv(name)


def check(path: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["config", "check", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_example_config_passes(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = check(EXAMPLE, capsys)
    assert (status, err) == (0, "")
    assert out == (
        f"{EXAMPLE}: ok: upstream sim; http 127.0.0.1:9464 with no token; "
        "sessions front-desk, after-hours; demo sessions 1; log logfmt at info; no redis\n"
    )


def test_the_summary_shows_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rtbus.toml"
    path.write_text(
        '[upstream]\nkind = "openai"\napi_key = "sk-summary-secret-1"\n'
        'base_url = "https://user:pw-secret@proxy.example/v1"\n'
        '[http]\ntoken = "tok-summary-secret-2"\n'
        '[bus.redis]\nurl = "redis://10.0.0.5:6379/0"\n'
        'password = "pw-redis-secret"\n[placement]\nnode = "node-a"\n',
        encoding="utf-8",
    )
    status, out, _ = check(path, capsys)
    assert status == 0
    assert "upstream openai (https://proxy.example/v1); http 127.0.0.1:9464 with a token" in out
    assert "redis redis://10.0.0.5:6379/0; node node-a places sessions" in out
    secrets = ("sk-summary-secret-1", "pw-secret", "tok-summary-secret-2", "pw-redis")
    for secret in secrets:
        assert secret not in out


def test_placement_needs_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rtbus.toml"
    path.write_text('[placement]\nnode = "node-a"\n', encoding="utf-8")
    status, _, err = check(path, capsys)
    assert status == 2
    assert "placement: placing sessions across services needs [bus.redis]" in err


def test_every_problem_is_listed_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rtbus.toml"
    path.write_text(
        '[http]\nprot = 1\n[log]\nlevel = "loud"\n[[sessions]]\nmodel = "m"\n[redis]\n',
        encoding="utf-8",
    )
    status, out, err = check(path, capsys)
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: 4 problems",
        "  http.prot: unknown key (did you mean 'port'?)",
        "  log.level: expected one of 'debug', 'info', 'warning', 'error', 'critical', got 'loud'",
        "  sessions[0].id: is required",
        "  redis: unknown section",
    ]


def test_the_environment_is_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTBUS_HTTP_PORT", "nine")
    status, _, err = check(EXAMPLE, capsys)
    assert status == 2
    assert "RTBUS_HTTP_PORT: expected an integer, got 'nine'" in err


@pytest.mark.parametrize(
    ("text", "problem"), [("[http\n", "is not valid TOML"), (None, "cannot be read")]
)
def test_a_file_that_cannot_be_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, problem: str
) -> None:
    path = tmp_path / "rtbus.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    status, out, err = check(path, capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"{path}: {problem}")


BAD_SESSIONS = (
    '[session_defaults]\nsession = { audio = { output = { voise = "ash" } } }\n'
    '[[sessions]]\nid = "a"\nsession = { audio = { output = { voice = "nope" } } }\n'
    '[[sessions]]\nid = "b"\nsession = { max_output_tokens = 0 }\n'
)


def test_a_session_config_the_upstream_would_refuse_is_named_by_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checked by rtbus.protocol as strictly as the upstream checks a session.update.
    path = tmp_path / "rtbus.toml"
    path.write_text(BAD_SESSIONS, encoding="utf-8")
    status, out, err = check(path, capsys)
    assert (status, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == f"{path}: 3 problems"
    assert lines[1] == "  session_defaults.session.audio.output.voise: unknown field"
    assert lines[2].startswith("  sessions[0].session.audio.output.voice: 'nope' is not one of")
    assert lines[3] == ("  sessions[1].session.max_output_tokens: integer below minimum value 1")


def test_serve_refuses_a_bad_session_config_with_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rtbus.toml"
    path.write_text(BAD_SESSIONS, encoding="utf-8")
    assert main(["serve", "--config", str(path), "--http", "127.0.0.1:0"]) == 2
    assert "sessions[0].session.audio.output.voice" in capsys.readouterr().err


def test_one_pass_finds_cross_table_problems_beside_broken_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rtbus.toml"
    path.write_text(
        '[http]\nprot = 9000\n[placement]\nnode = "node-a"\n'
        '[[sessions]]\nid = "a"\n[[sessions]]\nid = "b"\nmodle = "x"\n'
        '[[sessions]]\nid = "a"\n[[sessions]]\nid = "b"\n',
        encoding="utf-8",
    )
    status, _, err = check(path, capsys)
    assert status == 2
    assert err.splitlines()[1:] == [
        "  http.prot: unknown key (did you mean 'port'?)",
        "  sessions[1].modle: unknown key (did you mean 'model'?)",
        "  placement: placing sessions across services needs [bus.redis]",
        "  sessions[2].id: 'a' is also sessions[0]'s id",
        "  sessions[3].id: 'b' is also sessions[1]'s id",
    ]


def test_a_secret_too_short_to_be_one_is_refused_without_being_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "t0k")
    path = tmp_path / "rtbus.toml"
    path.write_text(
        '[upstream]\nkind = "azure"\nendpoint = "https://x.openai.azure.com"\n'
        '[http]\ntoken = "tok1"\n',
        encoding="utf-8",
    )
    status, _, err = check(path, capsys)
    assert status == 2
    assert err.splitlines()[1:] == [
        "  upstream.ad_token: is too short to be a secret (at least 8 characters)"
        " (from AZURE_OPENAI_AD_TOKEN)",
        "  http.token: is too short to be a secret (at least 8 characters)",
    ]
