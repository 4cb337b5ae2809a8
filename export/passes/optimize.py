"""ONNX Runtime's offline graph optimisation: the optimised graph is saved and becomes the model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from modelpress.export.errors import VerificationError
from modelpress.export.onnx_files import EXTERNAL_DATA_NAME, drop_unused_opsets, has_external_data, save_model
from modelpress.export.ort_session import cpu_session
from modelpress.export.passes.base import ModelHandle, OnnxHandle, Pass, PassConfig, PassContext, PassOutput


class OptimizeConfig(PassConfig):
    level: Literal["basic", "extended"] = Field(
        "basic",
        description=(
            "basic: constant folding and fusions every provider runs (portable, e.g. to the GPU); "
            "extended adds CPU-specific contrib ops, so the saved model is tied to the CPU provider"
        ),
    )


class OrtOptimize(Pass):
    name = "optimize"
    config_class = OptimizeConfig
    config: OptimizeConfig

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        import onnx

        source = self.take(model, OnnxHandle)
        model_path = source.path
        nodes_before = len(onnx.load(str(model_path), load_external_data=False).graph.node)
        external = "always" if has_external_data(model_path) else "auto"
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".optimize-") as tmp:
            optimized = Path(tmp) / "model.onnx"
            try:
                cpu_session(
                    model_path,
                    optimized_path=optimized,
                    level=self.config.level,
                    external_data=EXTERNAL_DATA_NAME if external == "always" else None,
                )
            except Exception as e:  # ORT raises its own exception types for graphs it rejects
                raise VerificationError(f"ONNX Runtime could not optimise {model_path}: {e}") from e
            proto = drop_unused_opsets(onnx.load(str(optimized)))
        path = save_model(proto, out_dir, external=external)
        return PassOutput(
            OnnxHandle(path, source.source),
            details={"nodes_before": nodes_before, "nodes_after": len(proto.graph.node)},
        )
