"""ONNX Runtime's transformer optimizer (attention, LayerNorm and GELU fusions) as a pass, reporting the fusions."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from modelpress.export.errors import VerificationError
from modelpress.export.onnx_files import save_model
from modelpress.export.passes.base import (
    EncoderHandle,
    ModelHandle,
    OnnxHandle,
    Pass,
    PassConfig,
    PassContext,
    PassOutput,
)
from modelpress.export.quiet import quiet_libraries

# The fusions worth reporting for a BERT encoder (the optimizer's statistics list many more, mostly zero).
REPORTED_FUSIONS = (
    "EmbedLayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "LayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
)


def optimize_encoder(
    model_path: Path,
    out_dir: Path,
    *,
    num_heads: int,
    hidden_size: int,
    embed_layer_norm: bool = True,
) -> tuple[Path, dict[str, int]]:
    """Fuse attention, LayerNorm and GELU patterns (``model_type="bert"``) and save to ``out_dir``.

    Args:
        model_path: the exported fp32 encoder.
        out_dir: where ``model.onnx`` is written.
        num_heads: attention heads of the encoder.
        hidden_size: its hidden size.
        embed_layer_norm: fuse the embeddings into EmbedLayerNormalization. Off for the int8 path: the fused
            op holds the word-embedding table, which must stay a plain Gather to be stored per-row int8.

    Returns:
        The optimised model's path and the count of each fusion in :data:`REPORTED_FUSIONS`.
    """
    import onnx
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_embed_layer_norm = embed_layer_norm
    try:
        with quiet_libraries("onnxruntime.transformers", root=True):
            optimized = optimizer.optimize_model(
                str(model_path),
                model_type="bert",
                num_heads=num_heads,
                hidden_size=hidden_size,
                optimization_options=options,
                opt_level=0,  # graph fusions only; ORT's own level-1/2 rewrites happen at session creation
            )
            stats = optimized.get_fused_operator_statistics()
    except Exception as e:  # the optimizer raises assorted errors on graphs it does not understand
        raise VerificationError(f"ONNX Runtime transformer optimizer failed on {model_path}: {e}") from e
    fusions = {name: int(stats.get(name, 0)) for name in REPORTED_FUSIONS}
    model = optimized.model
    domains = {node.domain for node in model.graph.node if node.domain} - {o.domain for o in model.opset_import}
    for domain in sorted(domains):  # the fused contrib ops' domain must be declared (ORT's save adds it too)
        model.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    return save_model(model, out_dir), fusions


def encoder_dims(config: object) -> tuple[int, int]:
    """``(num_heads, hidden_size)`` from a Hugging Face config (what the optimizer must be told)."""
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(heads, int) or not isinstance(hidden, int):
        raise VerificationError("the encoder's config has no num_attention_heads / hidden_size (not a BERT-like)")
    return heads, hidden


class FuseTransformerConfig(PassConfig):
    model_type: Literal["bert"] = Field("bert", description="the optimizer's fusion patterns (BERT-like encoders)")
    embed_layer_norm: bool = Field(
        True,
        description="fuse the embeddings into EmbedLayerNormalization; off before int8, whose per-row tables need "
        "the word-embedding lookup to stay a plain Gather",
    )


class FuseTransformer(Pass):
    """Fuse an exported encoder's attention, LayerNorm and GELU patterns (dims read from its PyTorch source)."""

    name = "fuse-transformer"
    config_class = FuseTransformerConfig
    config: FuseTransformerConfig

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        onnx_model = self.take(model, OnnxHandle)
        if not isinstance(onnx_model.source, EncoderHandle):
            raise VerificationError(f"the {self.name} pass needs an ONNX model exported from a text encoder")
        heads, hidden = encoder_dims(onnx_model.source.module.transformer.config)
        ctx.note("ORT transformer fusions")
        path, fusions = optimize_encoder(onnx_model.path, out_dir, num_heads=heads, hidden_size=hidden,
                                         embed_layer_norm=self.config.embed_layer_norm)  # fmt: skip
        details = {"num_heads": heads, "hidden_size": hidden, "fusions": fusions}
        return PassOutput(OnnxHandle(path, onnx_model.source), details=details)
