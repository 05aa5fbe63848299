"""``rtbus top`` and ``rtbus tail`` in a pseudo-terminal, against a real ``rtbus serve``: what
a person sees on the screen (read with pexpect), colours included, and how they end."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from support.binaries import free_port
from support.rtbus_serve import clean_environment, serving

SCREEN_LIMIT = 30  # seconds for something to appear: only a hung process meets it
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TIME = r"\d\d:\d\d:\d\d\.\d{3}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("serve") / "stderr"
    with serving(free_port(), log) as url:
        yield url, log


def spawn(*args: str, **env: str) -> pexpect.spawn:
    """``rtbus ARGS`` in a 120x40 pseudo-terminal, without NO_COLOR unless given."""
    environment = {k: v for k, v in clean_environment(**env).items() if k != "NO_COLOR" or env}
    environment["TERM"] = "xterm-256color"
    return pexpect.spawn(
        sys.executable,
        ["-m", "rtbus.cli", *args],
        env=environment,
        dimensions=(40, 120),
        timeout=SCREEN_LIMIT,
        encoding="utf-8",
        # The terminal's echo of ^C can land between the bytes of a box-drawing character.
        codec_errors="replace",
    )


def test_top_redraws_the_sessions_in_place_until_ctrl_c(service: tuple[str, Path]) -> None:
    url, _ = service
    top = spawn("top", "--url", url, "--interval", "0.2")
    try:
        top.expect(r"demo-1")
        top.expect(r"ready")
        top.expect(r"events/s")  # a second frame: redrawn, not scrolled
        seen = _ESCAPE.sub("", top.before or "")
        assert "policy" in seen or "sessions" in seen
        assert "\x1b[" in (top.before or "")  # a terminal gets colours and cursor moves
        top.sendintr()
        top.expect(pexpect.EOF)
    finally:
        top.close()
    assert top.exitstatus == 0


def test_tail_shows_times_in_colour_and_says_when_the_service_is_lost_and_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    with serving(port, tmp_path / "first") as url:
        tail = spawn("tail", "--url", url, "--types", "response.done", "rtbus.session.ready")
        tail.expect(r"following")
        tail.expect(rf"{_TIME}\S* \S*demo-\d")
        assert "\x1b[" in (tail.after or "")  # coloured on a terminal
    try:
        tail.expect("lost the service at")
        with serving(port, tmp_path / "second"):
            # Both, in either order: one on stderr, the other an event on stdout.
            wanted = ["back at", "rtbus.gateway.reconnected"]
            while wanted:
                del wanted[tail.expect(wanted)]
        tail.sendintr()
        tail.expect(pexpect.EOF)
    finally:
        tail.close()
    assert tail.exitstatus == 0


def test_no_color_means_none(service: tuple[str, Path]) -> None:
    url, _ = service
    tail = spawn("tail", "--url", url, "--types", "response.done", NO_COLOR="1")
    try:
        tail.expect(rf"{_TIME} demo-\d #\d+ response\.done status=completed\r\n")
        assert "\x1b[" not in (tail.after or "")
        tail.sendintr()
        tail.expect(pexpect.EOF)
    finally:
        tail.close()


def test_top_once_prints_one_plain_view_for_scripts(service: tuple[str, Path]) -> None:
    url, _ = service
    once = [sys.executable, "-m", "rtbus.cli", "top", "--once", "--interval", "0.2"]
    done = subprocess.run(
        [*once, "--url", url], capture_output=True, text=True, timeout=SCREEN_LIMIT
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # piped: no colours, no cursor moves
    rows = [line for line in done.stdout.splitlines() if "│ demo-" in line]
    assert len(rows) == 3
    assert all(" ready " in row for row in rows)
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = subprocess.run(
        [*once, "--url", nobody], capture_output=True, text=True, timeout=SCREEN_LIMIT
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"rtbus top: cannot reach {nobody}: ")
    assert len(refused.stderr.splitlines()) == 1
