"""ONNX models made by another producer than modelpress: scikit-learn converted with skl2onnx (tests only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def iris_classifier_onnx(path: Path, *, zipmap: bool = False) -> Path:
    """A logistic regression on iris as ONNX (label INT64 + probabilities FP32, or ZipMap's sequence of maps)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = iris_data()
    clf = LogisticRegression(max_iter=500).fit(x, y)
    options = None if zipmap else {id(clf): {"zipmap": False}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_onnx(clf, x[:1], options=options, target_opset=17).SerializeToString())
    return path


def mlp_regressor_onnx(path: Path) -> tuple[Path, np.ndarray]:
    """A small MLP regressor (MatMul/Add/Relu: quantizable) as ONNX, and its inputs."""
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 16)).astype(np.float32)
    y = x @ rng.standard_normal(16).astype(np.float32) + 0.1 * rng.standard_normal(256).astype(np.float32)
    reg = MLPRegressor(hidden_layer_sizes=(64,), max_iter=300, random_state=0).fit(x, y)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_onnx(reg, x[:1], target_opset=17).SerializeToString())
    return path, x
