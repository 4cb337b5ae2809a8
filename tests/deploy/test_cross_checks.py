"""Manifests against the code they deploy: settings, routes, ports, metric names and image names are real."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.files import (
    K8S,
    KUSTOMIZATIONS,
    PREFIX,
    SERVER_OVERLAYS,
    Stage,
    adapter_config,
    containers,
    of_kind,
    one,
    pod_specs,
)

# Labels Prometheus (Operator) attaches to every scraped series from the target, not the server.
TARGET_LABELS = {"namespace", "pod", "service", "container", "job", "instance", "endpoint"}
METRIC_RE = re.compile(r"\b((?:modelpress|process)_[a-z0-9_]+)\b")


def _settings_class():
    return pytest.importorskip(
        "modelpress.serving.settings", reason="modelpress.serving.settings not importable"
    ).Settings


def _manifest_env(rendered: dict[str, list[dict]]) -> dict[str, set[str]]:
    """{env var: where it is set} over ConfigMaps fed through envFrom and explicit container env."""
    found: dict[str, set[str]] = {}
    for name, objects in rendered.items():
        for cm in of_kind(objects, "ConfigMap"):
            if cm["metadata"]["name"].startswith("modelpress-settings"):
                for key in cm["data"]:
                    found.setdefault(key, set()).add(f"k8s/{name} ConfigMap")
        for workload, pod in pod_specs(objects):
            for container in containers(pod):
                for var in container.get("env", []):
                    if var["name"].startswith(PREFIX):
                        found.setdefault(var["name"], set()).add(f"k8s/{name} {workload}")
    return found


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """Build Settings exactly as the server does, from these env vars only."""
    import os

    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return _settings_class()()


def _settings_env(cm: dict) -> dict[str, str]:
    return {k: str(v) for k, v in cm["data"].items()}


def _server_configmap(objects: list[dict]) -> dict:
    return next(cm for cm in of_kind(objects, "ConfigMap") if cm["metadata"]["name"].startswith("modelpress-settings"))


# ------------------------------------------------------------------------------------------------------ settings


def test_every_env_var_is_a_setting(rendered: dict[str, list[dict]], stages: dict[str, Stage]) -> None:
    fields = set(_settings_class().model_fields)
    found = _manifest_env(rendered)
    for target in ("serve", "serve-gpu"):
        for key in stages[target].env():
            if key.startswith(PREFIX):
                found.setdefault(key, set()).add(f"Dockerfile {target}")
    assert len(found) >= 10
    unknown = {key: sorted(where) for key, where in found.items() if key[len(PREFIX) :].lower() not in fields}
    assert not unknown, f"not fields of modelpress.serving.settings.Settings: {unknown}"
    for name, objects in rendered.items():
        for cm in of_kind(objects, "ConfigMap"):
            if cm["metadata"]["name"].startswith("modelpress-settings"):
                stray = [k for k in cm["data"] if not k.startswith(PREFIX)]
                assert not stray, f"k8s/{name}: {stray} are not MODELPRESS_* settings"


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_configmap_values_parse_as_settings(
    rendered: dict[str, list[dict]], stages: dict[str, Stage], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Image ENV then the ConfigMap (envFrom wins over the image), read by Settings like the server does."""
    image = one(rendered[name], "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    target = "serve-gpu" if "serve-gpu" in image else "serve"
    env = {k: v for k, v in stages[target].env().items() if k.startswith(PREFIX)}
    data = _settings_env(_server_configmap(rendered[name]))
    env.update(data)
    settings = _settings_from(env, monkeypatch)
    assert settings.port == 8000
    assert settings.host == "0.0.0.0"
    expected = "s3://modelpress-models/repository" if name == "overlays/object-storage" else "/models"
    assert str(settings.repository) == expected
    assert settings.providers == data["MODELPRESS_PROVIDERS"].split(",")
    assert settings.require_gpu is (data["MODELPRESS_REQUIRE_GPU"] == "true")
    if name == "overlays/gpu":
        assert settings.providers[0] == "CUDAExecutionProvider"
        assert settings.require_gpu is True
        assert settings.gpu_mem_limit_bytes == int(data["MODELPRESS_GPU_MEM_LIMIT_BYTES"])


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_grace_period_covers_the_drain(
    rendered: dict[str, list[dict]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from(_settings_env(_server_configmap(rendered[name])), monkeypatch)
    pod = one(rendered[name], "Deployment")["spec"]["template"]["spec"]
    pre_stop = float(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    needed = pre_stop + settings.drain_grace_s + settings.drain_timeout_s
    assert pod["terminationGracePeriodSeconds"] > needed, f"SIGKILL would cut the drain ({needed:.0f} s needed)"


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_auth_token_comes_from_the_mounted_secret(
    rendered: dict[str, list[dict]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MODELPRESS_AUTH_TOKEN_FILE names a file inside a read-only mount of a Secret item; probes stay open."""
    settings = _settings_from(_settings_env(_server_configmap(rendered[name])), monkeypatch)
    assert settings.auth_token is None
    assert settings.auth_token_file is not None
    assert not settings.auth_health, "kubelet probes send no token: health must stay open"
    pod = one(rendered[name], "Deployment")["spec"]["template"]["spec"]
    token_file = settings.auth_token_file
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if token_file.parent == Path(m["mountPath"]))
    assert mount.get("readOnly") is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert token_file.name in [item["path"] for item in volume["secret"]["items"]]
    assert settings.repository_api is False or settings.auth_enabled()


def test_gpu_image_env_parses(stages: dict[str, Stage], monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in stages["serve-gpu"].env().items() if k.startswith(PREFIX)}
    settings = _settings_from(env, monkeypatch)
    assert settings.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert settings.require_gpu is True


# -------------------------------------------------------------------------------------------------- routes, ports


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    app_module = pytest.importorskip("modelpress.serving.app", reason="modelpress.serving.app not importable")
    settings = _settings_class()(repository=tmp_path_factory.mktemp("empty-repository"))
    app = app_module.create_app(settings, handle_signals=False)
    found = set()
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            found.add((method.upper(), path))
    return found


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_probe_paths_exist_in_the_app(rendered: dict[str, list[dict]], routes: set, name: str) -> None:
    server = one(rendered[name], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = server[probe]["httpGet"]
        assert ("GET", get["path"]) in routes, f"{probe} {get['path']} is not a route of modelpress.serving.app"
        assert ports[get["port"]] == 8000
    monitor = one(rendered[name], "ServiceMonitor")
    for endpoint in monitor["spec"]["endpoints"]:
        assert ("GET", endpoint["path"]) in routes


def test_the_documented_protocol_routes_exist(routes: set) -> None:
    paths = {path for _, path in routes}
    assert any(re.fullmatch(r"/v2/models/\{\w+\}/infer", p) for p in paths)
    assert any(re.fullmatch(r"/v1/models/\{\w+\}:predict", p) for p in paths)


def test_healthcheck_targets_a_route(stages: dict[str, Stage], routes: set) -> None:
    command = stages["serve"].last("HEALTHCHECK").exec_form()
    path = re.search(r"(/v2/health/\w+)", command[-1]).group(1)
    assert ("GET", path) in routes


# ---------------------------------------------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def exported(tiny_repository) -> dict[str, set[str]]:
    """{metric family or sample name: label names} scraped from an app serving a tiny model after traffic."""
    from fastapi.testclient import TestClient

    app_module = pytest.importorskip("modelpress.serving.app", reason="modelpress.serving.app not importable")
    settings = _settings_class()(repository=tiny_repository, max_queue_delay_us=0)
    app = app_module.create_app(settings, handle_signals=False)
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "tiny model not ready within 60 s"
            time.sleep(0.1)
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [0.1] * 8}]}
        assert client.post("/v2/models/tiny/infer", json=body).status_code == 200
        assert client.post("/v1/models/tiny:predict", json={"instances": [[1.0, 2.0, 3.0, 4.0]]}).status_code == 200
        assert client.post("/v2/models/tiny/infer", json={"inputs": []}).status_code == 400
        text = client.get("/metrics").text
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names.setdefault(family.name, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
            names[family.name].update(sample.labels)
    return names


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((K8S / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def _adapter_exprs(rendered: dict[str, list[dict]]) -> list[str]:
    rules = adapter_config(rendered["monitoring"])["rules"]
    return [r["seriesQuery"] for r in rules] + [r["metricsQuery"] for r in rules]


def test_scrape_has_the_fixed_names(exported: dict[str, set[str]]) -> None:
    """A sanity check of the scrape itself: what the fixture collected is the server's real output."""
    assert "modelpress_request_duration_seconds_bucket" in exported
    assert {"model", "version", "protocol", "outcome"} <= exported["modelpress_requests_total"]


def test_dashboard_and_adapter_use_exported_metrics(
    rendered: dict[str, list[dict]], exported: dict[str, set[str]]
) -> None:
    used = {}
    for source, exprs in (("dashboard", _dashboard_exprs()), ("adapter rule", _adapter_exprs(rendered))):
        for expr in exprs:
            for name in METRIC_RE.findall(expr):
                used.setdefault(name, source)
    assert len(used) >= 12
    missing = {name: source for name, source in used.items() if name not in exported}
    assert not missing, f"not exported by the server's /metrics: {missing}"


def test_dashboard_labels_exist(exported: dict[str, set[str]]) -> None:
    """Labels grouped on or matched in the dashboard are the server's or Prometheus' target labels."""
    known = TARGET_LABELS | {"le"} | set().union(*exported.values())
    for expr in _dashboard_exprs():
        labels = set()
        for group in re.findall(r"\b(?:by|ignoring|on)\s*\(([^)]*)\)", expr):
            labels |= {label.strip() for label in group.split(",") if label.strip()}
        labels |= set(re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!=|!~|=)", expr))
        unknown = labels - known
        assert not unknown, f"labels {sorted(unknown)} appear in no series: {expr}"


# ------------------------------------------------------------------------------------------------------ images


def test_images_are_dockerfile_targets(rendered: dict[str, list[dict]], stages: dict[str, Stage]) -> None:
    """Every image is <registry>/modelpress-<target>:<tag> for a target of the Dockerfile."""
    seen = set()
    for name in KUSTOMIZATIONS:
        for workload, pod in pod_specs(rendered[name]):
            for container in containers(pod):
                image = container["image"]
                repo = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
                assert repo.startswith("modelpress-"), f"k8s/{name} {workload}: {image}"
                target = repo[len("modelpress-") :]
                assert target in stages, f"k8s/{name} {workload}: {image} names no Dockerfile target"
                assert ":" in image, f"k8s/{name} {workload}: {image} has no tag"
                seen.add(target)
    assert seen == {"serve", "serve-gpu", "serve-baked", "pipeline"}


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_home_is_the_images_and_writable(rendered: dict[str, list[dict]], stages: dict[str, Stage], name: str) -> None:
    """The root filesystem is read-only, so the user's HOME (the image's) is an emptyDir mounted there."""
    pod = one(rendered[name], "Deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    target = "serve-gpu" if "serve-gpu" in server["image"] else "serve"
    home = {var["name"]: var.get("value") for var in server.get("env", [])}["HOME"]
    assert home == stages[target].env()["HOME"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    mount = next(m for m in server["volumeMounts"] if m["mountPath"] == home)
    assert not mount.get("readOnly", False)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume
