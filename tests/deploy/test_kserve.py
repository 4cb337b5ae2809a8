"""k8s/kserve against KServe's real CRD schemas (/work/shared/kserve-crds) and against what it deploys."""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy.files import K8S, PREFIX, Stage, one

ROOT = Path(__file__).resolve().parents[2]
# KServe's CRDs sit beside the checkout (../shared/kserve-crds); a git worktree is one level deeper.
CRD_PLACES = [Path(p) for p in filter(None, [os.environ.get("KSERVE_CRDS")])] + [
    ROOT.parent / "shared" / "kserve-crds",
    ROOT.parent.parent / "shared" / "kserve-crds",
]
KSERVE = K8S / "kserve"
CRD_FILES = {
    "ClusterServingRuntime": "serving.kserve.io_clusterservingruntimes.yaml",
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}


def strict(schema: dict) -> dict:
    """The schema with unknown properties refused, as ``kubectl apply --validate=strict`` would.

    An object schema that declares properties gets ``additionalProperties: false`` unless it keeps unknown fields
    (``x-kubernetes-preserve-unknown-fields``) or says what extra properties may be.
    """
    schema = copy.deepcopy(schema)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):  # fmt: skip
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@functools.cache  # the InferenceService CRD is 1.9 MB of YAML: parse it once
def crd_schema(kind: str, api_version: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 5x faster on the 1.9 MB InferenceService CRD
    crd = yaml.load((find_crds() / CRD_FILES[kind]).read_text(), Loader=loader)
    version = api_version.split("/", 1)[1]
    match = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    assert match["served"], f"{kind} {version} is not served by KServe"
    return strict(match["schema"]["openAPIV3Schema"])


def validate(obj: dict) -> None:
    """Raise jsonschema.ValidationError unless ``obj`` follows its CRD's strict schema.

    The schema is not checked against the meta-schema each time (``jsonschema.validate`` would: seconds each).
    """
    jsonschema.Draft7Validator(crd_schema(obj["kind"], obj["apiVersion"])).validate(obj)


def kserve_objects() -> list[dict]:
    docs = []
    for path in sorted(KSERVE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def find_crds() -> Path:
    for place in CRD_PLACES:
        if (place / CRD_FILES["InferenceService"]).is_file():
            return place
    pytest.fail(f"KServe CRDs not found in {[str(p) for p in CRD_PLACES]}: set KSERVE_CRDS to their folder")


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return kserve_objects()


def test_every_kserve_object_validates_against_its_crd(objects: list[dict]) -> None:
    kinds = set()
    for obj in objects:
        if obj["kind"] not in CRD_FILES:
            continue
        validate(obj)
        kinds.add(obj["kind"])
    assert kinds == {"ClusterServingRuntime", "InferenceService"}


def test_the_strict_schema_refuses_a_misspelled_field_and_a_wrong_type(objects: list[dict]) -> None:
    runtime = one(objects, "ClusterServingRuntime")
    misspelled = copy.deepcopy(runtime)
    misspelled["spec"]["supportedModelFormat"] = misspelled["spec"].pop("supportedModelFormats")
    with pytest.raises(jsonschema.ValidationError, match="supportedModelFormat"):
        validate(misspelled)
    wrong_type = copy.deepcopy(runtime)
    wrong_type["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(jsonschema.ValidationError):
        validate(wrong_type)


def test_the_runtime_serves_onnx_over_v1_and_v2_where_kserve_expects(objects: list[dict]) -> None:
    spec = one(objects, "ClusterServingRuntime")["spec"]
    assert {f["name"] for f in spec["supportedModelFormats"]} == {"onnx"}
    assert set(spec["protocolVersions"]) == {"v1", "v2"}
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"  # the name KServe merges the predictor's fields into
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[f"{PREFIX}REPOSITORY"] == "/mnt/models"  # where the storage initializer puts storageUri
    assert env[f"{PREFIX}PORT"] == "8080" == str(container["ports"][0]["containerPort"])
    assert env[f"{PREFIX}HOST"] == "0.0.0.0"
    assert spec["annotations"]["prometheus.kserve.io/port"] == "8080"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == 8080


def test_the_runtime_env_parses_as_settings(objects: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from modelpress.serving.settings import Settings

    container = one(objects, "ClusterServingRuntime")["spec"]["containers"][0]
    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    for var in container["env"]:
        if var["name"].startswith(PREFIX):
            assert var["name"][len(PREFIX) :].lower() in Settings.model_fields, var["name"]
            monkeypatch.setenv(var["name"], var["value"])
    settings = Settings()
    assert (settings.repository, settings.port, settings.poll_interval) == ("/mnt/models", 8080, 0.0)


def test_the_runtime_matches_the_image_and_the_base_deployment(
    objects: list[dict], rendered: dict[str, list[dict]], stages: dict[str, Stage]
) -> None:
    container = one(objects, "ClusterServingRuntime")["spec"]["containers"][0]
    base = one(rendered["overlays/cpu"], "Deployment")["spec"]["template"]["spec"]
    server = base["containers"][0]
    assert container["image"] == server["image"]  # same image and tag as the plain Deployment
    assert container["image"].split(":")[0].removeprefix("modelpress-") in stages
    user = stages["serve"].last("USER").args.split(":")[0]
    assert str(container["securityContext"]["runAsUser"]) == user == str(base["securityContext"]["runAsUser"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == server[probe]["httpGet"]["path"]
    assert container["resources"] == {k: {r: v for r, v in server["resources"][k].items() if r != "ephemeral-storage"}
                                      for k in ("requests", "limits")}  # fmt: skip


def test_the_probe_paths_are_routes_of_the_app(objects: list[dict], tmp_path: Path) -> None:
    from modelpress.serving.app import create_app
    from modelpress.serving.settings import Settings

    paths = set(create_app(Settings(repository=tmp_path), handle_signals=False).openapi()["paths"])
    container = one(objects, "ClusterServingRuntime")["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths


def test_the_inference_service_uses_the_runtime_with_an_s3_canary(objects: list[dict]) -> None:
    runtime = one(objects, "ClusterServingRuntime")
    predictor = one(objects, "InferenceService")["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert re.fullmatch(r"s3://[a-z0-9.-]+/\S+", model["storageUri"])
    assert 0 < predictor["canaryTrafficPercent"] < 100
    account = one(objects, "ServiceAccount")
    assert predictor["serviceAccountName"] == account["metadata"]["name"]
