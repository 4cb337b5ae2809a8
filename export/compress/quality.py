"""Verification figures for a variant whose PyTorch module was compressed (distilled or pruned) before export.

Two questions, two references: is the ONNX conversion right (outputs vs the *compressed* module, the hard
fp32 tolerance), and what did compression cost (accuracy vs the *original* checkpoint, agreement with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelpress.export.spec import VerifySpec
from modelpress.export.verify import Reference, measure_quality, reference, run_ort


def compressed_quality(
    model_path: Path,
    module: Any,
    test_x: np.ndarray,
    test_y: np.ndarray,
    original: Reference,
    task: str,
    spec: VerifySpec,
) -> dict[str, Any]:
    """The variant's quality dict, in the same keys as :func:`modelpress.export.verify.measure_quality`.

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
