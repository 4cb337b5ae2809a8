"""Serving a version folder that holds only model.onnx: the manifest comes from the graph (Triton's auto-complete)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from modelpress.serving.graph_manifest import SYNTHESIZED, synthesize_manifest
from modelpress.serving.manifest import ManifestError, sha256_file
from tests.serving.conftest import client_for
from tests.sklearn_models import iris_classifier_onnx, iris_data

pytest.importorskip("skl2onnx")
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def bare_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bare")
    iris_classifier_onnx(root / "iris" / "1" / "model.onnx")
    iris_classifier_onnx(root / "zipped" / "1" / "model.onnx", zipmap=True)
    return root


def test_synthesized_manifest_reads_the_graph(bare_repo: Path) -> None:
    manifest = synthesize_manifest("iris", bare_repo / "iris" / "1")
    assert [(s.name, s.datatype, s.shape) for s in manifest.inputs] == [("X", "FP32", [-1, 4])]
    assert [(s.name, s.datatype, s.shape) for s in manifest.outputs] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP32", [-1, 3]),
    ]
    assert manifest.files["model.onnx"].sha256 == sha256_file(bare_repo / "iris" / "1" / "model.onnx")
    assert manifest.labels is None
    assert manifest.preprocessing.type == "none"
    assert manifest.lineage == []
    assert manifest.source["manifest"] == SYNTHESIZED
    assert manifest.source["producer"] == "skl2onnx"


def test_zipmap_output_is_named_with_the_way_out(bare_repo: Path) -> None:
    with pytest.raises(ManifestError, match=r"output 'output_probability' is seq\(map.*zipmap': False"):
        synthesize_manifest("zipped", bare_repo / "zipped" / "1")


async def test_bare_model_answers_like_the_file_and_says_it_has_no_manifest(bare_repo: Path) -> None:
    x, _ = iris_data()
    rows = x[:5]
    want = ort.InferenceSession(str(bare_repo / "iris" / "1" / "model.onnx")).run(None, {"X": rows})
    async with client_for(bare_repo) as client:
        meta = (await client.get("/v2/models/iris")).json()
        assert meta["parameters"]["manifest"] is False
        assert meta["parameters"]["verified"] is False
        assert meta["parameters"]["task"] == "generic"
        assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
        body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [5, 4], "data": rows.ravel().tolist()}]}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert outputs["label"]["data"] == want[0].tolist()
        np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (5, 3)), want[1], rtol=1e-6)
        # The ZipMap model is refused at load with the reason; the other model still serves.
        refused = await client.get("/v2/models/zipped")
        assert refused.status_code == 404
        assert "output_probability" in refused.json()["error"]
        assert "zipmap" in refused.json()["error"]
        # Per-model readiness says which one failed; the server stays ready for the one that serves (strict
        # readiness is the setting that would make the whole server unready).
        assert (await client.get("/v2/models/zipped/ready")).status_code != 200


async def test_a_file_that_is_not_onnx_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "junk" / "1").mkdir(parents=True)
    (tmp_path / "junk" / "1" / "model.onnx").write_bytes(b"this is not a model")
    async with client_for(tmp_path) as client:
        response = await client.get("/v2/models/junk")
        assert response.status_code == 404
        assert "no manifest.json, and ONNX Runtime cannot read the graph" in response.json()["error"]


# ---- one parse per bare load: the serving session supplies the signature ------------------------------------


def _graph(path: Path, *, output_shape: list | None, initializer_input: bool = True) -> Path:
    """x [batch, 0, 4] + w -> y: a weight also listed as a graph input, a symbolic and a 0 dim; ``output_shape``
    None declares y without a shape (only ONNX Runtime's shape inference knows it)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 0, 4])]
    if initializer_input:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4]))
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "weights_as_inputs",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="handmade")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def graphs_repo(bare_repo: Path) -> Path:
    _graph(bare_repo / "weights" / "1" / "model.onnx", output_shape=["batch", "d", 4])
    _graph(bare_repo / "inferred" / "1" / "model.onnx", output_shape=None)
    return bare_repo


