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
