"""Checks every exported model passes before it may be published.

Structure (``onnx.checker``), loadability (an ONNX Runtime session), the serving contract (one input
``input`` ``[-1, *input_shape]``, one output ``[-1, num_outputs]``, FP32 for both) and fidelity (outputs
compared with PyTorch on held-out samples; accuracy and macro-F1 on the test split, measured with ORT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.export.errors import AccuracyRefusedError, VerificationError
from modelpress.export.ort_session import cpu_session
from modelpress.export.spec import VerifySpec

# ONNX TensorProto element types → Open Inference Protocol datatypes.
V2_DATATYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "BYTES",
                9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64"}  # fmt: skip
EVAL_BATCH = 256


@dataclass(frozen=True)
class Reference:
    """PyTorch's outputs on the held-out samples and its quality on the test split."""

    outputs: np.ndarray
    accuracy: float | None
    macro_f1: float | None


def tensor_specs(model_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs as V2 tensor specs (symbolic or unknown dims become -1)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def spec(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
        return {"name": value.name, "datatype": V2_DATATYPES.get(tensor.elem_type, "BYTES"), "shape": dims}

    inputs = [spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in graph.output]


def check_structure(model_path: Path, expected_input: list[int], num_outputs: int) -> None:
    """``onnx.checker`` plus the serving contract on names, datatypes and shapes.

    Raises:
        VerificationError: naming what was expected and what the model declares.
    """
    import onnx

    try:
        onnx.checker.check_model(str(model_path))  # a path, so external data and >2 GiB models are checked too
    except onnx.checker.ValidationError as e:
        raise VerificationError(f"{model_path}: onnx.checker rejected the model: {str(e).splitlines()[0]}") from e
    inputs, outputs = tensor_specs(model_path)
    want_in = {"name": "input", "datatype": "FP32", "shape": [-1, *expected_input]}
    if inputs != [want_in]:
        raise VerificationError(f"{model_path}: expected one input {want_in}, the model declares {inputs}")
    if len(outputs) != 1 or outputs[0]["datatype"] != "FP32" or outputs[0]["shape"] != [-1, num_outputs]:
        raise VerificationError(
            f"{model_path}: expected one FP32 output of shape [-1, {num_outputs}], the model declares {outputs}"
        )


def run_ort(model_path: Path, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Outputs of ``model_path`` on ``x`` with ONNX Runtime (CPU), in batches.

    Raises:
        VerificationError: the session cannot be created or the run fails.
    """
    try:
        session = cpu_session(model_path, threads=threads)
        name = session.get_inputs()[0].name
        chunks = [session.run(None, {name: x[i : i + EVAL_BATCH]})[0] for i in range(0, len(x), EVAL_BATCH)]
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise VerificationError(f"{model_path}: ONNX Runtime could not run the model: {e}") from e
    return np.concatenate(chunks).astype(np.float32)


def torch_outputs(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    with torch.inference_mode():
        chunks = [module(torch.as_tensor(x[i : i + EVAL_BATCH])).numpy() for i in range(0, len(x), EVAL_BATCH)]
    return np.concatenate(chunks).astype(np.float32)


def reference(module: Any, test_x: np.ndarray, test_y: np.ndarray, task: str) -> Reference:
    outputs = torch_outputs(module, test_x)
    if task != "classification":
        return Reference(outputs, None, None)
    accuracy, f1 = classification_quality(test_y, outputs.argmax(axis=1))
    return Reference(outputs, accuracy, f1)


def classification_quality(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    return float(np.mean(y_true == y_pred)), float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def measure_quality(
    model_path: Path, test_x: np.ndarray, test_y: np.ndarray, ref: Reference, task: str, spec: VerifySpec
) -> dict[str, Any]:
    """Quality of the ONNX model: accuracy and macro-F1 on the test split, fidelity to PyTorch."""
    outputs = run_ort(model_path, test_x)
    held = min(spec.samples, len(test_x))
    quality: dict[str, Any] = {
        "max_abs_diff": float(np.max(np.abs(outputs[:held] - ref.outputs[:held]))),
        "compared_samples": held,
        "test_samples": len(test_x),
    }
    if task == "classification":
        predicted = outputs.argmax(axis=1)
        quality["top1_agreement"] = float(np.mean(predicted[:held] == ref.outputs[:held].argmax(axis=1)))
        quality["accuracy"], quality["macro_f1"] = classification_quality(test_y, predicted)
        quality["reference_accuracy"] = ref.accuracy
        quality["accuracy_drop"] = float(ref.accuracy - quality["accuracy"])
    else:
        target = test_y.reshape(len(test_y), -1).astype(np.float32)
        quality["mse"] = float(np.mean((outputs - target) ** 2))
        quality["reference_mse"] = float(np.mean((ref.outputs - target) ** 2))
    return quality


def judge(model_name: str, precision: str, quality: dict[str, Any], spec: VerifySpec, *, force: bool) -> list[str]:
    """Apply the thresholds; return the warnings a forced variant carries.

    An fp32 model beyond ``fp32_atol`` is a broken conversion and is never published. A compressed model
    below ``min_agreement`` or beyond ``max_accuracy_drop`` is refused unless ``force``.

    Raises:
        VerificationError: the fp32 outputs differ from PyTorch's.
        AccuracyRefusedError: a compressed variant misses a quality threshold and ``force`` is False.
    """
    if precision == "fp32" and quality["max_abs_diff"] > spec.fp32_atol:
        raise VerificationError(
            f"{model_name}: ONNX outputs differ from PyTorch by up to {quality['max_abs_diff']:.3g} "
            f"(allowed {spec.fp32_atol:g} for fp32): the conversion is wrong"
        )
    problems = []
    if "accuracy_drop" in quality and quality["accuracy_drop"] > spec.max_accuracy_drop:
        problems.append(
            f"accuracy {quality['accuracy']:.4f} vs PyTorch {quality['reference_accuracy']:.4f}: a drop of "
            f"{100 * quality['accuracy_drop']:.2f} points exceeds the tolerance of {100 * spec.max_accuracy_drop:.2f}"
        )
    if "top1_agreement" in quality and quality["top1_agreement"] < spec.min_agreement:
        problems.append(
            f"top-1 agreement with PyTorch {100 * quality['top1_agreement']:.2f}% is below "
            f"{100 * spec.min_agreement:.2f}%"
        )
    if problems and not force:
        raise AccuracyRefusedError(f"{model_name} refused: {'; '.join(problems)} (use --force to publish anyway)")
    return problems
