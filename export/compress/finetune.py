"""Fine-tuning after a compression step, and test-split quality, through the training stage's trainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from modelpress.training.data import Splits
from modelpress.training.recipe import TrainingConfig
from modelpress.training.trainer import LossFn, evaluate_outputs, fit, predict


def finetune_config(
    training_cfg: TrainingConfig | dict[str, Any], epochs: int, lr_scale: float = 0.3
) -> TrainingConfig:
    """The recipe's training settings for a short fine-tune: ``epochs`` epochs at a reduced learning rate.

    A pruned model starts close to a good solution; the full learning rate would throw that away.
    """
    cfg = training_cfg if isinstance(training_cfg, TrainingConfig) else TrainingConfig.model_validate(training_cfg)
    optimizer = cfg.optimizer.model_copy(update={"lr": cfg.optimizer.lr * lr_scale})
    schedule = cfg.schedule.model_copy(update={"warmup_epochs": 0.0})
    return cfg.model_copy(update={"epochs": epochs, "optimizer": optimizer, "schedule": schedule})


def make_finetune(
    splits: Splits,
    training_cfg: TrainingConfig | dict[str, Any],
    epochs: int,
    *,
    loss_fn: LossFn | None = None,
    lr_scale: float = 0.3,
    progress: bool = True,
) -> Callable[[nn.Module, int], dict[str, Any]]:
    """A ``finetune(model, step)`` callback for the pruning functions (trains in place, returns a summary)."""
    cfg = finetune_config(training_cfg, epochs, lr_scale)

    def finetune(model: nn.Module, step: int) -> dict[str, Any]:
        result = fit(model, splits, cfg, loss_fn=loss_fn, progress=progress)
        summary = result.summary()
        return {k: summary[k] for k in ("epochs_run", "best_epoch", "best_value", "monitor", "seconds")}

    return finetune


def split_quality(model: nn.Module, splits: Splits) -> dict[str, float]:
    """Loss, accuracy and macro-F1 (classification) or mse/mae/r2 (regression) on the test split."""
    outputs = predict(model, splits.X_test)
    return outputs_quality(outputs, splits)


def outputs_quality(outputs: np.ndarray, splits: Splits) -> dict[str, float]:
    """Test-split metrics from raw outputs (PyTorch or ONNX Runtime alike)."""
    num_classes = splits.num_outputs if splits.task == "classification" else None
    metrics = evaluate_outputs(np.asarray(outputs, dtype=np.float32), splits.y_test, splits.task, num_classes)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, float)}
