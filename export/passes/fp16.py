"""fp16 weights and activations for the GPU, keeping FP32 inputs and outputs so clients do not change.

Or, with ``weights_only``, fp16 storage with fp32 compute: each float weight is stored as fp16 and cast back
when the session loads (ONNX Runtime folds the casts), so the file halves and latency stays fp32's on any CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from modelpress.export.graph_rewrite import topological_sort
from modelpress.export.onnx_files import has_external_data, save_model
from modelpress.export.passes.base import ModelHandle, OnnxHandle, Pass, PassConfig, PassContext, PassOutput


class Float16Config(PassConfig):
    keep_io_types: bool = Field(True, description="inputs and outputs stay FP32 (casts inside the graph)")
    op_block_list: list[str] | None = Field(
        None, description="ops left in fp32 (default: onnxruntime's list of ops without fp16 kernels)"
    )
    weights_only: bool = Field(
        False, description="store weights as fp16 but compute in fp32 (a Cast per weight, folded at load)"
    )
    min_elements: int = Field(
        32, ge=1, description="weights_only: smaller tensors stay fp32 (their Cast node costs more than it saves)"
    )


class Float16(Pass):
    name = "fp16"
    config_class = Float16Config
    config: Float16Config

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        source = self.take(model, OnnxHandle)
        model_path = source.path
        external = "always" if has_external_data(model_path) else "auto"
        if self.config.weights_only:
            stored, count = fp16_storage(onnx.load(str(model_path)), self.config.min_elements)
            path = save_model(stored, out_dir, external=external)
            return PassOutput(
                OnnxHandle(path, source.source), precision="fp16", details={"weights_only": True, "fp16_tensors": count}
            )
        converted = convert_float_to_float16(
            onnx.load(str(model_path)),
            keep_io_types=self.config.keep_io_types,
            op_block_list=self.config.op_block_list,
        )
        path = save_model(topological_sort(converted), out_dir, external=external)
        return PassOutput(OnnxHandle(path, source.source), precision="fp16")


def fp16_storage(model: Any, min_elements: int) -> tuple[Any, int]:
    """``model`` with every fp32 initializer of ``min_elements`` or more stored as fp16 behind a Cast to fp32.

    The cast nodes come first and keep the original tensor names, so no consumer changes.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    casts, kept = [], []
    for tensor in graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT or int(np.prod(tensor.dims)) < min_elements:
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), f"{tensor.name}_fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return model, len(casts)
