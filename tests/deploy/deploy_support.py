"""What the deploy tests share: the files under test, their queries, and the metric catalogue."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.binaries import require_binary

__all__ = [
    "CATALOGUE",
    "COMPOSE",
    "DASHBOARD",
    "DEPLOY",
    "KUBERNETES",
    "ROOT",
    "RULES",
    "RULES_TEST",
    "alert_rules",
    "as_promql",
    "clean_environment",
    "dashboard_queries",
    "load_yaml",
    "metric_names",
    "promtool",
    "rule_expressions",
]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
RULES = DEPLOY / "prometheus" / "rules" / "rtbus.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "tests" / "rtbus.rules.test.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "rtbus.json"

#: The metric catalogue: every name rtbus exports (histograms and summaries by base name).
CATALOGUE = frozenset(
    {
        # sessions and upstream
        "rtbus_sessions",
        "rtbus_upstream_connects_total",
        "rtbus_upstream_reconnects_total",
        "rtbus_upstream_disconnects_total",
        "rtbus_session_failures_total",
        "rtbus_upstream_close_codes_total",
        "rtbus_server_events_total",
        "rtbus_client_events_total",
        "rtbus_server_errors_total",
        "rtbus_websocket_received_bytes_total",
        "rtbus_websocket_sent_bytes_total",
        "rtbus_websocket_received_frames_total",
        "rtbus_decode_seconds",
        "rtbus_frame_to_subscriber_seconds",
        "rtbus_response_duration_seconds",
        "rtbus_time_to_first_audio_seconds",
        "rtbus_rate_limit_remaining",
        "rtbus_rate_limit_limit",
        # the conversation outliving the connection
        "rtbus_session_resumes_total",
        "rtbus_session_recycles_total",
        "rtbus_session_items_restored_total",
        "rtbus_session_items_dropped_total",
        "rtbus_session_resume_wait_seconds",
        "rtbus_session_recycle_pause_seconds",
        # bus and actors
        "rtbus_bus_published_total",
        "rtbus_bus_delivered_total",
        "rtbus_bus_dropped_total",
        "rtbus_bus_subscriptions",
        "rtbus_bus_queue_depth",
        "rtbus_bus_queue_fill_ratio_max",
        "rtbus_bus_publishers_waiting",
        "rtbus_bus_publisher_blocked_seconds_max",
        "rtbus_bus_subscribers_disconnected_total",
        "rtbus_actor_restarts_total",
        "rtbus_actor_failures_total",
        "rtbus_actor_gave_up_total",
        "rtbus_worker_envelopes_lost_total",
        "rtbus_supervisor_remaining_intensity",
        "rtbus_build_info",
        "rtbus_gc_pause_seconds",
        # HTTP and gateway
        "rtbus_http_requests_total",
        "rtbus_gateway_connections",
        "rtbus_gateway_frames_total",
        "rtbus_gateway_messages_sent_total",
        "rtbus_gateway_errors_total",
        "rtbus_gateway_refused_total",
        "rtbus_gateway_stalled_total",
        # calls
        "rtbus_calls_total",
        "rtbus_calls_active",
        "rtbus_webhook_verifications_total",
        "rtbus_webhook_to_accept_seconds",
        "rtbus_calls_api_errors_total",
        # Redis bridge
        "rtbus_redis_up",
        "rtbus_redis_errors_total",
        "rtbus_redis_published_total",
        "rtbus_redis_publish_dropped_total",
        "rtbus_redis_publish_buffered",
        "rtbus_redis_stream_length",
        "rtbus_redis_pending",
        "rtbus_redis_oldest_pending_seconds",
        "rtbus_redis_reclaimed_total",
        "rtbus_redis_dead_lettered_total",
        "rtbus_redis_trimmed_before_ack_total",
        "rtbus_redis_lost_total",
        "rtbus_redis_consumer_lost_total",
        "rtbus_redis_groups_recreated_total",
    }
)
# Series a histogram (or summary) exports beside its base name.
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")
_METRIC = re.compile(r"\b(rtbus_[a-z0-9_]+|rtbus:[a-z0-9_:]+)\b")
# The Grafana macros the dashboard may use, and what stands in for them in plain PromQL.
_MACROS = {"$__rate_interval": "30s"}


def load_yaml(path: Path) -> Any:
    """The one YAML document in ``path``."""
    return yaml.safe_load(path.read_text())


def dashboard_queries(dashboard: Mapping[str, Any] | None = None) -> Iterator[tuple[str, str]]:
    """(panel title, expression) for every target of every panel."""
    model = dashboard if dashboard is not None else json.loads(DASHBOARD.read_text())
    for panel in model["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's macros replaced, as Grafana would send it."""
    for macro, value in _MACROS.items():
        expr = expr.replace(macro, value)
    assert "$" not in expr, f"a Grafana macro the tests do not know: {expr}"
    return expr


def alert_rules(rules: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every alerting rule in the rules file (or in ``rules``, a parsed one)."""
    for group in (rules if rules is not None else load_yaml(RULES))["groups"]:
        yield from (rule for rule in group["rules"] if "alert" in rule)


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(alert or record name, expression) for every rule in the rules file."""
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def metric_names(expr: str) -> set[str]:
    """The rtbus metric (base) names and recording rules an expression reads."""
    names = set()
    for name in _METRIC.findall(expr):
        base = next((name[: -len(s)] for s in _SERIES_SUFFIXES if name.endswith(s)), name)
        names.add(base if base in CATALOGUE else name)
    return names


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool (skip, or fail under CI, without it); the caller checks the outcome."""
    binary = require_binary("promtool", "prometheus")
    return subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the settings' variables out of the environment, so only a test's own count."""
    for name in list(os.environ):
        if name.startswith(("RTBUS_", "OPENAI_", "AZURE_OPENAI_")):
            monkeypatch.delenv(name)
