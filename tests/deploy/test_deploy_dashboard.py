"""The Grafana dashboard: generated, complete, on the datasource variable, catalogue metrics only.

That every query evaluates against a real Prometheus scraping rtbus is
test_deploy_prometheus.py's job; here promtool parses each one.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from deploy_support import (
    CATALOGUE,
    COMPOSE,
    DASHBOARD,
    ROOT,
    as_promql,
    dashboard_queries,
    load_yaml,
    metric_names,
    promtool,
)

PROVISIONING = ROOT / "grafana" / "provisioning"
ROWS = [
    "Overview",
    "Latency",
    "Bus",
    "Upstream",
    "Conversations",
    "Calls",
    "Redis",
    "Gateway and HTTP",
]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_dashboard", ROOT / "tools" / "gen_dashboard.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_dashboard"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_checked_in_dashboard_is_the_generators_output() -> None:
    generated = _load_generator().generate()
    assert generated == DASHBOARD.read_text(), (
        f"{DASHBOARD.relative_to(ROOT)} is stale: run tools/gen_dashboard.py"
    )


def test_rows_are_the_promised_ones_in_order(dashboard: dict[str, Any]) -> None:
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == ROWS


def test_every_panel_queries_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    uses = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        assert panel["datasource"] == uses, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert all(t["datasource"] == uses for t in panel["targets"]), panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_queries_read_only_catalogue_metrics() -> None:
    for title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{title}: {expr} reads no rtbus metric"
        assert names <= CATALOGUE, f"{title}: not in the catalogue: {names - CATALOGUE}"


def test_the_rows_cover_what_operators_watch() -> None:
    read = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    assert read == CATALOGUE


def test_metric_names_finds_histogram_series_and_foreign_names() -> None:
    """The check above must be able to fail: a made-up name is reported as it is."""
    expr = "rate(rtbus_frame_to_subscriber_seconds_bucket[1m]) / rtbus_made_up_total"
    assert metric_names(expr) == {"rtbus_frame_to_subscriber_seconds", "rtbus_made_up_total"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as the expression of a recording rule."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promql_check_rejects_a_broken_query(tmp_path: Path) -> None:
    path = tmp_path / "broken.rules.yml"
    broken = {"record": "dashboard:broken", "expr": "sum by (state (rtbus_sessions)"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [broken]}]}))
    assert promtool("check", "rules", path).returncode != 0


def test_provisioning_loads_the_dashboard_folder_compose_mounts() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "rtbus.yml")["providers"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["../grafana/dashboards"] == provider["options"]["path"]
    assert mounts["../grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"


def test_provisioned_datasource_is_compose_prometheus() -> None:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in load_yaml(COMPOSE)["services"]
