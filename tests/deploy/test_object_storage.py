"""The object-storage variant: servers pull from the bucket the pipeline Job publishes to, with no claim."""

from __future__ import annotations

from tests.deploy.files import containers, of_kind, one, pod_specs


def _setting(objects: list[dict], key: str) -> str:
    cm = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("modelpress-settings"))
    return cm["data"][key]


def test_servers_read_the_prefix_the_pipeline_publishes_to(rendered: dict[str, list[dict]]) -> None:
    served = _setting(rendered["overlays/object-storage"], "MODELPRESS_REPOSITORY")
    job = one(rendered["pipeline-object-storage"], "Job")
    export = next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "export")
    command = export["command"]
    assert command[command.index("--repository") + 1] == served
    assert served.startswith("s3://")


def test_no_claim_a_cache_emptydir_polling_and_optional_credentials(rendered: dict[str, list[dict]]) -> None:
    for name in ("overlays/object-storage", "pipeline-object-storage"):
        objects = rendered[name]
        assert not of_kind(objects, "PersistentVolumeClaim"), name
        for workload, pod in pod_specs(objects):
            assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v], workload
            for container in containers(pod):
                secrets = [s["secretRef"] for s in container.get("envFrom", []) if "secretRef" in s]
                if container["name"] in ("server", "export"):
                    assert secrets == [{"name": "modelpress-s3", "optional": True}], workload  # or workload identity
    objects = rendered["overlays/object-storage"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    cache = _setting(objects, "MODELPRESS_CACHE_DIR")
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[cache])
    assert "emptyDir" in volume
    assert float(_setting(objects, "MODELPRESS_POLL_INTERVAL")) > 0
