"""fp16 weights and activations for the GPU, keeping FP32 inputs and outputs so clients do not change."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from export.errors import VerificationError
from export.graph_rewrite import topological_sort
from export.onnx_files import has_external_data, save_model
from export.passes.base import Pass, PassConfig, PassContext, PassOutput


class Float16Config(PassConfig):
    keep_io_types: bool = Field(True, description="inputs and outputs stay FP32 (casts inside the graph)")
    op_block_list: list[str] | None = Field(
        None, description="ops left in fp32 (default: onnxruntime's list of ops without fp16 kernels)"
    )


class Float16(Pass):
    name = "fp16"
    config_class = Float16Config
    config: Float16Config

    def run(self, model_path: Path | None, out_dir: Path, ctx: PassContext) -> PassOutput:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        if model_path is None:
            raise VerificationError("the fp16 pass needs an ONNX model: put the onnx pass before it")
        external = "always" if has_external_data(model_path) else "auto"
        converted = convert_float_to_float16(
            onnx.load(str(model_path)),
            keep_io_types=self.config.keep_io_types,
            op_block_list=self.config.op_block_list,
        )
        return PassOutput(save_model(topological_sort(converted), out_dir, external=external), precision="fp16")
