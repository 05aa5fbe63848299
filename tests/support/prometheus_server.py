"""A real ``prometheus`` for tests: a free port, a temp config and TSDB, the rtbus rules loaded.

```python
with PrometheusServer.running(tmp_path, target="127.0.0.1:9464") as prom:  # waits for /-/ready
    prom.wait_for(lambda: prom.query('up{job="rtbus"}'), "a scrape")
    prom.query("sum by (state) (rtbus_sessions)")   # the result list; an error raises
```

It scrapes ``target`` every second and evaluates the rules every second (job ``rtbus``, as the
RtbusDown alert expects), so a test sees data after a few seconds. Everything that waits on it
polls with a deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from support.binaries import free_port, require_binary
from support.polling import poll_until

__all__ = ["PromQLError", "PrometheusServer"]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "rtbus.rules.yml"
_READY_TIMEOUT = 30.0
_POLL = 0.1
T = TypeVar("T")


class PromQLError(Exception):
    """Raised when Prometheus answers a query with an error (bad PromQL, a failed evaluation)."""

    def __init__(self, expr: str, error_type: str, error: str) -> None:
        super().__init__(expr, error_type, error)
        self.expr = expr
        self.error_type = error_type
        self.error = error

    def __str__(self) -> str:
        return f"{self.error_type}: {self.error} (in {self.expr!r})"


class PrometheusServer:
    """One ``prometheus`` process on ``port``, its config and TSDB in ``directory``."""

    def __init__(
        self, directory: Path, *, target: str, rule_files: Sequence[Path] = (RULES,)
    ) -> None:
        self.binary = require_binary("prometheus", "prometheus")
        self.directory = directory
        self.target = target
        self.rule_files = tuple(rule_files)
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / "prometheus.log"

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, directory: Path, *, target: str, rule_files: Sequence[Path] = (RULES,)
    ) -> Iterator[PrometheusServer]:
        """A started server, stopped when the block ends whatever happened."""
        server = cls(directory, target=target, rule_files=rule_files)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until ``/-/ready`` answers 200 (or fail after a deadline)."""
        config = self.directory / "prometheus.yml"
        config.write_text(json.dumps(self._config()))  # JSON is YAML
        command = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(self._ready, "become ready (/-/ready)")

    def stop(self) -> None:
        """SIGTERM it and reap it; SIGKILL if it lingers. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant query's result (a list of samples); ``PromQLError`` if it fails."""
        body = self.api("query", {"query": expr})
        if body.get("status") != "success":
            raise PromQLError(expr, body.get("errorType", "?"), body.get("error", "?"))
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def api(self, endpoint: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """The JSON body of ``/api/v1/<endpoint>``, whatever the status (errors are 4xx)."""
        url = f"{self.url}/api/v1/{endpoint}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            data = exc.read()
        body: dict[str, Any] = json.loads(data)
        return body

    def wait_for(self, condition: Callable[[], T], what: str, timeout: float = 30.0) -> T:
        """Poll ``condition`` until it returns something truthy, and return that; fail after
        ``timeout`` seconds naming ``what`` did not happen (and the server's log)."""
        return poll_until(
            condition, f"prometheus did not {what}", timeout, self._check_alive, interval=_POLL
        )

    def log(self) -> str:
        """What prometheus wrote to stdout and stderr so far."""
        return self._log.read_text(errors="replace")[-4000:]

    def _config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": "rtbus",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [self.target]}],
                }
            ],
        }

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                status: int = response.status
        except OSError:
            return False
        return status == 200

    def _check_alive(self) -> str:
        process = self._process
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}\n{self.log()}")
        return self.log()
