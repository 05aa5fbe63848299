"""``rtbus serve`` runs on the embedded simulator, drains on SIGTERM and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys

import trio

from rtbus.cli import main

SAFETY_NET = 60  # seconds: only a hung process ever meets it


async def _read_until(stream: trio.abc.ReceiveStream, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = await stream.receive_some()
        assert chunk, f"the process ended before printing {marker!r}: {seen[-500:]!r}"
        seen += chunk
    return seen


async def test_serve_becomes_ready_and_drains_on_sigterm() -> None:
    command = [sys.executable, "-m", "rtbus.cli", "serve", "--sessions", "2"]
    with trio.fail_after(SAFETY_NET):
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            seen = await _read_until(process.stdout, b"demo-2 #3 rtbus.session.ready")
            assert b"demo-1 #1 session.created" in seen
            process.send_signal(signal.SIGTERM)
            errors = await _read_until(process.stderr, b"rtbus: drained")
            assert await process.wait() == 0
        finally:
            process.kill()
            await process.wait()
            await process.stdout.aclose()
            await process.stderr.aclose()
    assert b"draining" in errors


def test_bad_arguments_exit_2() -> None:
    assert main(["serve", "--sessions", "-1"]) == 2
