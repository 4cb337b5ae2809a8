"""PyTorch → ONNX, for every PyTorch handle.

A recipe-trained module: the dynamo exporter first, the TorchScript exporter when dynamo cannot take the model.
A pretrained text encoder (:mod:`modelpress.export.passes.encoder_onnx`): token ids and mask in, the embedding
out, TorchScript by default (its BERT graph fuses fully in ONNX Runtime's optimizer; dynamo's attention does not).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from modelpress.export.errors import ExportError, VerificationError
from modelpress.export.onnx_files import save_model, strip_export_metadata
from modelpress.export.passes.base import (
    EncoderHandle,
    ModelHandle,
    OnnxHandle,
    Pass,
    PassConfig,
    PassContext,
    PassOutput,
    TorchHandle,
)
from modelpress.export.quiet import quiet_exporters

INPUT_NAME = "input"
OUTPUT_NAMES = {"classification": "logits", "regression": "predictions"}


class OnnxExportConfig(PassConfig):
    opset: int = Field(18, ge=13, le=23, description="ONNX opset of the default domain")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "auto",
        description="auto: dynamo, then TorchScript if dynamo fails (e.g. some recurrent nets); TorchScript for "
        "text encoders",
    )
    external_data: Literal["auto", "always", "never"] = Field(
        "auto", description="weights in model.onnx.data beside the graph (auto: only for models above 512 MiB)"
    )
    dynamic_sequence: bool | None = Field(
        None, description="make input dim 1 dynamic too (None: only for int64 token inputs)"
    )


class OnnxExport(Pass):
    """Export the checkpoint's module with a dynamic batch dimension (and sequence, for token inputs)."""

    name = "onnx"
    config_class = OnnxExportConfig
    config: OnnxExportConfig
    accepts = (TorchHandle,)
    produces = OnnxHandle

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        import onnx
        import torch

        source = self.take(model, TorchHandle)
        if isinstance(source, EncoderHandle):
            return self._encoder(source, out_dir)
        if ctx.meta is None:
            raise ExportError("the onnx pass needs the checkpoint's input spec and task (a recipe-trained model)")
        module = source.module.eval().cpu()
        example = _example_input(ctx)
        output_name = OUTPUT_NAMES[ctx.meta.task]
        sequence = self.config.dynamic_sequence
        if sequence is None:
            sequence = ctx.meta.input_spec.dtype == "int64" and len(ctx.meta.input_spec.shape) >= 1
        details: dict[str, object] = {}
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".onnx-export-") as tmp:
            raw = Path(tmp) / "model.onnx"
            exporter = self.config.exporter
            if exporter in ("auto", "dynamo"):
                try:
                    _export_dynamo(module, example, raw, output_name, self.config.opset, sequence)
                    details["exporter"] = "dynamo"
                except Exception as e:  # the exporter raises many kinds; each means "this model did not export"
                    if exporter == "dynamo":
                        raise VerificationError(f"dynamo ONNX export failed: {type(e).__name__}: {e}") from e
                    details["dynamo_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            if "exporter" not in details:
                try:
                    _export_torchscript(module, example, raw, output_name, self.config.opset, sequence)
                except Exception as e:
                    raise VerificationError(f"TorchScript ONNX export failed: {type(e).__name__}: {e}") from e
                details["exporter"] = "torchscript"
            proto = strip_export_metadata(onnx.load(str(raw)))
        details["opset"] = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        details["torch"] = torch.__version__
        path = save_model(proto, out_dir, external=self.config.external_data)
        return PassOutput(OnnxHandle(path, source), details=details)

    def _encoder(self, source: EncoderHandle, out_dir: Path) -> PassOutput:
        from modelpress.export.passes.encoder_onnx import export_encoder

        exporter = "dynamo" if self.config.exporter == "dynamo" else "torchscript"
        path, details = export_encoder(source.module, out_dir, opset=self.config.opset, exporter=exporter,
                                       external=self.config.external_data)  # fmt: skip
        return PassOutput(OnnxHandle(path, source), details=details)


def _example_input(ctx: PassContext):
    import torch

    sample = ctx.data.calibration[:2]
    if ctx.meta.input_spec.dtype == "int64":
        return torch.as_tensor(sample, dtype=torch.int64)
    return torch.as_tensor(sample, dtype=torch.float32)


def _export_dynamo(module, example, path: Path, output_name: str, opset: int, sequence: bool) -> None:
    import torch

    dims = {0: torch.export.Dim("batch")}
    if sequence:
        dims[1] = torch.export.Dim("sequence")
    with quiet_exporters():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_shapes=(dims,),
            opset_version=opset,
        )


def _export_torchscript(module, example, path: Path, output_name: str, opset: int, sequence: bool) -> None:
    import torch

    in_axes = {0: "batch", 1: "sequence"} if sequence else {0: "batch"}
    with quiet_exporters():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes={INPUT_NAME: in_axes, output_name: {0: "batch"}},
            opset_version=min(opset, 20),  # the TorchScript exporter stops at opset 20
        )
