import numpy as np
import onnx
import pytest

from modelpress.export.api import export_checkpoint
from modelpress.export.ort_session import cpu_session
from modelpress.export.verify import run_ort

STEPS = {
    "fp32": [{"pass": "onnx"}, {"pass": "optimize"}],
    "fp16w": [{"pass": "onnx"}, {"pass": "optimize"}, {"pass": "fp16", "weights_only": True}],
}


@pytest.fixture(scope="module")
def published(checkpoint_for, tmp_path_factory):
    checkpoint, data = checkpoint_for("cnn")
    repo = tmp_path_factory.mktemp("fp16w") / "repo"
    items = export_checkpoint(checkpoint, repo, "cnn", spec={"variants": ["fp32", "fp16w"], "steps": STEPS},
                              data=data, progress=False)  # fmt: skip
    return {p.manifest.source["variant"]: p for p in items}, data


def test_weights_only_fp16_halves_the_weights_and_keeps_fp32_outputs(published, tmp_path):
    by, data = published
    fp32, half = (by[v].path / by[v].manifest.model_file for v in ("fp32", "fp16w"))
    model = onnx.load(str(half))
    kinds = {t.name: t.data_type for t in model.graph.initializer}
    # the weights are fp16; only tensors too small to pay for their Cast node stay fp32
    assert any(k == onnx.TensorProto.FLOAT16 for k in kinds.values())
    small = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    assert all(int(np.prod(t.dims)) < 32 for t in small)
    assert by["fp16w"].manifest.precision == "fp16"
    weights = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    saved = fp32.stat().st_size - half.stat().st_size
    assert saved > 1.5 * weights  # ~2 bytes per weight, less the Cast nodes
    # inputs and outputs stay fp32; the computation too (outputs within fp16 rounding of the weights)
    out32, out16 = run_ort(fp32, data.test_x[:64]), run_ort(half, data.test_x[:64])
    assert out16.dtype == np.float32
    assert np.abs(out16 - out32).max() < 2e-2
    assert (out16.argmax(1) == out32.argmax(1)).mean() >= 0.98
    # ONNX Runtime folds every Cast of a weight when the session loads: the graph it runs is fp32's
    optimized = tmp_path / "optimized.onnx"
    cpu_session(half, optimized_path=optimized, level="basic")
    assert "Cast" not in {n.op_type for n in onnx.load(str(optimized)).graph.node}


def test_export_keeps_no_exporter_debug_metadata(published):
    by, _ = published
    model = onnx.load(str(by["fp32"].path / by["fp32"].manifest.model_file))
    assert len(model.graph.metadata_props) == 0
    assert all(len(v.metadata_props) == 0 for v in (*model.graph.input, *model.graph.output))
    assert all(len(n.metadata_props) == 0 for n in model.graph.node)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
