from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from modelpress.export.pipeline import run_pipeline
from modelpress.serving.manifest import list_models, read_manifest, verify_files

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "digits.yaml"


@pytest.mark.slow
def test_pipeline_trains_the_digits_cnn_and_publishes_three_variants(tmp_path, one_torch_thread):
    # The project's recipe, narrowed so it trains in seconds: same export section and thresholds.
    overrides = ["training.epochs=6", "model.config.channels=[8, 16]", "model.config.convs_per_block=1",
                 "model.config.hidden=32"]  # fmt: skip
    result = run_pipeline(RECIPE, tmp_path / "repo", workdir=tmp_path / "work", overrides=overrides, progress=False)
    checkpoint, published = result.checkpoint, result.published
    assert checkpoint.parent == tmp_path / "work"
    assert result.kept == {}
    assert list_models(tmp_path / "repo") == ["digits", "digits-fp16", "digits-int8"]
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    for item in published:
        manifest = read_manifest(item.path)
        verify_files(manifest, item.path)
        assert manifest.source["checkpoint"] == str(checkpoint.resolve())
        assert manifest.quality["top1_agreement"] >= 0.99
        session = ort.InferenceSession(str(item.path / manifest.model_file), providers=["CPUExecutionProvider"])
        spec = manifest.inputs[0]
        assert (spec.name, spec.datatype, spec.shape) == ("input", "FP32", [-1, 64])
        assert session.run(None, {spec.name: x})[0].shape == (5, 10)
    assert published[0].manifest.quality["max_abs_diff"] <= 1e-4
