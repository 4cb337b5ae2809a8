"""fp16 weights and compute for the GPU, FP32 inputs/outputs kept; verified on the CPU provider here."""

from __future__ import annotations

from pathlib import Path

from modelpress.export.errors import VerificationError
from modelpress.export.graph_rewrite import topological_sort
from modelpress.export.onnx_files import save_model


def convert_encoder_fp16(model_path: Path, out_dir: Path) -> Path:
    """Convert an (optimised) fp32 encoder to fp16, keeping int64 token inputs and the FP32 output.

    The fused contrib ops (Attention, SkipLayerNormalization, BiasGelu) have fp16 kernels on CUDA and on
    the CPU provider of this onnxruntime, so the result loads and runs everywhere (fast on GPU only).
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        converted = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True)
    except Exception as e:  # the converter raises assorted errors on graphs it does not handle
        raise VerificationError(f"fp16 conversion of {model_path} failed: {e}") from e
    return save_model(topological_sort(converted), out_dir)
