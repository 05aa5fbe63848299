"""Every example runs, as is, as a reader would run it: a real process, with ``--turns`` (or
``--events``) small so it stops by itself.

The gateway examples run against one ``rtbus serve`` (the embedded default, made faster)
found through ``RTBUS_URL``, as the README says; the others start what they need themselves.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.binaries import free_port
from support.redis_server import RedisServer
from support.rtbus_serve import clean_environment as environment
from support.rtbus_serve import serving

EXAMPLES = Path(__file__).parents[2] / "examples"
RUN_LIMIT = 60  # seconds: only a hung example meets it


def run_example(name: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``examples/NAME`` to its end; its stdout. Fails on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env=dict(env) if env is not None else environment(),
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "stderr"
    with serving(free_port(), log) as url:
        yield url


def test_quickstart(service_url: str) -> None:
    out = run_example("quickstart.py", "--turns", "2", env=environment(RTBUS_URL=service_url))
    assert len(out.splitlines()) == 2
    assert all(line.strip() for line in out.splitlines())


def test_tool_worker_through_the_gateway(service_url: str) -> None:
    env = environment(RTBUS_URL=service_url)
    out = run_example("tool_worker_gateway.py", "--turns", "2", env=env).splitlines()
    assert [line.split(":")[0] for line in out] == ["tool call", "answer"] * 2
    assert out[0].startswith('tool call: get_weather({"city":')


def test_gateway_raw(service_url: str) -> None:
    env = environment(RTBUS_URL=service_url)
    out = run_example("gateway_raw.py", "--events", "3", env=env).splitlines()
    assert len(out) == 3
    assert all(" response." in line and line.endswith(" bytes") for line in out)


def test_tool_worker_in_process() -> None:
    out = run_example("tool_worker_in_process.py", "--turns", "2").splitlines()
    assert [line.split(":")[0] for line in out] == ["tool call", "answer"] * 2


def test_service_in_process() -> None:
    out = run_example("service.py", "--sessions", "2", "--turns", "2").splitlines()
    assert len(out) == 4
    assert all(line.endswith(" response.done") for line in out)


def test_connection_on_its_own_simulator() -> None:
    out = run_example("connection.py", "--turns", "2").splitlines()
    assert len(out) == 2


def test_redis_worker(tmp_path: Path) -> None:
    with RedisServer.running(tmp_path) as redis:
        env = environment(RTBUS_BUS_REDIS_URL=redis.url)
        out = run_example("redis_worker.py", "--turns", "2", env=env).splitlines()
    assert len(out) == 2
    assert all(line.startswith("response.done #") for line in out)
    assert all(line.endswith(" from svc-a") for line in out)


def test_conversation_summary() -> None:
    out = run_example("conversation_summary.py", "--turns", "4").splitlines()
    # 4 turns are 8 items; the bound keeps 4 and the summary holds the gist of the rest.
    assert out[0] == "items kept: 4, dropped: 4"
    assert out[1].startswith("summary: user: Turn 1: remember 1. assistant: ")


def test_transcription() -> None:
    out = run_example("transcription.py", "--utterances", "2").splitlines()
    assert len(out) == 2
    assert all(line.startswith("item_") and line.endswith(": Hello there.") for line in out)
