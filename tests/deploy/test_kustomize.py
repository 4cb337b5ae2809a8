"""The kustomizations render, validate against the Kubernetes schemas, and hold what a platform team asks for."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.files import (
    K8S,
    KUSTOMIZATIONS,
    SERVER_OVERLAYS,
    adapter_config,
    containers,
    of_kind,
    one,
    pod_specs,
)

# The oldest Kubernetes we support (matchLabelKeys in topology spread is on by default from 1.27; the
# validator's schemas start at 1.25) and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ("1.29.0", "1.32.0")

# ServiceMonitor is a CRD (Prometheus Operator): kubernetes-validate has no schema for it, so this is the part
# of monitoring.coreos.com/v1 ServiceMonitor we use, checked structurally.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                    "additionalProperties": False,
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            # SafeTLSConfig's fields (k8s/overlays/grpc-tls scrapes over HTTPS).
                            "tlsConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "insecureSkipVerify": {"type": "boolean"},
                                    "serverName": {"type": "string"},
                                    "ca": {"type": "object"},
                                    "cert": {"type": "object"},
                                    "keySecret": {"type": "object"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA}


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    raise ValueError(text)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_validates(rendered: dict[str, list[dict]], name: str) -> None:
    objects = rendered[name]
    assert objects, f"k8s/{name} rendered nothing"
    for obj in objects:
        crd = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if crd is not None:
            jsonschema.validate(obj, crd)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(
                    f"k8s/{name}: {obj['kind']}/{obj['metadata']['name']} invalid for {version} at {path}: {e.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as e:
                pytest.fail(f"k8s/{name}: no schema and no structural check for {obj['kind']}: {e.message}")


def test_validation_rejects_a_broken_object(rendered: dict[str, list[dict]]) -> None:
    """The validator is strict: an unknown field or a wrong type fails (so the test above can fail)."""
    deployment = json.loads(json.dumps(one(rendered["overlays/cpu"], "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    monitor = json.loads(json.dumps(one(rendered["overlays/cpu"], "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_server_overlay_has_every_piece(rendered: dict[str, list[dict]], name: str) -> None:
    kinds = {o["kind"] for o in rendered[name]}
    expected = {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    expected |= {"HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy"}
    assert expected <= kinds, f"k8s/{name} lacks {sorted(expected - kinds)}"
    assert all(o["metadata"].get("namespace") == "modelpress" for o in rendered[name] if o["kind"] != "Namespace")


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_deployment_probes_and_lifecycle(rendered: dict[str, list[dict]], name: str) -> None:
    pod = one(rendered[name], "Deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = server["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    # Warm-up room: at least 2 minutes before liveness may restart a loading server.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert server["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(server["resources"][kind]), f"{kind} must set cpu and memory"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_pods_run_restricted(rendered: dict[str, list[dict]], name: str) -> None:
    """Pod Security 'restricted' plus a read-only root filesystem with an emptyDir for /tmp."""
    for workload, pod in pod_specs(rendered[name]):
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["securityContext"]["runAsUser"] != 0, workload
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", workload
        assert pod.get("automountServiceAccountToken") is False, workload
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in containers(pod):
            sc = container["securityContext"]
            where = f"{workload} container {container['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp must be an emptyDir"


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_topology_spread_selects_the_server_pods(rendered: dict[str, list[dict]], name: str) -> None:
    deployment = one(rendered[name], "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} >= {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_selectors_agree(rendered: dict[str, list[dict]], name: str) -> None:
    """Service, PDB, NetworkPolicy and ServiceMonitor select exactly the Deployment's pods, on a named port."""
    objects = rendered[name]
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["http"]["port"] == 8000
    container_ports = {
        p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert service_ports["http"]["targetPort"] in container_ports
    assert all(e["port"] in service_ports for e in monitor["spec"]["endpoints"])
    policy_ports = [p["port"] for rule in one(objects, "NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]]
    assert all(p in container_ports or p in container_ports.values() for p in policy_ports)
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "the HPA owns replicas; a fixed count fights it on every apply"


@pytest.mark.parametrize("name", SERVER_OVERLAYS)
def test_envfrom_and_volumes_resolve(rendered: dict[str, list[dict]], name: str) -> None:
    """Every ConfigMap and claim a pod refers to is in the rendered set (kustomize renamed them consistently)."""
    objects = rendered[name]
    configmaps = {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}
    claims = {o["metadata"]["name"] for o in of_kind(objects, "PersistentVolumeClaim")}
    for workload, pod in pod_specs(objects):
        for container in containers(pod):
            for source in container.get("envFrom", []):
                if "secretRef" in source:  # created by the user (kubectl create secret), never rendered
                    continue
                assert source["configMapRef"]["name"] in configmaps, workload
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, workload


def test_hpa_scales_on_cpu_and_a_custom_pods_metric(rendered: dict[str, list[dict]]) -> None:
    hpa = one(rendered["overlays/cpu"], "HorizontalPodAutoscaler")
    kinds = {m["type"] for m in hpa["spec"]["metrics"]}
    assert {"Resource", "Pods"} <= kinds
    assert hpa["spec"]["minReplicas"] >= 2, "one replica cannot survive a node drain under the PDB"


def test_gpu_overlay_asks_for_a_gpu_and_requires_cuda(rendered: dict[str, list[dict]]) -> None:
    objects = rendered["overlays/gpu"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert server["image"].split(":")[0].endswith("modelpress-serve-gpu")
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    settings = one(objects, "ConfigMap")["data"]
    assert settings["MODELPRESS_PROVIDERS"].split(",")[0] == "CUDAExecutionProvider"
    assert settings["MODELPRESS_REQUIRE_GPU"] == "true"
    cpu_pod = one(rendered["overlays/cpu"], "Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in cpu_pod


def test_baked_overlay_mounts_no_claim(rendered: dict[str, list[dict]]) -> None:
    objects = rendered["overlays/cpu-baked"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert "/models" not in {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert not of_kind(objects, "PersistentVolumeClaim")
    assert pod["containers"][0]["image"].split(":")[0].endswith("modelpress-serve-baked")


def test_pipeline_job_trains_with_torchrun_then_exports(rendered: dict[str, list[dict]]) -> None:
    job = one(rendered["pipeline"], "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    train = pod["initContainers"][0]["command"]
    export = pod["containers"][0]["command"]
    assert train[0] == "torchrun"
    assert export[:2] == ["modelpress", "export"]
    # The export writes into the same claim the servers mount.
    claim = {v["name"]: v for v in pod["volumes"]}["models"]["persistentVolumeClaim"]["claimName"]
    server_pod = one(rendered["overlays/cpu"], "Deployment")["spec"]["template"]["spec"]
    assert claim == {v["name"]: v for v in server_pod["volumes"]}["models"]["persistentVolumeClaim"]["claimName"]
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["backoffLimit"] <= 3


def test_adapter_rules_serve_the_hpa_metrics(rendered: dict[str, list[dict]]) -> None:
    config = adapter_config(rendered["monitoring"])
    served = {rule["name"]["as"] for rule in config["rules"]}
    for rule in config["rules"]:
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}, "per-pod metrics for type: Pods"
    hpa = one(rendered["overlays/cpu"], "HorizontalPodAutoscaler")
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert wanted
    assert wanted <= served, f"the HPA asks for {sorted(wanted - served)} which no adapter rule serves"


def test_dashboard_is_wellformed(rendered: dict[str, list[dict]]) -> None:
    dashboard = json.loads((K8S / "monitoring" / "grafana-dashboard.json").read_text())
    configmaps = [o for o in of_kind(rendered["monitoring"], "ConfigMap") if "grafana-dashboard.json" in o["data"]]
    assert configmaps
    assert configmaps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmaps[0]["data"]["grafana-dashboard.json"]) == dashboard
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({quantile}, sum by (le, model) (rate(modelpress_request_duration_seconds_bucket"
            in exprs
        )
    for needed in ("modelpress_queue_duration_seconds", "modelpress_compute_duration_seconds",
                   "modelpress_batch_size_rows", "process_resident_memory_bytes", "modelpress_gpu_memory_used_bytes",
                   'outcome!="success"', "modelpress_requests_total"):  # fmt: skip
        assert needed in exprs, f"the dashboard lacks {needed}"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_termination_grace_exceeds_prestop(rendered: dict[str, list[dict]]) -> None:
    """The settings half (drain timeout) is checked against modelpress.serving.settings in test_cross_checks."""
    pod = one(rendered["overlays/cpu"], "Deployment")["spec"]["template"]["spec"]
    sleep = float(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > sleep
    monitor = one(rendered["overlays/cpu"], "ServiceMonitor")["spec"]["endpoints"][0]
    assert _duration_s(monitor["scrapeTimeout"]) < _duration_s(monitor["interval"])
