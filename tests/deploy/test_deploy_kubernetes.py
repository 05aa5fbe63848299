"""deploy/kubernetes: valid against the Kubernetes schemas, consistent with itself and rtbus.

ServiceMonitor and PrometheusRule are the Prometheus Operator's CRDs, which the bundled
schemas lack: their structure is checked here and the rules by promtool.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import KUBERNETES, RULES, clean_environment, load_yaml, promtool

from rtbus.cli import main

# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
CORE = ["configmap.yaml", "deployment.yaml", "service.yaml"]
OPERATOR = ["servicemonitor.yaml", "prometheusrule.yaml"]
# Closing WebSockets and the HTTP server after the drain and the workers' grace.
SHUTDOWN_MARGIN = 10


def _manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(KUBERNETES / name)
    return document


def _pod() -> dict[str, Any]:
    pod: dict[str, Any] = _manifest("deployment.yaml")["spec"]["template"]["spec"]
    return pod


def _container() -> dict[str, Any]:
    (container,) = _pod()["containers"]
    return dict(container)


def _config_text() -> str:
    return str(_manifest("configmap.yaml")["data"]["rtbus.toml"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", CORE)
def test_manifest_validates_against_the_kubernetes_schema(name: str, version: str) -> None:
    kubernetes_validate.validate(_manifest(name), version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = _manifest("deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    resources = _manifest("kustomization.yaml")["resources"]
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(resources) == sorted(on_disk) == sorted(CORE + OPERATOR)


def test_probes_hit_healthz_and_readyz_on_the_http_port() -> None:
    container = _container()
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 9464)
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"] == {"path": "/healthz", "port": "http"}
    assert probes["readinessProbe"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["args"][-2:] == ["--http", "0.0.0.0:9464"]


def test_termination_grace_fits_the_drain_deadline_and_a_margin() -> None:
    service = tomllib.loads(_config_text())["service"]
    needed = service["drain_seconds"] + service["worker_shutdown"] + SHUTDOWN_MARGIN
    assert _pod()["terminationGracePeriodSeconds"] >= needed


def test_runs_as_non_root_with_nothing_extra() -> None:
    pod, container = _pod(), _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_config_map_is_mounted_where_serve_reads_it() -> None:
    container, pod = _container(), _pod()
    config_map = _manifest("configmap.yaml")["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/rtbus"]
    assert volumes[mount["name"]]["configMap"]["name"] == config_map
    flag = container["args"].index("--config")
    assert container["args"][flag + 1] == "/etc/rtbus/rtbus.toml"


def test_secrets_come_from_a_secret_not_the_config_map() -> None:
    env = {e["name"]: e for e in _container()["env"]}
    for name in ("OPENAI_API_KEY", "RTBUS_HTTP_TOKEN"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "rtbus", name
    settings = tomllib.loads(_config_text())
    assert "api_key" not in settings.get("upstream", {})
    assert "token" not in settings.get("http", {})


def test_config_map_passes_rtbus_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environment(monkeypatch)
    path = tmp_path / "rtbus.toml"
    path.write_text(_config_text())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-deploy-test")
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "upstream openai" in out
    assert "sk-deploy-test" not in out


def test_config_map_without_the_secret_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environment(monkeypatch)
    path = tmp_path / "rtbus.toml"
    path.write_text(_config_text())
    assert main(["config", "check", str(path)]) == 2
    assert "upstream.api_key" in capsys.readouterr().err


def test_service_selects_the_pods_and_names_the_port() -> None:
    service = _manifest("service.yaml")
    labels = _manifest("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 9464, "http")


def test_service_monitor_scrapes_the_service_metrics() -> None:
    monitor, service = _manifest("servicemonitor.yaml"), _manifest("service.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    # The job label is the Service's name: the RtbusDown alert selects job="rtbus".
    assert service["metadata"]["name"] == "rtbus"


def test_prometheus_rule_carries_exactly_the_rules_file_groups() -> None:
    rule = _manifest("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == load_yaml(RULES)["groups"], (
        "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/rules: "
        "paste the rules file's groups under spec"
    )


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    path = tmp_path / "prometheusrule.rules.yml"
    path.write_text(yaml.safe_dump(_manifest("prometheusrule.yaml")["spec"]))
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", CORE + OPERATOR)
def test_every_object_is_labelled_as_rtbus(name: str) -> None:
    assert _manifest(name)["metadata"]["labels"]["app.kubernetes.io/name"] == "rtbus"
