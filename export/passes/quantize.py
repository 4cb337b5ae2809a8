"""int8 quantization with ONNX Runtime: static QDQ (calibrated on training data) or dynamic.

``auto`` picks static for graphs with convolutions (``quantize_dynamic`` would make ConvInteger, measured
4× slower than fp32 at batch 1 here) and dynamic for MatMul-heavy graphs (recurrent, transformer, MLP).
ORT's quantization pre-processing (symbolic shape inference, optimisation) always runs first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from modelpress.export.errors import VerificationError
from modelpress.export.graph_rewrite import drop_zero_bias_zero_points, gemm_to_matmul
from modelpress.export.onnx_files import has_external_data, save_model
from modelpress.export.passes.base import ModelHandle, OnnxHandle, Pass, PassConfig, PassContext, PassOutput
from modelpress.export.quiet import quiet_libraries


class QuantizeConfig(PassConfig):
    mode: Literal["auto", "static", "dynamic"] = "auto"
    calibration: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="static mode only")
    calibration_samples: int = Field(256, ge=1, description="training samples fed to the calibrator")
    calibration_batch: int = Field(32, ge=1)
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = Field("uint8", description="static mode: U8S8 is ORT's CPU default")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI that saturate on U8S8")


class Quantize(Pass):
    name = "quantize"
    config_class = QuantizeConfig
    config: QuantizeConfig

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = self.take(model, OnnxHandle)
        model_path = source.path
        external = "always" if has_external_data(model_path) else "auto"
        nodes = onnx.load(str(model_path), load_external_data=False).graph.node
        ops, domains = {n.op_type for n in nodes}, {n.domain for n in nodes}
        mode = self.config.mode
        if mode == "auto":
            mode = "static" if ops & {"Conv", "ConvTranspose"} else "dynamic"
        details: dict[str, object] = {"mode": mode}
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".quantize-") as tmp:
            pre = Path(tmp) / "pre.onnx"
            quantized = Path(tmp) / "quantized.onnx"
            # the calibrators print histogram progress on stdout; the CLI shows its own progress instead
            with quiet_libraries("onnxruntime.quantization"):
                # ORT's symbolic shape inference knows no ONNX-ML ops (skl2onnx graphs) and, failing, leaves a
                # debug model in the working directory: ONNX's own shape inference is enough for those graphs.
                # auto_merge resolves conflicting symbolic dims instead of failing (imported BERTs need it) and
                # changes nothing where inference completes without it.
                skip_symbolic = bool(domains - {"", "ai.onnx", "com.microsoft"})
                quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=skip_symbolic, auto_merge=True,
                                  save_as_external_data=external == "always")  # fmt: skip
                if mode == "static":
                    self._static(pre, quantized, ctx)
                    details["calibration"] = self.config.calibration
                    details["calibration_samples"] = min(self.config.calibration_samples, len(ctx.data.calibration))
                else:
                    proto, rewritten = gemm_to_matmul(onnx.load(str(pre)))
                    details["gemm_rewritten_to_matmul"] = rewritten
                    onnx.save_model(proto, str(pre), save_as_external_data=external == "always",
                                    location="pre.onnx.data")  # fmt: skip
                    self._dynamic(pre, quantized)
            proto, details["dropped_zero_points"] = drop_zero_bias_zero_points(onnx.load(str(quantized)))
        details["quantized_nodes"] = sum(1 for n in proto.graph.node if _is_quantized(n.op_type))
        if details["quantized_nodes"] == 0:
            raise VerificationError(f"{mode} quantization found nothing to quantize (graph ops: {sorted(ops)})")
        path = save_model(proto, out_dir, external=external)
        return PassOutput(OnnxHandle(path, source.source), precision="int8", details=details)

    def _static(self, source: Path, target: Path, ctx: PassContext) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[self.config.calibration]
        feeds = ctx.data.calibration_by_input or {_input_name(source): ctx.data.calibration}
        quantize_static(
            str(source),
            str(target),
            _calibration_reader(
                {name: samples[: self.config.calibration_samples] for name, samples in feeds.items()},
                self.config.calibration_batch,
            ),
            quant_format=QuantFormat.QDQ,
            per_channel=self.config.per_channel,
            reduce_range=self.config.reduce_range,
            activation_type=QuantType.QUInt8 if self.config.activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )

    def _dynamic(self, source: Path, target: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul", "Attention", "LSTM", "Gather"],
            per_channel=self.config.per_channel,
            reduce_range=self.config.reduce_range,
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True},  # activations × activations stay float
        )


def _input_name(model_path: Path) -> str:
    import onnx

    return onnx.load(str(model_path), load_external_data=False).graph.input[0].name


def _is_quantized(op_type: str) -> bool:
    return op_type in ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM",
                       "QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat")  # fmt: skip


def _calibration_reader(feeds: dict[str, np.ndarray], batch: int):
    """Feed calibration samples (one array per graph input, same length) in batches; the batch dim is dynamic."""
    from onnxruntime.quantization import CalibrationDataReader

    count = len(next(iter(feeds.values())))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._starts = iter(range(0, count, batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._starts, None)
            if start is None:
                return None
            return {name: np.ascontiguousarray(samples[start : start + batch]) for name, samples in feeds.items()}

    return Reader()
