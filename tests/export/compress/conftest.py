import warnings

import pytest
import torch

from modelpress.training.data import load_splits
from modelpress.training.recipe import DataConfig, TrainingConfig


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny batches on a shared 2-core machine: more threads only oversubscribe.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits():
    """The real digits splits (8x8 images, train-only standardisation), training split cut to 400 for speed."""
    splits = load_splits(DataConfig(), seed=0)
    splits.X_train, splits.y_train = splits.X_train[:400], splits.y_train[:400]
    return splits


def export_onnx(model, example, path):
    """A plain TorchScript export for size checks (the export stage's own pass is tested through the pipeline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    return path


def quick_training(epochs: int = 2, **extra) -> TrainingConfig:
    """A short, deterministic CPU training config for fine-tuning and distillation in tests."""
    return TrainingConfig.model_validate(
        {"epochs": epochs, "batch_size": 64, "device": "cpu", "seed": 0, "optimizer": {"lr": 3e-3},
         "schedule": {"name": "constant"}, "early_stopping": {"enabled": False, "restore_best": False}, **extra}
    )  # fmt: skip
