"""``rtbus serve`` as a real process on a given port, for tests that run clients against it
from other processes (the examples, ``rtbus top`` and ``rtbus tail`` in a terminal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from support.polling import poll_until

__all__ = ["FAST", "clean_environment", "serving"]

#: The embedded default, quicker: the demo speaks often, audio is not paced in real time, and
#: a drain takes at most two seconds.
FAST = {
    "RTBUS_UPSTREAM_SPEED": "20",
    "RTBUS_DEMO_TURN_SECONDS": "0.5",
    "RTBUS_SERVICE_DRAIN_SECONDS": "2",
}
STARTUP_LIMIT = 60  # seconds: only a hung process meets it


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without rtbus's or OpenAI's variables, plus ``extra``."""
    own = {k: v for k, v in os.environ.items() if not k.startswith(("RTBUS_", "OPENAI_"))}
    return {**own, **extra}


@contextmanager
def serving(port: int, log: Path, env: Mapping[str, str] = FAST) -> Iterator[str]:
    """``rtbus serve`` on 127.0.0.1:``port`` until the block ends (then SIGTERM, which must
    drain it to exit 0); yields its URL once ``/readyz`` says ready."""
    url = f"http://127.0.0.1:{port}"
    with log.open("a+") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "rtbus.cli", "serve", "--http", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=clean_environment(**env),
        )

        def alive() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"rtbus serve exited {process.returncode}:\n{log.read_text()}")
            return None

        try:
            poll_until(lambda: _ready(url), "rtbus serve was not ready", STARTUP_LIMIT, alive)
            yield url
            process.send_signal(signal.SIGTERM)
            assert process.wait(STARTUP_LIMIT) == 0, log.read_text()
        finally:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
