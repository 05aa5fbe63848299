"""Prometheus config, alert rules and their unit tests, checked by the real promtool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from deploy_support import (
    CATALOGUE,
    DEPLOY,
    RULES,
    RULES_TEST,
    alert_rules,
    load_yaml,
    metric_names,
    promtool,
    rule_expressions,
)

CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
# Rules the issue asks for, by what they watch.
REQUIRED_ALERTS = {
    "RtbusSessionFailures",
    "RtbusReconnectStorm",
    "RtbusBusDrops",
    "RtbusFrameToSubscriberSlow",
    "RtbusRedisDown",
    "RtbusRedisPendingGrowing",
    "RtbusRedisDeadLetters",
    "RtbusRedisTrimmedBeforeAck",
    "RtbusRedisDataLost",
}
NEVER = "vector(1) == 0"


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


def _alert_tests() -> list[dict[str, Any]]:
    return [case for test in load_yaml(RULES_TEST)["tests"] for case in test["alert_rule_test"]]


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    out = _ok(promtool("check", "config", CONFIG))
    assert "1 rule files found" in out
    assert load_yaml(CONFIG)["rule_files"] == ["rules/*.yml"]
    (job,) = load_yaml(CONFIG)["scrape_configs"]
    assert job["job_name"] == "rtbus"  # RtbusDown selects job="rtbus"


def test_rules_are_valid() -> None:
    _ok(promtool("check", "rules", RULES))


def test_rules_unit_tests_pass() -> None:
    _ok(promtool("test", "rules", RULES_TEST))


def test_the_asked_for_alerts_exist() -> None:
    assert {rule["alert"] for rule in alert_rules()} >= REQUIRED_ALERTS


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = _alert_tests()
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no firing case"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no quiet case"


def test_every_alerts_firing_test_fails_when_the_alert_never_fires(tmp_path: Path) -> None:
    """The unit tests can fail: with every alert's expression replaced by one that never
    fires, promtool reports a failure for each alert."""
    rules = load_yaml(RULES)
    for rule in alert_rules(rules):
        rule["expr"] = NEVER
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(yaml.safe_dump(rules))
    (tmp_path / "tests" / RULES_TEST.name).write_text(RULES_TEST.read_text())
    result = promtool("test", "rules", tmp_path / "tests" / RULES_TEST.name)
    assert result.returncode != 0
    for rule in alert_rules(rules):
        assert f"alertname: {rule['alert']}," in result.stdout + result.stderr, rule["alert"]


def test_every_alert_says_how_bad_and_what_happened() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_rules_read_only_catalogue_metrics_and_their_own_records() -> None:
    records = {name for name, expr in rule_expressions() if name.startswith("rtbus:")}
    for name, expr in rule_expressions():
        names = metric_names(expr)
        unknown = names - CATALOGUE - records
        assert not unknown, f"{name} reads metrics outside the catalogue: {unknown}"


def test_recording_rules_are_used() -> None:
    expressions = [expr for _, expr in rule_expressions()]
    for name, _ in rule_expressions():
        if name.startswith("rtbus:"):
            assert any(name in expr for expr in expressions), f"{name} is recorded, never read"


def test_deploy_readme_lists_every_alert() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for rule in alert_rules():
        assert f"| {rule['alert']} |" in readme, f"deploy/README.md does not list {rule['alert']}"
