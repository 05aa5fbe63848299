"""``rtbus serve`` as a real process: it becomes ready, drains on SIGTERM or SIGINT and exits
0, a second signal stops it at once, its logs parse, and no secret is ever printed."""

from __future__ import annotations

import functools
import gc
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trio
from cli_support import POLL, SAFETY_NET, Rtbus, restored_logging, rtbus
from support.http_client import request
from support.polling import eventually

from rtbus.cli import _serve as serve_module
from rtbus.cli import main
from rtbus.cli._serve import ECHO_SECONDS

OPENAI_KEY = "sk-env-secret-not-for-the-sim-0001"
TOKEN = "tok-http-secret-7d2e41"
CONFIG = """
[upstream]
kind = "sim"
speed = {speed}
[service]
drain_seconds = {drain}
[[sessions]]
id = "front"
[demo]
sessions = {demo}
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


def config(tmp_path: Path, *, speed: float = 20.0, drain: float = 10.0, demo: int = 1) -> str:
    path = tmp_path / "rtbus.toml"
    path.write_text(CONFIG.format(speed=speed, drain=drain, demo=demo), encoding="utf-8")
    return str(path)


def json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines()]


def logfmt_lines(text: str) -> list[dict[str, str]]:
    return [dict(pair.split("=", 1) for pair in shlex.split(line)) for line in text.splitlines()]


async def served_url(service: Rtbus, log_format: str = "json") -> str:
    """The URL the ``serving`` line names: port 0 became a real port."""
    line = await service.stderr.wait_for(lambda line: "serving" in line)
    if log_format == "json":
        return str(orjson.loads(line)["url"])
    return logfmt_lines(line)[0]["url"]


async def until_ready(url: str) -> None:
    async def ready() -> bool:
        return (await request(url, "GET", "/readyz")).status == 200

    await eventually(ready, SAFETY_NET, interval=POLL)


async def test_serve_becomes_ready_and_drains_on_sigterm(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": OPENAI_KEY, "RTBUS_HTTP_TOKEN": TOKEN}
    args = ("--http", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug")
    async with rtbus("serve", "--config", config(tmp_path), *args, env=env) as service:
        url = await served_url(service)
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        await until_ready(url)
        bearer = [("authorization", f"Bearer {TOKEN}")]
        listed = await request(url, "GET", "/v1/sessions", headers=bearer)
        assert listed.status == 200
        assert "front" in str(listed.json())
        wrong = [("authorization", "Bearer not-the-token")]
        assert (await request(url, "GET", "/v1/sessions", headers=wrong)).status == 401
        # The demo runs too, though readiness never waits for it.
        await service.stderr.wait_for(lambda line: '"session":"demo-1"' in line and "ready" in line)
        service.signal(signal.SIGTERM)
        assert await service.wait() == 0
    lines = json_lines(service.stderr.text)
    messages = [line["msg"] for line in lines]
    assert messages.index("draining") < messages.index("drained")
    closed = [line for line in lines if line["msg"] == "rtbus.session.closed"]
    assert {line["session"] for line in closed} == {"front", "demo-1"}
    everything = service.stdout.text + service.stderr.text
    assert OPENAI_KEY not in everything
    assert TOKEN not in everything


async def test_sigint_drains_too_and_logfmt_parses(tmp_path: Path) -> None:
    args = ("--config", config(tmp_path, demo=0), "--http", "127.0.0.1:0")
    async with rtbus("serve", *args) as service:
        url = await served_url(service, "logfmt")
        await until_ready(url)
        service.signal(signal.SIGINT)
        assert await service.wait() == 0
    lines = logfmt_lines(service.stderr.text)
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    assert [line["msg"] for line in lines][-1] == "drained"
    assert {"msg": "signal received", "signal": "SIGINT"}.items() <= next(
        line for line in lines if line["msg"] == "signal received"
    ).items()


async def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    # A slow simulator: the response below would take 100 s, and the drain would wait for it.
    args = ("--config", config(tmp_path, speed=0.02, drain=60, demo=0), "--http", "127.0.0.1:0")
    async with rtbus("serve", *args, "--log-format", "json") as service:
        url = await served_url(service)
        await until_ready(url)
        create = {"type": "response.create"}
        sent = await request(url, "POST", "/v1/sessions/front/events", json=create)
        assert sent.status == 202
        await eventually(functools.partial(_responding, url, "front"), SAFETY_NET, interval=POLL)
        service.signal(signal.SIGTERM)
        await service.stderr.wait_for(lambda line: '"msg":"draining"' in line)
        # Sooner, it would be the first signal delivered twice (see the next test).
        await trio.sleep(ECHO_SECONDS)
        service.signal(signal.SIGTERM)
        assert await service.wait() == 1
    messages = [line["msg"] for line in json_lines(service.stderr.text)]
    assert "stopped without draining" in messages
    assert "drained" not in messages


async def test_a_signal_delivered_twice_at_once_drains_once(tmp_path: Path) -> None:
    # `make run` stopped by SIGTERM to its process group: rtbus gets the group's signal and
    # the one make forwards, back to back. That is one request to drain, not two.
    args = ("--config", config(tmp_path, demo=0), "--http", "127.0.0.1:0", "--log-format", "json")
    async with rtbus("serve", *args) as service:
        await until_ready(await served_url(service))
        service.signal(signal.SIGTERM)
        service.signal(signal.SIGTERM)
        assert await service.wait() == 0
    messages = [line["msg"] for line in json_lines(service.stderr.text)]
    assert "stopped without draining" not in messages
    assert messages[-1] == "drained"


async def test_a_taken_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with rtbus("serve", "--http", f"127.0.0.1:{port}") as service:
            assert await service.wait() == 2
    assert service.stderr.lines == [
        f"rtbus serve: could not start: cannot serve HTTP on 127.0.0.1:{port}: address already "
        "in use (another process listens there (another rtbus?); choose a port with "
        "--http HOST:PORT or RTBUS_HTTP_PORT)"
    ]
    assert service.stdout.lines == []


# hypercorn leaves the socket it could not bind to the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("level", ["warning", "debug"])
def test_a_fault_found_while_starting_is_one_line_too(
    level: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port taken after it was tried: the HTTP server itself meets the fault.
    monkeypatch.setattr(serve_module, "http_port_problem", lambda host, port: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--http", f"127.0.0.1:{port}", "--log-level", level]) == 2
    gc.collect()  # here, where its warning is expected
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("rtbus serve: could not start: address already in use")
    # The traceback is for whoever asked for debug, logged before the line.
    assert ("Traceback" in err) is (level == "debug")


async def _responding(url: str, session: str) -> bool:
    answer = await request(url, "GET", f"/v1/sessions/{session}")
    return bool(answer.json()["statistics"]["responses_active"])


def test_a_bad_config_exits_2_naming_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[http]\nport = "abc"\n[log]\nformat = "xml"\n', encoding="utf-8")
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "http.port: expected an integer, got 'abc'" in err
    assert "log.format: expected one of 'logfmt', 'json', got 'xml'" in err


@pytest.mark.parametrize("http", ["9464", "host:", "host:99999", ":80"])
def test_a_bad_http_flag_is_a_usage_error(http: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--http", http])
    assert exited.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_a_session_that_cannot_start_fails_with_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A simulator that wants another key: the configured session is refused (401).
    sim = subprocess.Popen(
        [sys.executable, "-m", "rtbus.sim", "--port", "0", "--api-key", "sk-the-sims-own-key"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        base_url = sim.stdout.readline().strip()
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        path = tmp_path / "rtbus.toml"
        path.write_text(
            f'[upstream]\nkind = "openai"\nbase_url = "{base_url}"\n[[sessions]]\nid = "a"\n',
            encoding="utf-8",
        )
        args = ["serve", "--config", str(path), "--http", "127.0.0.1:0", "--log-format", "json"]
        assert main(args) == 1
    finally:
        sim.terminate()
        sim.wait()
        sim.stdout.close()  # type: ignore[union-attr]
    err = capsys.readouterr().err
    last = json_lines(err)[-1]
    assert (last["msg"], last["reason"]) == ("stopped", "configured sessions could not start: a")
    assert OPENAI_KEY not in err
