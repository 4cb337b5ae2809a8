"""Multiply-accumulate count of an ONNX graph at a fixed input shape (convolutions and matrix products).

MACs are counted per sample from the graph itself, so structured pruning shows up and quantization does
not change the figure. Element-wise ops are left out, as is conventional (thop, fvcore, ptflops).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import onnx

# op type -> (index of the data input, index of the weight input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "FusedConv": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "FusedMatMul": (0, 1), "QLinearMatMul": (0, 3)}
_GEMM_OPS = {"Gemm": (0, 1), "FusedGemm": (0, 1), "QGemm": (0, 3)}


def _fix_inputs(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> None:
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers or value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[value.name], strict=False):
            dim.Clear()
            dim.dim_value = size


def _shape_table(model: onnx.ModelProto) -> dict[str, list[int]]:
    table: dict[str, list[int]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            table[value.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        table[init.name] = list(init.dims)
    return table


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # When it cannot finish, ORT's symbolic inference saves its partial model (and external data) into the
    # current directory; run it in a scratch one so nothing lands in the user's folder.
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="modelpress-shapes-") as scratch:
        os.chdir(scratch)
        try:
            return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
        except Exception:  # contrib ops it cannot infer; plain ONNX inference is the fallback
            return onnx.shape_inference.infer_shapes(model)
        finally:
            os.chdir(cwd)


def count_macs(model_path: Path, input_shapes: dict[str, list[int]]) -> int | None:
    """MACs for one forward pass at ``input_shapes`` (use batch 1 for a per-sample figure).

    Returns None when a convolution or matrix product has shapes inference could not resolve, rather than
    a figure that silently undercounts.
    """
    model = onnx.load(str(model_path), load_external_data=True)
    _fix_inputs(model, input_shapes)
    shapes = _shape_table(_infer(model))
    total = 0
    for node in model.graph.node:
        op = node.op_type
        if op in _CONV_OPS:
            _, w = _CONV_OPS[op]
            weight, out = shapes.get(node.input[w]), shapes.get(node.output[0])
            if weight is None or out is None:
                return None
            total += math.prod(out) * math.prod(weight[1:])
        elif op in _MATMUL_OPS or op in _GEMM_OPS:
            a, _ = (_MATMUL_OPS | _GEMM_OPS)[op]
            lhs, out = shapes.get(node.input[a]), shapes.get(node.output[0])
            if lhs is None or out is None:
                return None
            trans_a = any(attr.name == "transA" and attr.i == 1 for attr in node.attribute)
            k = lhs[-2] if trans_a else lhs[-1]
            total += math.prod(out) * k
    return total
