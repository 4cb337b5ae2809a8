"""Fidelity-aware int8 for a transformer encoder, as the ``quantize-smooth`` pass.

Three things make dynamic int8 both small and faithful on MiniLM:

1. the word-embedding table (half the model) stored per-row int8 (:mod:`modelpress.export.passes.embedding_int8`);
2. per-channel int8 weights on every MatMul and fused Attention, after activation smoothing whose strength
   ``alpha`` is chosen by measuring each candidate on the calibration sentences
   (:mod:`modelpress.export.passes.smoothing`);
3. if the mean cosine to fp32 on the calibration sentences is still below the target, the most sensitive
   nodes stay fp32, a few at most: sensitivity is measured one node at a time on the same sentences, for the
   nodes whose inputs have the strongest outlier channels.

Every measurement uses calibration sentences only; the held-out set is for the report.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from modelpress.export.onnx_files import save_model
from modelpress.export.passes.base import ModelHandle, OnnxHandle, Pass, PassConfig, PassContext, PassOutput
from modelpress.export.passes.embedding_int8 import quantize_embedding_tables
from modelpress.export.passes.smoothing import activation_ranges, smooth_model, smooth_targets
from modelpress.export.quiet import quiet_libraries
from modelpress.export.text.fidelity import cosines, onnx_embeddings, torch_embeddings


class Int8Config(PassConfig):
    """The ``quantize-smooth`` pass's settings."""

    per_channel: bool = Field(True, description="one weight scale per output channel")
    embedding_tables: bool = Field(True, description="store large Gather'ed tables (word embeddings) per-row int8")
    smoothing_alphas: list[float] = Field(
        default_factory=lambda: [0.6, 0.7, 0.8],
        description="smoothing strengths tried besides none; the best on calibration wins ([] = no smoothing)",
    )
    target_mean_cosine: float = Field(0.995, gt=0, le=1, description="on calibration sentences, vs fp32")
    max_fp32_nodes: int = Field(4, ge=0, description="at most this many sensitive nodes stay fp32")
    probe_nodes: int = Field(
        8, ge=0, description="sensitivity is measured on this many nodes with the most outlying inputs (0: all)"
    )


def _quantize(model, out_path: Path, exclude: Sequence[str], per_channel: bool) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the quantizer warns on the root logger about pre-processing we do not need
    with quiet_libraries("onnxruntime.quantization", root=True):
        quantize_dynamic(
            model,
            str(out_path),
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            # The optimizer's contrib ops (SkipLayerNormalization...) have no shape inference in the quantizer.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )
    return out_path


def _most_outlying(targets: list, ranges: dict[str, np.ndarray], limit: int) -> list:
    """Targets ordered by how far their input's largest channel stands above the median one (first ``limit``).

    Per-tensor activation scales suffer most where one channel dwarfs the rest; on MiniLM the nodes this
    ranks first are the ones whose fp32 fallback gains most when measured (FFN inputs of the early layers).
    """

    def ratio(target) -> float:
        peaks = ranges[target.activation]
        return float(peaks.max() / max(float(np.median(peaks)), 1e-12))

    ordered = sorted(targets, key=ratio, reverse=True)
    return ordered[:limit] if limit else ordered


def quantize_encoder_int8(
    model_path: Path,
    out_dir: Path,
    calibration: Sequence[dict[str, np.ndarray]],
    reference: np.ndarray,
    config: Int8Config | None = None,
    *,
    on_trial: Callable[[str], None] | None = None,
) -> tuple[Path, dict[str, object]]:
    """Quantize an optimised fp32 encoder (without EmbedLayerNormalization fusion) to int8.

    Args:
        model_path: the fp32 graph (fused with ``embed_layer_norm=False``, so word embeddings stay a Gather).
        out_dir: where ``model.onnx`` is written.
        calibration: token batches of calibration sentences.
        reference: the fp32 teacher's embeddings of those batches, stacked.
        config: see :class:`Int8Config`.
        on_trial: called with a short description before each measured trial (progress).

    Returns:
        The model path and what was decided: tables rewritten, alpha chosen, nodes kept fp32, and the
        calibration mean cosine of every trial.
    """
    import onnx

    config = config or Int8Config()
    note = on_trial or (lambda _: None)
    base = onnx.load(str(model_path))
    targets = smooth_targets(base)
    ranges = activation_ranges(base, targets, calibration)
    tables = quantize_embedding_tables(base) if config.embedding_tables else []
    trials: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="modelpress-int8-") as tmp:
        work = Path(tmp)

        def candidate(alpha: float | None, exclude: Sequence[str], tag: str) -> tuple[Path, float]:
            note(tag)
            model = onnx.ModelProto()
            model.CopyFrom(base)
            if alpha is not None:
                smooth_model(model, targets, ranges, alpha)
            path = _quantize(model, work / f"{len(trials)}.onnx", exclude, config.per_channel)
            score = float(cosines(onnx_embeddings(path, calibration), reference).mean())
            trials[tag] = round(score, 6)
            return path, score

        best_alpha, best_path, best = None, *candidate(None, [], "no smoothing")
        for alpha in config.smoothing_alphas:
            path, score = candidate(alpha, [], f"smoothing alpha={alpha}")
            if score > best:
                best_alpha, best_path, best = alpha, path, score
        kept_fp32: list[str] = []
        if best < config.target_mean_cosine and config.max_fp32_nodes > 0:
            gains = {}
            for target in _most_outlying(targets, ranges, config.probe_nodes):
                _, score = candidate(best_alpha, [target.node], f"sensitivity of {target.node}")
                gains[target.node] = score - best
            for node in sorted(gains, key=gains.get, reverse=True)[: config.max_fp32_nodes]:
                if gains[node] <= 0:
                    break
                kept_fp32.append(node)
                best_path, best = candidate(best_alpha, kept_fp32, f"{len(kept_fp32)} node(s) kept fp32")
                if best >= config.target_mean_cosine:
                    break
        final = save_model(onnx.load(str(best_path)), out_dir)
    details = {
        "method": "dynamic int8 (MatMulInteger/QAttention), per-channel weights"
        if config.per_channel
        else "dynamic int8",
        "embedding_tables": [t.as_dict() for t in tables],
        "smoothing_alpha": best_alpha,
        "kept_fp32": kept_fp32,
        "calibration_mean_cosine": round(best, 6),
        "target_mean_cosine": config.target_mean_cosine,
        "trials": trials,
    }
    return final, details


class QuantizeSmooth(Pass):
    """Dynamic int8 with per-row embedding tables, activation smoothing and an fp32 fallback for sensitive nodes.

    Every choice is measured on the context's calibration batches against the fp32 outputs of the model's
    PyTorch source (or of the input ONNX model itself, for a model without one).
    """

    name = "quantize-smooth"
    config_class = Int8Config
    config: Int8Config

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        onnx_model = self.take(model, OnnxHandle)
        calibration = ctx.data.calibration_batches
        if onnx_model.source is not None:
            reference = torch_embeddings(onnx_model.source.module, calibration)
        else:
            reference = onnx_embeddings(onnx_model.path, calibration)
        path, details = quantize_encoder_int8(onnx_model.path, out_dir, calibration, reference, self.config,
                                              on_trial=lambda trial: ctx.note(f"int8: {trial}"))  # fmt: skip
        return PassOutput(OnnxHandle(path, onnx_model.source), precision="int8", details=details)
