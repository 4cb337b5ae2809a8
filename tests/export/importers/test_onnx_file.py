"""ONNX files from other producers (skl2onnx, torch.onnx) → import → compressed variants → served answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from modelpress.export.importers.api import ImportRequest, import_model
from modelpress.serving.manifest import read_manifest
from tests.export.importers.helpers import cnn_onnx, two_input_onnx, v2_infer
from tests.sklearn_models import iris_classifier_onnx, iris_data, mlp_regressor_onnx

pytest.importorskip("skl2onnx")
pytestmark = pytest.mark.anyio


async def test_sklearn_regressor_fp32_fp16_int8_served_like_the_source(tmp_path: Path) -> None:
    source, x = mlp_regressor_onnx(tmp_path / "mlp.onnx")
    np.savez(tmp_path / "calib.npz", x=x)
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(source, repo, "mlp", variants=["fp32", "fp16", "int8"], calibration=tmp_path / "calib.npz",
                      task="regression"),
        progress=False,
    )  # fmt: skip
    assert [p.name for p in published] == ["mlp", "mlp-fp16", "mlp-int8"]
    want = ort.InferenceSession(str(source)).run(None, {"X": x[:16]})[0]
    for item in published:
        manifest = read_manifest(item.path)
        assert manifest.lineage[0].name == "import"
        assert manifest.lineage[0].config["producer"].startswith("skl2onnx")
        assert manifest.lineage[0].config["file"] == "mlp.onnx"
        assert len(manifest.lineage[0].config["sha256"]) == 64
        assert manifest.source["kind"] == "onnx"
        assert manifest.source["family"] == "mlp"
        got = (await v2_infer(repo, item.name, {"X": x[:16]}))["variable"]
        # The served answers are the source's within the difference the import measured and recorded.
        assert np.max(np.abs(got - want)) <= manifest.quality["max_abs_diff"] * 1.01 + 1e-6
    int8 = read_manifest(published[2].path)
    assert int8.precision == "int8"
    assert int8.lineage[-1].details["mode"] == "dynamic"
    assert int8.size.onnx_bytes < read_manifest(published[0].path).size.onnx_bytes


async def test_sklearn_classifier_with_labelled_eval_csv(tmp_path: Path) -> None:
    source = iris_classifier_onnx(tmp_path / "iris.onnx")
    x, y = iris_data()
    lines = ["a,b,c,d,species", *(",".join([*map(str, row), str(t)]) for row, t in zip(x, y, strict=True))]
    (tmp_path / "iris.csv").write_text("\n".join(lines) + "\n")
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(source, repo, "iris", variants=["fp32", "fp16"], eval=tmp_path / "iris.csv", label="species",
                      task="classification"),
        progress=False,
    )  # fmt: skip
    quality = read_manifest(published[1].path).quality
    assert quality["compared_samples"] == 150
    assert quality["top1_agreement"] == 1.0
    assert quality["accuracy"] == pytest.approx(quality["reference_accuracy"])
    assert quality["accuracy"] > 0.9
    got = await v2_infer(repo, "iris-fp16", {"X": x[:8]})
    assert got["label"].tolist() == ort.InferenceSession(str(source)).run(None, {"X": x[:8]})[0].tolist()


async def test_torch_onnx_cnn_static_int8_with_calibration(tmp_path: Path) -> None:
    source, _ = cnn_onnx(tmp_path / "cnn.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", image=rng.standard_normal((64, 3, 16, 16)).astype(np.float32))
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(source, repo, "cnn", variants=["fp32", "int8"], calibration=tmp_path / "calib.npz",
                      task="classification", force=True),
        progress=False,
    )  # fmt: skip
    int8 = read_manifest(published[1].path)
    assert int8.lineage[-1].details["mode"] == "static"
    assert int8.quality["compared_on"].startswith("calib.npz")
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(str(source)).run(None, {"image": x})[0]
    got = (await v2_infer(repo, "cnn", {"image": x}))["logits"]
    np.testing.assert_allclose(got, want, atol=1e-4)


async def test_static_int8_calibrates_a_graph_with_two_inputs_from_one_array_each(tmp_path: Path) -> None:
    source = two_input_onnx(tmp_path / "two.onnx")
    rng = np.random.default_rng(0)
    calibration = {"image": rng.standard_normal((48, 3, 16, 16)).astype(np.float32),
                   "extra": rng.standard_normal((48, 4)).astype(np.float32)}  # fmt: skip
    np.savez(tmp_path / "calib.npz", **calibration)
    published = import_model(
        ImportRequest(source, tmp_path / "repo", "two", variants=["fp32", "int8"], calibration=tmp_path / "calib.npz",
                      task="classification", force=True),
        progress=False,
    )  # fmt: skip
    int8 = read_manifest(published[1].path)
    assert int8.lineage[-1].details["mode"] == "static"
    assert int8.lineage[-1].details["calibration_samples"] == 48
    assert int8.quality["compared_samples"] == 48
    # Both inputs were calibrated: their activations have QDQ pairs in the quantized graph.
    import onnx

    graph = onnx.load(str(published[1].path / int8.model_file)).graph
    quantized = {i for n in graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    assert {"image", "extra"} <= quantized
    x = {"image": calibration["image"][:4], "extra": calibration["extra"][:4]}
    want = ort.InferenceSession(str(source)).run(None, x)[0]
    got = (await v2_infer(tmp_path / "repo", "two-int8", x))["logits"]
    assert np.max(np.abs(got - want)) <= int8.quality["max_abs_diff"] * 1.01 + 1e-6


def test_external_data_beside_the_file_travels_and_a_missing_one_is_named(tmp_path: Path) -> None:
    import onnx

    from modelpress.cli import build_app

    source, _ = cnn_onnx(tmp_path / "plain.onnx")
    proto = onnx.load(str(source))
    onnx.save_model(proto, str(tmp_path / "split.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)  # fmt: skip
    repo = tmp_path / "repo"
    published = import_model(ImportRequest(tmp_path / "split.onnx", repo, "split", variants=["fp32"]), progress=False)
    manifest = read_manifest(published[0].path)
    # The weights came along (inline: the model is far below the size that needs external data).
    assert manifest.size.onnx_bytes > (tmp_path / "split.onnx").stat().st_size
    assert manifest.quality["max_abs_diff"] < 1e-5
    (tmp_path / "weights.bin").unlink()
    from typer.testing import CliRunner

    result = CliRunner().invoke(build_app(), ["import", str(tmp_path / "split.onnx"), "-r", str(repo), "-n", "x"])
    assert result.exit_code == 2
    assert "external data" in result.stderr
    assert not (repo / "x").exists()


def test_external_data_holding_small_constants_imports(tmp_path: Path) -> None:
    """A source with its weights external (as torch.onnx's dynamo exporter saves them) keeps its small constants
    (a ReduceMean's axes) inline through the import: ORT's shape inference refuses them external."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 300)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 300])], [axes, weight],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save_model(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.data")
    published = import_model(ImportRequest(tmp_path / "m.onnx", tmp_path / "repo", "m", variants=["fp32", "fp16"]),
                             progress=False)  # fmt: skip
    assert [p.name for p in published] == ["m", "m-fp16"]
