"""Activation smoothing before dynamic int8 (the SmoothQuant idea, applied to an ONNX graph).

Dynamic int8 quantises each activation tensor with one scale, so a few input channels with large values
(BERT hidden states have them) leave little resolution for the rest. For ``y = x @ W`` we move that range
into the weights, which are quantised per output channel and tolerate it:

    y = (x / s) @ (s[:, None] * W),   s_k = max|x_k|^alpha / max|W_k,:|^(1 - alpha)

``x / s`` is one element-wise Mul inserted in front of the MatMul (or fused Attention); the statistics come
from calibration batches only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

SMOOTHABLE_OPS = ("MatMul", "Attention")


@dataclass(frozen=True)
class SmoothTarget:
    """A node whose input 0 is an activation and input 1 a 2-D float weight initializer ``[K, N]``."""

    node: str
    activation: str
    weight: str


def smooth_targets(model: onnx.ModelProto, nodes: Iterable[str] | None = None) -> list[SmoothTarget]:
    """The MatMul / Attention nodes with a constant 2-D weight (restricted to ``nodes`` when given)."""
    wanted = set(nodes) if nodes is not None else None
    inits = {t.name: t for t in model.graph.initializer}
    targets = []
    for node in model.graph.node:
        if node.op_type not in SMOOTHABLE_OPS or len(node.input) < 2:
            continue
        if wanted is not None and node.name not in wanted:
            continue
        weight = inits.get(node.input[1])
        if weight is not None and len(weight.dims) == 2 and weight.data_type == onnx.TensorProto.FLOAT:
            targets.append(SmoothTarget(node.name, node.input[0], node.input[1]))
    return targets


def activation_ranges(
    model: onnx.ModelProto, targets: list[SmoothTarget], batches: Iterable[Mapping[str, np.ndarray]], threads: int = 0
) -> dict[str, np.ndarray]:
    """Per-channel ``max|x|`` of every target's activation over the calibration batches (padding excluded)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = sorted({t.activation for t in targets})
    existing = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names if n not in existing)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Basic optimisations only: later fusions could swallow the tensors we read.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    peaks: dict[str, np.ndarray] = {}
    for feeds in batches:
        outputs = session.run(names, dict(feeds))
        mask = feeds.get("attention_mask")
        for name, value in zip(names, outputs, strict=True):
            value = np.abs(value)
            if mask is not None and value.ndim == 3 and value.shape[:2] == mask.shape:
                value = value[mask.astype(bool)]
            peak = value.reshape(-1, value.shape[-1]).max(axis=0)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    return peaks


def smooth_model(
    model: onnx.ModelProto, targets: list[SmoothTarget], ranges: Mapping[str, np.ndarray], alpha: float = 0.5
) -> int:
    """Insert ``x / s`` in front of each target and scale its weight rows by ``s`` (in place).

    Returns:
        The number of nodes smoothed.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"smoothing alpha must be in [0, 1], got {alpha}")
    inits = {t.name: t for t in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    done = 0
    for target in targets:
        weight_proto = inits[target.weight]
        weight = numpy_helper.to_array(weight_proto).astype(np.float32)
        x_peak = np.maximum(ranges[target.activation].astype(np.float64), 1e-5)
        w_peak = np.maximum(np.abs(weight).max(axis=1).astype(np.float64), 1e-5)
        scale = np.clip(x_peak**alpha / w_peak ** (1.0 - alpha), 1e-2, 1e2).astype(np.float32)
        new_weight = numpy_helper.from_array(weight * scale[:, None], target.weight)
        if users.get(target.weight, 0) > 1:  # a shared weight gets its own scaled copy
            new_weight.name = f"{target.weight}_smoothed_{done}"
            model.graph.initializer.append(new_weight)
        else:
            weight_proto.CopyFrom(new_weight)
        node = by_name[target.node]
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{target.node}_smooth_inv")
        model.graph.initializer.append(inverse)
        smoothed = f"{target.node}_smoothed_input"
        mul = helper.make_node("Mul", [target.activation, inverse.name], [smoothed], name=f"{target.node}_smooth")
        model.graph.node.insert(list(model.graph.node).index(node), mul)
        node.input[0] = smoothed
        node.input[1] = new_weight.name
        done += 1
    return done
