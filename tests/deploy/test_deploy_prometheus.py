"""A real Prometheus scrapes a running ``rtbus serve``: the dashboard and the rules work on it.

``rtbus serve`` runs as a subprocess on the embedded simulator with a quick demo workload;
Prometheus (tests/support/prometheus_server.py) scrapes it every second and evaluates the
rules every second. After a few scrapes every dashboard query and every rule expression
evaluates without error, and the main panels show data. Everything waits by polling with a
deadline.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import CATALOGUE, as_promql, dashboard_queries, rule_expressions
from support.binaries import free_port
from support.polling import poll_until
from support.prometheus_server import PrometheusServer, PromQLError

# The embedded simulator, sped up, and two demo sessions taking a turn every second or so.
SERVE_CONFIG = """\
[upstream]
kind = "sim"
speed = 20.0
response_audio_seconds = 0.5

[demo]
sessions = 2
turn_seconds = 1.0

[service]
drain_seconds = 2.0
worker_shutdown = 2.0
"""
# The panels someone opening the dashboard on a fresh machine must see data in.
MAIN_PANELS = ["Sessions by state", "Server events", "Frame to subscriber", "Time to first audio"]
SCRAPES = 4
TIMEOUT = 30.0
EXPOSITION_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def _rtbus_command() -> list[str]:
    script = Path(sys.executable).with_name("rtbus")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rtbus.cli"]


def _environment() -> dict[str, str]:
    # The test's config alone decides: no key or RTBUS_* override from the caller's shell.
    prefixes = ("RTBUS_", "OPENAI_", "AZURE_OPENAI_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            status: int = response.status
    except OSError:
        return 0
    return status


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``rtbus serve`` on a free port, ready; drained (SIGTERM) at the end. Its address."""
    directory = tmp_path_factory.mktemp("rtbus")
    (directory / "rtbus.toml").write_text(SERVE_CONFIG)
    address = f"127.0.0.1:{free_port()}"
    command = [*_rtbus_command(), "serve", "--config", str(directory / "rtbus.toml")]
    log_path = directory / "rtbus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--http", address], stdout=log, stderr=log, env=_environment()
        )
    try:
        _wait_ready(process, address, log_path)
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], address: str, log: Path) -> None:
    def alive() -> str:
        output = log.read_text(errors="replace")[-4000:]
        if process.poll() is not None:
            raise RuntimeError(f"rtbus serve exited with {process.returncode}\n{output}")
        return output

    def ready() -> bool:
        return _status(f"http://{address}/readyz") == 200

    poll_until(ready, "rtbus serve was not ready (/readyz)", TIMEOUT, alive)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, service: str
) -> Iterator[PrometheusServer]:
    """A real Prometheus that has scraped ``service`` a few times and evaluated the rules."""
    with PrometheusServer.running(tmp_path_factory.mktemp("prometheus"), target=service) as prom:
        prom.wait_for(
            lambda: prom.query(f'count_over_time(up{{job="rtbus"}}[1m]) >= {SCRAPES}'),
            f"scrape rtbus {SCRAPES} times",
            TIMEOUT,
        )
        yield prom


def _shows_data(prometheus: PrometheusServer, query: str) -> bool:
    """Whether ``query`` has a sample with a number (a quantile of no traffic is NaN)."""
    return any(math.isfinite(float(sample["value"][1])) for sample in prometheus.query(query))


def test_rtbus_is_up_to_prometheus(prometheus: PrometheusServer) -> None:
    (sample,) = prometheus.query('up{job="rtbus"}')
    assert sample["value"][1] == "1"


@pytest.mark.parametrize(("title", "expr"), list(dashboard_queries()))
def test_dashboard_query_evaluates(prometheus: PrometheusServer, title: str, expr: str) -> None:
    prometheus.query(as_promql(expr))  # raises PromQLError on an error


@pytest.mark.parametrize(("name", "expr"), list(rule_expressions()))
def test_rule_expression_evaluates(prometheus: PrometheusServer, name: str, expr: str) -> None:
    prometheus.query(expr)


def test_a_broken_query_is_an_error(prometheus: PrometheusServer) -> None:
    """What the two tests above rely on: an evaluation error raises, not an empty result."""
    with pytest.raises(PromQLError, match="bad_data"):
        prometheus.query("sum by (state (rtbus_sessions)")
    with pytest.raises(PromQLError, match="execution"):
        prometheus.query("rtbus_sessions / on () rtbus_sessions")


@pytest.mark.parametrize("title", MAIN_PANELS)
def test_main_panel_shows_data(prometheus: PrometheusServer, title: str) -> None:
    queries = [as_promql(expr) for panel, expr in dashboard_queries() if panel == title]
    assert queries, f"no panel titled {title!r}"
    for query in queries:
        shows_data = functools.partial(_shows_data, prometheus, query)
        prometheus.wait_for(shows_data, f"show data for {query}", TIMEOUT)


def test_demo_sessions_are_ready(prometheus: PrometheusServer) -> None:
    (sample,) = prometheus.query('sum(rtbus_sessions{state="ready"})')
    assert sample["value"][1] == "2"


def test_frame_histogram_has_the_objectives_bucket(prometheus: PrometheusServer) -> None:
    """p99 against 25 ms is only exact when 0.025 is a bucket edge."""
    assert prometheus.query('rtbus_frame_to_subscriber_seconds_bucket{le="0.025"}')


def test_rules_load_and_evaluate_healthy(prometheus: PrometheusServer) -> None:
    def rules() -> list[dict[str, Any]]:
        groups = prometheus.api("rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def all_evaluated() -> bool:
        return all(rule["health"] != "unknown" for rule in rules())

    prometheus.wait_for(all_evaluated, "evaluate every rule", TIMEOUT)
    loaded = {rule["name"]: rule for rule in rules()}
    assert set(loaded) == {name for name, _ in rule_expressions()}
    unhealthy = {
        name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"
    }
    assert not unhealthy


def test_no_alert_fires_on_a_healthy_demo(prometheus: PrometheusServer) -> None:
    alerts = prometheus.api("alerts")["data"]["alerts"]
    assert [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"] == []


def test_every_exported_metric_is_in_the_catalogue(prometheus: PrometheusServer) -> None:
    samples = prometheus.query('count by (__name__) ({__name__=~"rtbus_.+", job="rtbus"})')
    exported = {sample["metric"]["__name__"] for sample in samples}
    bases = {
        next((n[: -len(s)] for s in EXPOSITION_SUFFIXES if n[: -len(s)] in CATALOGUE), n)
        for n in exported
    }
    assert bases <= CATALOGUE, f"not in the catalogue: {bases - CATALOGUE}"
    assert len(bases) > 20  # the sessions, upstream, bus and actor families at least
