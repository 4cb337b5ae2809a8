import onnxruntime as ort
import pytest

from modelpress.export import api
from modelpress.export.api import export_checkpoint
from modelpress.export.errors import ExportError
from modelpress.export.passes.quantize import Quantize
from modelpress.export.repository import StagedVersion
from modelpress.serving.manifest import list_versions, read_manifest, sha256_file, verify_files


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_reexport_adds_a_version_and_never_touches_the_old_one(checkpoint_for, tmp_path):
    checkpoint, data = checkpoint_for("mlp")
    (first,) = export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], data=data, progress=False)
    digest = sha256_file(first.path / "model.onnx")
    (second,) = export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], data=data, progress=False)
    assert (first.version, second.version) == (1, 2)
    assert list_versions(tmp_path / "digits") == [1, 2]
    assert sha256_file(tmp_path / "digits" / "1" / "model.onnx") == digest
    assert read_manifest(tmp_path / "digits" / "2").version == 2
    with pytest.raises(ExportError, match="version 2 already exists"):
        export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], version=2, data=data, progress=False)
    (pinned,) = export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], version=7, data=data,
                                  progress=False)  # fmt: skip
    assert pinned.version == 7
    assert list_versions(tmp_path / "digits") == [1, 2, 7]


def test_a_failing_pass_publishes_nothing(checkpoint_for, tmp_path, monkeypatch):
    checkpoint, data = checkpoint_for("mlp")
    repo = tmp_path / "repo"
    export_checkpoint(checkpoint, repo, "digits", variants=["fp32"], data=data, progress=False)
    before = _tree(repo)

    def broken(self, model_path, out_dir, ctx):
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(Quantize, "run", broken)
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        export_checkpoint(checkpoint, repo, "digits", data=data, progress=False)
    assert _tree(repo) == before


def test_a_failure_after_some_variants_were_committed_rolls_them_back(checkpoint_for, tmp_path, monkeypatch):
    checkpoint, data = checkpoint_for("mlp")
    repo = tmp_path / "repo"
    export_checkpoint(checkpoint, repo, "digits", variants=["fp32"], data=data, progress=False)
    before = _tree(repo)
    real_commit = StagedVersion.commit
    calls = []

    def commit_then_fail(self, version=None, **kwargs):
        calls.append(self.manifest.name)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_commit(self, version, **kwargs)

    monkeypatch.setattr(StagedVersion, "commit", commit_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_checkpoint(checkpoint, repo, "digits", data=data, progress=False)
    assert calls == ["digits", "digits-fp16", "digits-int8"]
    assert _tree(repo) == before  # digits v2 and digits-fp16 v1 were retracted, no staging folder is left


def test_racing_publishers_take_different_versions(checkpoint_for, tmp_path, monkeypatch):
    checkpoint, data = checkpoint_for("mlp")
    staged = []

    def stage_twice(repository, items, version=None, on_file=None):
        # Stage while the export's work folder still exists; commit after, like two processes would.
        (item,) = items
        staged.extend(StagedVersion(repository, item.manifest, item.model_path) for _ in range(2))
        return []

    monkeypatch.setattr(api, "publish_all", stage_twice)
    export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], data=data, progress=False)
    first, second = staged
    # Both computed "next = 1" before either renamed: the loser's rename fails and it moves on.
    monkeypatch.setattr("modelpress.export.repository.taken_versions", lambda model_dir: [])
    assert first.commit().version == 1
    assert second.commit().version == 2
    for version in (1, 2):
        version_dir = tmp_path / "digits" / str(version)
        manifest = read_manifest(version_dir)
        assert manifest.version == version
        verify_files(manifest, version_dir)


def test_external_data_is_part_of_the_model(checkpoint_for, tmp_path):
    checkpoint, data = checkpoint_for("mlp")
    spec = {"steps": {"fp32": [{"pass": "onnx", "external_data": "always"}, {"pass": "optimize"}]}}
    (item,) = export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], spec=spec, data=data,
                                progress=False)  # fmt: skip
    files = item.manifest.files
    assert set(files) == {"model.onnx", "model.onnx.data"}
    assert files["model.onnx.data"].bytes > files["model.onnx"].bytes
    assert item.manifest.size.onnx_bytes == files["model.onnx"].bytes + files["model.onnx.data"].bytes
    session = ort.InferenceSession(str(item.path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": data.test_x[:3]})[0].shape == (3, 10)


def test_the_recipe_version_policy_travels_in_each_manifest(checkpoint_for, tmp_path):
    from modelpress.export.spec import parse_spec

    checkpoint, data = checkpoint_for("mlp")
    (item,) = export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32"], data=data, progress=False,
                                spec={"version_policy": "latest:2"})  # fmt: skip
    assert read_manifest(tmp_path / "digits" / str(item.version)).version_policy == "latest:2"
    with pytest.raises(ExportError, match="expected latest:N, all, or specific"):
        parse_spec({"version_policy": "newest"})


@pytest.mark.anyio
async def test_the_recipe_batching_travels_in_each_manifest_and_the_server_batches_so(checkpoint_for, tmp_path):
    from modelpress.export.spec import parse_spec
    from tests.serving.conftest import client_for

    checkpoint, data = checkpoint_for("mlp")
    batching = {"max_batch_size": 8, "max_queue_delay_us": 700}
    items = export_checkpoint(checkpoint, tmp_path, "digits", variants=["fp32", "int8"], data=data, progress=False,
                              spec={"batching": batching})  # fmt: skip
    for item in items:
        assert read_manifest(item.path).batching.model_dump(exclude_none=True) == batching
    async with client_for(tmp_path) as client:
        for name in ("digits", "digits-int8"):
            assert (await client.get(f"/v2/models/{name}")).json()["parameters"]["max_batch_size"] == 8
            config = (await client.get(f"/v2/models/{name}/config")).json()
            assert config["max_batch_size"] == 8
            assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 700
    with pytest.raises(ExportError, match=r"export\.batching\.max_batch_size: .*greater than or equal to 1"):
        parse_spec({"batching": {"max_batch_size": 0}})
    with pytest.raises(ExportError, match=r"export\.batching\.max_batch: Extra inputs"):
        parse_spec({"batching": {"max_batch": 8}})
