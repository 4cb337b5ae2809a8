import numpy as np
import onnx
import onnxruntime as ort
import pytest

from modelpress.export.api import export_checkpoint
from modelpress.serving.manifest import read_manifest, verify_files

ARCHITECTURES = ["mlp", "cnn", "rnn", "transformer"]
# The 2-epoch tiny transformer has small logit margins, so int8 flips a few more borderline samples.
MIN_AGREEMENT = {"mlp": 0.99, "cnn": 0.99, "rnn": 0.98, "transformer": 0.97}


def _session(version_dir, manifest):
    return ort.InferenceSession(str(version_dir / manifest.model_file), providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_publishes_three_verified_variants(architecture, checkpoint_for, tmp_path):
    checkpoint, data = checkpoint_for(architecture)
    repo = tmp_path / "repo"
    spec = {"verify": {"min_agreement": MIN_AGREEMENT[architecture]}}
    published = export_checkpoint(checkpoint, repo, architecture, spec=spec, data=data, progress=False)

    by_variant = {p.manifest.source["variant"]: p for p in published}
    assert set(by_variant) == {"fp32", "fp16", "int8"}
    assert {p.name for p in published} == {architecture, f"{architecture}-fp16", f"{architecture}-int8"}
    for variant, item in by_variant.items():
        version_dir = repo / item.name / "1"
        manifest = read_manifest(version_dir)
        verify_files(manifest, version_dir)
        assert manifest.precision == variant
        assert [(t.name, t.datatype, t.shape) for t in manifest.inputs] == [("input", "FP32", [-1, 64])]
        assert [(t.name, t.datatype, t.shape) for t in manifest.outputs] == [("logits", "FP32", [-1, 10])]
        assert manifest.labels == [str(i) for i in range(10)]
        assert manifest.preprocessing.type == "standardize"
        assert len(manifest.preprocessing.mean) == 64
        assert manifest.size.onnx_bytes == sum(r.bytes for r in manifest.files.values())
        assert manifest.source["family"] == architecture
        assert manifest.lineage[0].name == "train"
        assert manifest.lineage[1].name == "onnx"
        assert manifest.lineage[1].details["opset"] == 18
        # Plain ONNX Runtime, fed what the manifest declares, at two batch sizes (the batch is dynamic).
        session = _session(version_dir, manifest)
        for batch in (1, 7):
            (out,) = session.run(None, {manifest.inputs[0].name: data.test_x[:batch]})
            assert out.shape == (batch, 10)
            assert out.dtype == np.float32
        quality = manifest.quality
        assert quality["accuracy"] > 0.3  # far above chance (0.1) on the real test split
        assert quality["accuracy_drop"] <= 0.005
        assert quality["top1_agreement"] >= MIN_AGREEMENT[architecture]
    fp32 = by_variant["fp32"].manifest.quality
    assert fp32["max_abs_diff"] <= 1e-4
    assert fp32["top1_agreement"] == 1.0
    if architecture != "rnn":  # ORT's dynamic quantizer has no GRU kernel: only the rnn's head gets int8
        assert by_variant["int8"].manifest.size.onnx_bytes < by_variant["fp32"].manifest.size.onnx_bytes


@pytest.mark.slow
def test_int8_is_static_qdq_for_the_cnn_and_dynamic_for_the_mlp(checkpoint_for, tmp_path):
    modes = {}
    for architecture in ("cnn", "mlp"):
        checkpoint, data = checkpoint_for(architecture)
        (item,) = export_checkpoint(checkpoint, tmp_path, architecture, variants=["int8"], data=data, progress=False)
        quantize = item.manifest.lineage[-1]
        modes[architecture] = quantize.details["mode"]
        ops = {n.op_type for n in onnx.load(str(item.path / "model.onnx")).graph.node}
        if architecture == "cnn":
            assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops  # QDQ around float Conv
            assert "ConvInteger" not in ops  # what quantize_dynamic would have made (slow at batch 1)
            assert quantize.config["calibration"] == "minmax"
            assert quantize.config["per_channel"] is True
        else:
            assert "MatMulInteger" in ops
            assert "Gemm" not in ops
            assert quantize.details["gemm_rewritten_to_matmul"] == 2
    assert modes == {"cnn": "static", "mlp": "dynamic"}


@pytest.mark.parametrize("calibration", ["entropy", "percentile"])
def test_static_calibration_methods(calibration, checkpoint_for, tmp_path):
    checkpoint, data = checkpoint_for("cnn")
    spec = {"steps": {"int8": [{"pass": "onnx"}, {"pass": "quantize", "mode": "static", "calibration": calibration,
                                "calibration_samples": 64}]}}  # fmt: skip
    (item,) = export_checkpoint(
        checkpoint, tmp_path, "cnn", variants=["int8"], spec=spec, data=data, progress=False, force=True
    )
    record = item.manifest.lineage[-1]
    assert record.config["calibration"] == calibration
    assert record.details["calibration_samples"] == 64
    assert item.manifest.quality["top1_agreement"] > 0.9
