import numpy as np
import torch

from modelpress.export.api import export_checkpoint
from modelpress.export.data import EvalData
from modelpress.training.checkpoint import CheckpointMeta, InputSpec, PreprocessingSpec, save_checkpoint
from modelpress.training.models import build_model


def test_a_regression_model_exports_with_a_predictions_output(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 8)).astype(np.float32)
    y = (X @ rng.standard_normal(8)).astype(np.float32)
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [16], "dropout": 0.0}, input_shape=[8], num_outputs=1, task="regression")
    meta = CheckpointMeta(architecture="mlp", arch_config={"hidden": [16], "dropout": 0.0}, task="regression",
                          input_spec=InputSpec(shape=[8]), num_outputs=1,
                          preprocessing=PreprocessingSpec(type="none"))  # fmt: skip
    checkpoint = save_checkpoint(model.eval(), meta, tmp_path / "ckpt")
    data = EvalData(calibration=X[:200], test_x=X[200:], test_y=y[200:])
    (item,) = export_checkpoint(checkpoint, tmp_path / "repo", "reg", variants=["fp32"], data=data, progress=False)
    manifest = item.manifest
    assert manifest.task == "regression"
    assert [(t.name, t.shape) for t in manifest.outputs] == [("predictions", [-1, 1])]
    assert manifest.quality["max_abs_diff"] <= 1e-4
    assert abs(manifest.quality["mse"] - manifest.quality["reference_mse"]) < 1e-4
    assert "accuracy" not in manifest.quality