class SessionCount:
    """Counts ``onnxruntime.InferenceSession`` constructions (every parse of a model file by ONNX Runtime)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = ort.InferenceSession
        count = self

        class Counted(real):  # type: ignore[misc, valid-type]
            def __init__(self, path_or_bytes, *args, **kwargs) -> None:
                count.paths.append(str(path_or_bytes))
                super().__init__(path_or_bytes, *args, **kwargs)

        monkeypatch.setattr(ort, "InferenceSession", Counted)


def _served(name: str, version_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from modelpress.serving.app import onnx_runtime_factory
    from modelpress.serving.graph_manifest import manifest_to_load
    from modelpress.serving.settings import Settings

    # No warm-up: ONNX Runtime takes a declared 0 dim literally (the manifest says -1, as it always did).
    runtime = onnx_runtime_factory(Settings(repository=version_dir.parent.parent, warmup_runs=0))(
        manifest_to_load(name, version_dir), version_dir
    )
    sessions = SessionCount(monkeypatch)
    runtime.load()
    return runtime, sessions


def _content(manifest) -> dict:
    return manifest.model_dump(mode="json", exclude={"created_at"})


@pytest.mark.parametrize("name", ["iris", "weights", "inferred"])
def test_the_served_manifest_is_the_one_a_signature_session_gave(
    graphs_repo: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_dir = graphs_repo / name / "1"
    want = synthesize_manifest(name, version_dir)  # what the server used to serve: a throwaway session's view
    runtime, sessions = _served(name, version_dir, monkeypatch)
    assert sessions.paths == [str(version_dir / "model.onnx")]  # ONNX Runtime parsed the file once
    assert type(runtime.manifest).__name__ == "ModelManifest"
    assert _content(runtime.manifest) == _content(want)
    runtime.unload()


def test_weights_listed_as_inputs_are_not_inputs_and_dynamic_dims_are_minus_one(
    graphs_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ = _served("weights", graphs_repo / "weights" / "1", monkeypatch)
    assert [(s.name, s.datatype, s.shape) for s in runtime.manifest.inputs] == [("x", "FP32", [-1, -1, 4])]
    assert [(s.name, s.datatype, s.shape) for s in runtime.manifest.outputs] == [("y", "FP32", [-1, -1, 4])]
    assert runtime.manifest.source == {
        "manifest": SYNTHESIZED, "verified": False, "producer": "handmade", "graph": "weights_as_inputs",
    }  # fmt: skip
    # An output the file declares without a shape gets the one ONNX Runtime infers (a reader of the file alone
    # would have no rank to give it).
    inferred, _ = _served("inferred", graphs_repo / "inferred" / "1", monkeypatch)
    assert [(s.name, s.shape) for s in inferred.manifest.outputs] == [("y", [-1, -1, 4])]


async def test_one_bare_load_builds_one_session(
    bare_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through the whole server: discovery, manifest, verification, runtime, warm-up.
    (tmp_path / "iris" / "1").mkdir(parents=True)
    (tmp_path / "iris" / "1" / "model.onnx").write_bytes((bare_repo / "iris" / "1" / "model.onnx").read_bytes())
    sessions = SessionCount(monkeypatch)
    async with client_for(tmp_path) as client:
        meta = (await client.get("/v2/models/iris")).json()
        assert meta["outputs"] == [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ]
    assert sessions.paths == [str(tmp_path / "iris" / "1" / "model.onnx")]


async def test_one_bare_load_hashes_the_file_once(bare_repo: Path, tmp_path: Path, monkeypatch) -> None:
    """The synthesized manifest's sha256 comes from the file itself: checking the file against it again is moot."""
    from modelpress.serving import manifest

    (tmp_path / "iris" / "1").mkdir(parents=True)
    (tmp_path / "iris" / "1" / "model.onnx").write_bytes((bare_repo / "iris" / "1" / "model.onnx").read_bytes())
    hashed: list[Path] = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda path: hashed.append(Path(path)) or real(path))
    async with client_for(tmp_path) as client:
        meta = (await client.get("/v2/models/iris")).json()
    assert meta["parameters"]["sha256"] == sha256_file(tmp_path / "iris" / "1" / "model.onnx")
    assert hashed == [tmp_path / "iris" / "1" / "model.onnx"]


@pytest.mark.parametrize("damage", ["truncated", "empty"])
async def test_a_damaged_bare_model_is_refused_naming_the_file_and_the_others_serve(
    bare_repo: Path, tmp_path: Path, damage: str
) -> None:
    good = (bare_repo / "iris" / "1" / "model.onnx").read_bytes()
    for name, data in (("iris", good), ("broken", good[: len(good) // 2] if damage == "truncated" else b"")):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "model.onnx").write_bytes(data)
    async with client_for(tmp_path) as client:
        refused = await client.get("/v2/models/broken")
        assert refused.status_code == 404
        error = refused.json()["error"]
        assert str(tmp_path / "broken" / "1" / "model.onnx") in error
        assert "no manifest.json, and ONNX Runtime cannot read the graph" in error
        assert "Traceback" not in error
        body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
        assert (await client.post("/v2/models/iris/infer", json=body)).status_code == 200


def test_a_runtime_that_leaves_a_bare_manifest_unsigned_is_refused(bare_repo: Path) -> None:
    # An injected runtime that knows nothing of bare models must not serve a version with no inputs.
    import asyncio

    from modelpress.serving.app import create_app
    from modelpress.serving.runtime.base import ModelRuntime
    from tests.serving.conftest import running, settings_for

    class Blind(ModelRuntime):
        loaded = False

        def validate(self, inputs):
            pass

        def load(self) -> None:
            self.loaded = True

        def predict(self, inputs, output_names):
            return {}

        def unload(self) -> None:
            self.loaded = False

        @property
        def ready(self) -> bool:
            return self.loaded

        @property
        def providers(self) -> list[str]:
            return []

    async def scenario() -> None:
        app = create_app(settings_for(bare_repo), handle_signals=False, runtime_factory=lambda m, d: Blind(m))
        async with running(app) as client:
            refused = (await client.get("/v2/models/iris")).json()["error"]
            assert "has no manifest.json and Blind does not read the model's inputs and outputs" in refused

    asyncio.run(scenario())
