"""The quality strategy of recipe-trained tensor models: classification accuracy (or regression error).

A variant is checked for structure (the serving contract), then against the chain's starting module: the
ONNX conversion against its own PyTorch source (hard fp32 tolerance), what compression cost against the
checkpoint's module (the recipe's ``verify`` thresholds). Text encoders judge embedding fidelity instead
(:class:`modelpress.export.text.fidelity.EmbeddingFidelity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelpress.export.passes.base import OnnxHandle, QualityStrategy
from modelpress.export.spec import VerifySpec
from modelpress.export.verify import Reference, check_structure, judge, measure_quality, reference, run_ort

if TYPE_CHECKING:
    from torch import nn

    from modelpress.export.data import EvalData
    from modelpress.training.checkpoint import CheckpointMeta


class TensorQuality(QualityStrategy):
    """Accuracy, macro-F1 and top-1 agreement (classification) or MSE (regression) on the test split."""

    def __init__(self, module: nn.Module, meta: CheckpointMeta, data: EvalData, spec: VerifySpec):
        self.task = meta.task
        self._module, self._meta, self._data, self._spec = module, meta, data, spec
        self._reference = reference(module, data.test_x, data.test_y, meta.task)

    def measure(self, model: OnnxHandle) -> dict[str, Any]:
        check_structure(model.path, self._meta.input_spec.shape, self._meta.num_outputs)
        data, ref = self._data, self._reference
        source = model.source.module if model.source is not None else self._module
        if source is self._module:
            return measure_quality(model.path, data.test_x, data.test_y, ref, self.task, self._spec)
        # distilled or pruned: conversion checked against its own module, the loss against the checkpoint's
        return compressed_quality(model.path, source, data.test_x, data.test_y, ref, self.task, self._spec)

    def judge(
        self, model_name: str, variant: str, precision: str, quality: dict[str, Any], *, force: bool
    ) -> list[str]:
        return judge(model_name, precision, quality, self._spec, force=force)


def compressed_quality(
    model_path: Path,
    module: Any,
    test_x: np.ndarray,
    test_y: np.ndarray,
    original: Reference,
    task: str,
    spec: VerifySpec,
) -> dict[str, Any]:
    """A variant whose PyTorch module was compressed (distilled or pruned): two questions, two references.

    Same keys as :func:`modelpress.export.verify.measure_quality`.

    ``max_abs_diff`` and ``conversion_agreement`` compare the ONNX model with ``module`` (its own PyTorch
    source); ``top1_agreement``, ``reference_accuracy`` and ``accuracy_drop`` compare it with the original
    checkpoint's module (``original``), so the tolerance judges what compression cost.
    """
    own = reference(module, test_x, test_y, task)
    quality = measure_quality(model_path, test_x, test_y, own, task, spec)
    if task != "classification":
        quality["reference_mse"] = float(np.mean((original.outputs[:, 0] - test_y.astype(np.float32)) ** 2))
        return quality
    held = quality["compared_samples"]
    predicted = run_ort(model_path, test_x[:held]).argmax(axis=1)
    quality["conversion_agreement"] = quality["top1_agreement"]
    quality["top1_agreement"] = float(np.mean(predicted == original.outputs[:held].argmax(axis=1)))
    quality["reference_accuracy"] = original.accuracy
    quality["accuracy_drop"] = float(original.accuracy - quality["accuracy"])
    return quality
