"""A real ``redis-server`` for tests: a free port, a temp data dir, stop and restart, then kill.

```python
with RedisServer.running(tmp_path) as server:     # waits until it answers PING
    config = RedisConfig(url=server.url)
    server.stop(); server.start()                 # an outage: same port, same data dir
```

It persists with an fsync'd append-only file, so a stop (SIGTERM) and a start lose nothing
Redis acknowledged; ``kill`` (SIGKILL) is the crash. With ``persistent=False`` it keeps
nothing on disk: a restart comes back empty, as an unconfigured Redis does. Readiness is
polled with a deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import coredis

from support.binaries import free_port, require_binary
from support.polling import poll_until

__all__ = ["RedisServer"]

_READY_TIMEOUT = 10.0
_POLL = 0.01


class RedisServer:
    """One ``redis-server`` process (and its restarts) on ``port`` with data in ``directory``."""

    def __init__(
        self, directory: Path, *, password: str | None = None, persistent: bool = True
    ) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.directory = directory
        self.password = password
        self.persistent = persistent
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, directory: Path, *, password: str | None = None, persistent: bool = True
    ) -> Iterator[RedisServer]:
        """A started server, killed when the block ends whatever happened."""
        server = cls(directory, password=password, persistent=persistent)
        server.start()
        try:
            yield server
        finally:
            server.kill()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> coredis.Redis[bytes]:
        """A plain coredis client (enter it) for checks beside the code under test."""
        return coredis.Redis(host="127.0.0.1", port=self.port, password=self.password)

    def start(self) -> None:
        """Start it and wait until it answers PING (or fail after a deadline)."""
        assert not self.is_running, "redis-server is already running"
        self._process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait(self._answers, "answer PING")

    def stop(self) -> None:
        """Shut it down cleanly (SIGTERM: it writes its data), and wait until it has exited."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=_READY_TIMEOUT)
        self._wait(lambda: not self._answers(), "stop answering")

    def kill(self) -> None:
        """SIGKILL it, if it runs, and reap it. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait(timeout=_READY_TIMEOUT)

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        return command

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        # Without the password Redis still answers, with NOAUTH: it is up.
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        failure = f"redis-server on port {self.port} did not {what}"
        poll_until(condition, failure, _READY_TIMEOUT, interval=_POLL)
