"""The other subcommands: the parser, ``rtbus sim``, ``rtbus bench`` and ``rtbus tail``."""

from __future__ import annotations

import re
import signal
import sys
import time
import types
from datetime import datetime
from pathlib import Path

import orjson
import pytest
import trio
from cli_support import SAFETY_NET, rtbus

from rtbus.cli import main
from rtbus.service import DemoSettings, HttpConfig, RunningService, Settings, run_service

TOKEN = "tok-tail-secret-5be1"


def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "config", "tail", "sim", "bench"):
        assert command in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


async def test_sim_serves_until_a_signal() -> None:
    async with rtbus("sim", "--port", "0", "--speed", "unpaced") as sim:
        url = await sim.stdout.wait_for(lambda line: line.startswith("http://"))
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        sim.signal(signal.SIGTERM)
        assert await sim.wait() == 0


def test_sim_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--port", "0", "--audio-seconds", "-1"]) == 2
    assert "response_audio_seconds" in capsys.readouterr().err


# --- bench ----------------------------------------------------------------------------------


def test_bench_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A benchmark of our own: the real ones take minutes; the command around them is tested.
    from bench._table import Row

    tiny = types.ModuleType("bench.bench_tiny")
    tiny.run = lambda: [Row("tiny", "a case", 1234.5, "ns/event", target="<= 2000", verdict="ok")]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.bench_tiny", tiny)
    out_file = tmp_path / "table.md"
    assert main(["bench", "bench_tiny", "--out", str(out_file)]) == 0
    table = out_file.read_text(encoding="utf-8")
    assert table.startswith("| bench | case   | value    | unit     |")
    assert "| tiny  | a case | 1,234.50 | ns/event |" in table
    assert capsys.readouterr().out == table


def test_bench_names_an_unknown_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "bench_nothing"]) == 2
    err = capsys.readouterr().err
    assert "no such benchmark: bench.bench_nothing" in err
    assert "bench.bench_decode" in err


def test_bench_outside_a_checkout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an install without the checkout's bench/ sees.
    monkeypatch.setitem(sys.modules, "bench", None)
    monkeypatch.setitem(sys.modules, "bench.__main__", None)
    assert main(["bench"]) == 2
    assert "run `rtbus bench` from a checkout" in capsys.readouterr().err


# --- tail -----------------------------------------------------------------------------------


async def test_tail_follows_a_running_service(nursery: trio.Nursery) -> None:
    settings = Settings(demo=DemoSettings(sessions=0), http=HttpConfig(port=0, token=TOKEN))
    running: RunningService = await nursery.start(run_service, settings)
    url = running.http.url
    async with (
        rtbus("tail", "--url", url, "--session", "tailed", env={"RTBUS_HTTP_TOKEN": TOKEN}) as tail,
        rtbus("tail", "--url", url, "--token", TOKEN, "--types", "session.*", "--json") as jq,
    ):
        for process in (tail, jq):
            await process.stderr.wait_for(lambda line: line.startswith("rtbus tail: following"))
        await running.service.open_session(id="tailed")
        first = await tail.stdout.wait_for(lambda line: line.endswith(" session.created"))
        # Led by the wall-clock time the service received it; piped, so no colours.
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} tailed #1 session\.created", first)
        ready = await tail.stdout.wait_for(lambda line: "rtbus.session.ready" in line)
        assert ready.split(" ", 1)[1].startswith("tailed #")
        assert "model=gpt-realtime" in ready
        created = orjson.loads(await jq.stdout.wait_for(lambda line: "session.created" in line))
        assert (created["session_id"], created["seq"]) == ("tailed", 1)
        received = datetime.fromisoformat(created["received_at"])
        assert abs(received.timestamp() - time.time()) < SAFETY_NET
        assert created["event"]["type"] == "session.created"
        # A signal ends it with 0, at once: the gateway answers the close handshake. The
        # other one is killed as the block ends.
        tail.signal(signal.SIGINT)
        with trio.fail_after(5):
            assert await tail.wait() == 0
    assert TOKEN not in tail.stdout.text + tail.stderr.text + jq.stderr.text


async def test_tail_with_a_wrong_token(nursery: trio.Nursery) -> None:
    settings = Settings(demo=DemoSettings(sessions=0), http=HttpConfig(port=0, token=TOKEN))
    running: RunningService = await nursery.start(run_service, settings)
    async with rtbus("tail", "--url", running.http.url, "--token", "tok-wrong-0000") as tail:
        assert await tail.wait() == 1
    # One line saying why: the gateway's close, 1008 and its reason.
    assert tail.stderr.lines == [
        "rtbus tail: the gateway closed the connection with 1008: the bearer token is not valid"
    ]
    assert "Traceback" not in tail.stderr.text
    assert "tok-wrong-0000" not in tail.stderr.text


def test_tail_with_a_url_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "--url", "ftp://example"]) == 2
    assert "ws://, wss://, http:// or https://" in capsys.readouterr().err
