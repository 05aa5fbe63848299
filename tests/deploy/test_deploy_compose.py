"""deploy/docker-compose.yml and deploy/Dockerfile: parse, point at files that exist, agree.

No docker engine runs here, so the files are read, not run: what each refers to exists, and
the image runs `rtbus serve` the way the issue and the Kubernetes manifests say.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
from deploy_support import COMPOSE, DEPLOY, ROOT, clean_environment, load_yaml

from rtbus.cli import main

DOCKERFILE = DEPLOY / "Dockerfile"
IMAGE_CONFIG = DEPLOY / "rtbus.toml"
SERVICES = {"rtbus", "prometheus", "grafana", "redis"}
SERVE = ["serve", "--config", "/etc/rtbus/rtbus.toml", "--http", "0.0.0.0:9464"]
SHUTDOWN_MARGIN = 10


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = load_yaml(COMPOSE)
    return compose


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    pairs = (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def _last(keyword: str) -> str:
    return [args for key, args in _instructions() if key == keyword][-1]


def _json_list(keyword: str) -> list[str]:
    value = json.loads(_last(keyword))
    assert isinstance(value, list), f"{keyword} must be the exec (JSON) form"
    return [str(item) for item in value]


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"expected a duration in seconds, got {duration!r}"
    return int(match.group(1))


def test_compose_runs_the_four_services() -> None:
    assert set(_compose()["services"]) == SERVICES


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", ()):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_compose_builds_rtbus_from_this_dockerfile() -> None:
    build = _compose()["services"]["rtbus"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_prometheus_scrapes_rtbus_with_the_rules() -> None:
    compose = _compose()
    prometheus = compose["services"]["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    (job,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    (static,) = job["static_configs"]
    assert static["targets"] == ["rtbus:9464"]
    assert "9464:9464" in compose["services"]["rtbus"]["ports"]


def test_compose_stop_grace_fits_the_drain() -> None:
    rtbus = _compose()["services"]["rtbus"]
    assert "./rtbus.toml:/etc/rtbus/rtbus.toml:ro" in rtbus["volumes"]
    service = tomllib.loads(IMAGE_CONFIG.read_text())["service"]
    needed = service["drain_seconds"] + service["worker_shutdown"] + SHUTDOWN_MARGIN
    assert _seconds(rtbus["stop_grace_period"]) >= needed


def test_compose_keeps_secrets_in_the_callers_environment() -> None:
    environment = _compose()["services"]["rtbus"]["environment"]
    assert environment["OPENAI_API_KEY"] == "${OPENAI_API_KEY:-}"
    assert environment["RTBUS_HTTP_TOKEN"] == "${RTBUS_HTTP_TOKEN:-}"


def test_image_config_passes_rtbus_config_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environment(monkeypatch)
    assert main(["config", "check", str(IMAGE_CONFIG)]) == 0
    assert "upstream sim" in capsys.readouterr().out


def test_image_config_switches_to_openai_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What docker-compose.yml's header promises: RTBUS_UPSTREAM_KIND=openai and a key."""
    clean_environment(monkeypatch)
    monkeypatch.setenv("RTBUS_UPSTREAM_KIND", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-compose-test")
    assert main(["config", "check", str(IMAGE_CONFIG)]) == 0
    assert "upstream openai" in capsys.readouterr().out


def test_image_is_python_311_slim_and_non_root() -> None:
    froms = [args for key, args in _instructions() if key == "FROM"]
    assert all(args.split()[0] == "python:3.11-slim" for args in froms)
    user = _last("USER").split(":")[0]
    assert user.isdigit(), "USER must be numeric, so runAsNonRoot can check it"
    assert int(user) > 0
    from_kubernetes = load_yaml(DEPLOY / "kubernetes" / "deployment.yaml")
    pod = from_kubernetes["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(user)


def test_image_serves_http_on_all_interfaces_and_stops_on_sigterm() -> None:
    assert _json_list("ENTRYPOINT") + _json_list("CMD") == ["rtbus", *SERVE]
    assert _last("STOPSIGNAL") == "SIGTERM"
    assert _last("EXPOSE") == "9464"
    kubernetes = load_yaml(DEPLOY / "kubernetes" / "deployment.yaml")
    (container,) = kubernetes["spec"]["template"]["spec"]["containers"]
    assert container["args"] == SERVE


def test_image_healthcheck_asks_healthz() -> None:
    healthcheck = _last("HEALTHCHECK")
    assert "CMD" in healthcheck
    assert "http://127.0.0.1:9464/healthz" in healthcheck


def test_image_copies_files_that_exist() -> None:
    for key, args in _instructions():
        if key == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"


def test_image_config_is_what_compose_mounts() -> None:
    copies = [args.split() for key, args in _instructions() if key == "COPY"]
    assert ["deploy/rtbus.toml", "/etc/rtbus/rtbus.toml"] in copies


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    copied = {
        source.rstrip("/")
        for key, args in _instructions()
        if key == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    }
    assert copied == kept
