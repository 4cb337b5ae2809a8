"""Quality metrics computed on numpy arrays (so export and tests can call them without torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
REGRESSION_METRICS = ("mse", "mae", "r2")
# Which way is better, for early stopping and the search.
HIGHER_IS_BETTER = {"accuracy": True, "macro_precision": True, "macro_recall": True, "macro_f1": True, "r2": True}


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, labels: Sequence[int] | None = None
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and the confusion matrix (rows: true class, columns: predicted).

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        labels: the class indices to report (so a class absent from this sample still gets a row); default:
            every index seen in either array.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long, got {y_true.size} and {y_pred.size}")
    classes = list(labels) if labels is not None else sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average="macro", zero_division=0
    )
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "samples": int(y_true.size),
    }


def regression_metrics(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Mean squared error, mean absolute error and R² (averaged over outputs when there are several)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(y_true.shape)
    if y_true.size == 0:
        raise ValueError("y_true is empty")
    err = y_pred - y_true
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    resid = (err**2).sum(axis=0)
    # A constant target has no variance to explain: R² is 1 for a perfect fit and 0 otherwise (sklearn's choice).
    r2 = np.where(total > 0, 1 - resid / np.where(total > 0, total, 1), np.where(resid == 0, 1.0, 0.0))
    return {
        "mse": float((err**2).mean()),
        "mae": float(np.abs(err).mean()),
        "r2": float(np.mean(r2)),
        "samples": len(y_true),
    }


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` (``val_`` prefix allowed) are better."""
    return HIGHER_IS_BETTER.get(metric.removeprefix("val_").removeprefix("test_"), False)
