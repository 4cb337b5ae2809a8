"""Each imported variant against its source: the same inputs through both, agreement, differences, task metric.

The source is the model the user brought, run as it was given (ONNX Runtime on the original file, or PyTorch
eager), not a re-export of it. The fp32 variant must reproduce it (a broken conversion is never published);
a compressed variant beyond the tolerance is refused unless ``--force``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from modelpress.export.errors import AccuracyRefusedError, VerificationError
from modelpress.export.importers.base import SourceModel, Task
from modelpress.export.importers.data import UserData
from modelpress.export.ort_session import cpu_session
from modelpress.export.spec import VerifySpec
from modelpress.export.verify import classification_quality
from modelpress.serving.manifest import TensorSpec
from modelpress.serving.runtime.onnx import warmup_inputs

BATCH = 64
SYNTHETIC_ROWS = 64
# Sentences for a text model given no data: varied lengths, so padding and truncation are exercised.
DEFAULT_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A model repository holds one folder per version.",
    "Quantization trades a little accuracy for a smaller, faster model.",
    "ok",
    "Serving answers over HTTP with the Open Inference Protocol, and the manifest records every step.",
    "Where is the nearest station?",
    "int8",
    "She sells sea shells by the sea shore while the tide comes in.",
)


class ImportVerifySpec(VerifySpec):
    """The export thresholds plus those of tasks whose outputs are not classes."""

    min_cosine: float = Field(0.99, ge=-1.0, le=1.0, description="embedding: mean cosine to the source, compressed")
    max_relative_diff: float = Field(
        0.05, gt=0.0, description="regression/generic: max |variant - source| / max |source|, compressed"
    )


@dataclass
class Evidence:
    """The inputs every variant is checked on, and the source's outputs on them (computed once)."""

    feeds: list[dict[str, np.ndarray]]
    source_outputs: list[np.ndarray]
    labels: np.ndarray | None
    described: str


def gather_evidence(
    source: SourceModel, inputs: list[TensorSpec], data: UserData | None, spec: ImportVerifySpec
) -> Evidence:
    """Batches of graph feeds from ``data`` (synthetic when None) and the source's outputs on them."""
    labels = data.labels[: spec.samples] if data is not None and data.labels is not None else None
    feeds = list(_batches(source, inputs, data, spec.samples))
    outs = [source.run_source(f) for f in feeds]
    joined = [np.concatenate([np.asarray(o[i]) for o in outs]) for i in range(len(outs[0]))]
    described = f"{data.path.name} ({sum(_rows(f) for f in feeds)} samples)" if data else "synthetic inputs"
    return Evidence(feeds, joined, labels, described)


def _rows(feeds: dict[str, np.ndarray]) -> int:
    return len(next(iter(feeds.values())))


def _batches(
    source: SourceModel, inputs: list[TensorSpec], data: UserData | None, limit: int
) -> Iterator[dict[str, np.ndarray]]:
    # A graph with a fixed batch runs exactly that many rows at a time (leftover rows are not compared).
    fixed = next((s.shape[0] for s in inputs if s.shape[:1] != [-1] and s.shape), None)
    batch = fixed or BATCH
    if source.text is not None:
        from modelpress.serving.text import TextTokenizer

        tokenizer = TextTokenizer(source.text.tokenizer_file, source.text.max_length)
        texts = (data.texts if data is not None and data.texts else list(DEFAULT_SENTENCES))[:limit]
        names = [s.name for s in inputs]
        for i in range(0, len(texts), batch):
            yield tokenizer.encode(texts[i : i + batch]).feeds(names)
        return
    if data is None:
        parts = [
            warmup_inputs(inputs, SYNTHETIC_ROWS, seed=seed) for seed in range(SYNTHETIC_ROWS // fixed if fixed else 1)
        ]
        feeds = {s.name: np.concatenate([part[s.name] for part in parts]) for s in inputs}
    else:
        feeds = {name: array[:limit] for name, array in (data.feeds or {}).items()}
    rows = _rows(feeds)
    for i in range(0, rows - (rows % batch if fixed else 0), batch):
        yield {name: array[i : i + batch] for name, array in feeds.items()}


def run_variant(model_path: Path, evidence: Evidence) -> list[np.ndarray]:
    """The variant's outputs on the evidence's feeds, with ONNX Runtime on the CPU.

    Raises:
        VerificationError: the session cannot be created or a run fails.
    """
    try:
        session = cpu_session(model_path, threads=1)
        outs = [session.run(None, f) for f in evidence.feeds]
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise VerificationError(f"{model_path}: ONNX Runtime could not run the model: {e}") from e
    return [np.concatenate([np.asarray(o[i]) for o in outs]) for i in range(len(outs[0]))]


def measure(outputs: list[np.ndarray], evidence: Evidence, task: Task) -> dict[str, Any]:
    """Agreement with the source's outputs, max abs (and relative) difference, the task metric with labels."""
    ref = evidence.source_outputs
    if len(outputs) != len(ref):
        raise VerificationError(f"the variant has {len(outputs)} outputs, the source {len(ref)}")
    quality: dict[str, Any] = {"compared_on": evidence.described, "compared_samples": len(ref[0])}
    floats = [(o, r) for o, r in zip(outputs, ref, strict=True) if r.dtype.kind == "f"]
    others = [(o, r) for o, r in zip(outputs, ref, strict=True) if r.dtype.kind != "f"]
    if floats:
        diff = max(float(np.max(np.abs(o.astype(np.float64) - r))) if r.size else 0.0 for o, r in floats)
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0 for _, r in floats)
        quality["max_abs_diff"] = diff
        quality["max_relative_diff"] = diff / scale if scale > 0 else diff
    if others:  # e.g. a classifier's label output: compared exactly
        quality["exact_agreement"] = float(np.mean([np.mean(_rowwise_equal(o, r)) for o, r in others]))
    scores = _scores(outputs, ref)
    if task == "classification":
        predicted, reference = _predictions(outputs, ref, scores)
        quality["top1_agreement"] = float(np.mean(predicted == reference))
        if evidence.labels is not None:
            quality["accuracy"], quality["macro_f1"] = classification_quality(evidence.labels, predicted)
            quality["reference_accuracy"] = classification_quality(evidence.labels, reference)[0]
            quality["accuracy_drop"] = float(quality["reference_accuracy"] - quality["accuracy"])
    elif task == "embedding" and scores is not None:
        cos = _cosine(outputs[scores], ref[scores])
        quality["mean_cosine"], quality["min_cosine"] = float(cos.mean()), float(cos.min())
    elif task == "regression" and evidence.labels is not None and floats:
        target = evidence.labels.reshape(len(evidence.labels), -1).astype(np.float64)
        quality["mse"] = float(np.mean((floats[0][0].reshape(len(target), -1) - target) ** 2))
        quality["reference_mse"] = float(np.mean((floats[0][1].reshape(len(target), -1) - target) ** 2))
    return quality


def judge_variant(model_name: str, precision: str, quality: dict[str, Any], task: Task, spec: ImportVerifySpec,
                  *, force: bool) -> list[str]:  # fmt: skip
    """Apply the tolerance; return the warnings a forced variant carries.

    Raises:
        VerificationError: an fp32 variant does not reproduce the source (never published).
        AccuracyRefusedError: a compressed variant misses the tolerance and ``force`` is False.
    """
    if precision == "fp32":
        problems = _fp32_problems(quality, spec)
        if problems:
            raise VerificationError(f"{model_name}: {'; '.join(problems)}: the conversion is wrong")
        return []
    problems = _compressed_problems(quality, task, spec)
    if problems and not force:
        raise AccuracyRefusedError(f"{model_name} refused: {'; '.join(problems)} (use --force to publish anyway)")
    return problems


def _fp32_problems(quality: dict[str, Any], spec: ImportVerifySpec) -> list[str]:
    problems = []
    # Absolute below 1, relative above: fp32 logits of a few hundred differ in their last bits, not by 1e-4.
    if quality.get("max_abs_diff", 0.0) > spec.fp32_atol and quality.get("max_relative_diff", 0.0) > spec.fp32_atol:
        problems.append(
            f"outputs differ from the source by up to {quality['max_abs_diff']:.3g} "
            f"({quality['max_relative_diff']:.3g} relative; allowed {spec.fp32_atol:g} for fp32)"
        )
    if quality.get("exact_agreement", 1.0) < 1.0:
        problems.append(f"non-float outputs agree with the source on {100 * quality['exact_agreement']:.2f}% only")
    return problems


def _compressed_problems(quality: dict[str, Any], task: Task, spec: ImportVerifySpec) -> list[str]:
    problems = []
    if task == "classification":
        if quality["top1_agreement"] < spec.min_agreement:
            problems.append(
                f"top-1 agreement with the source {100 * quality['top1_agreement']:.2f}% is below "
                f"{100 * spec.min_agreement:.2f}%"
            )
        if quality.get("accuracy_drop", 0.0) > spec.max_accuracy_drop:
            problems.append(
                f"accuracy {quality['accuracy']:.4f} vs the source's {quality['reference_accuracy']:.4f}: a drop of "
                f"{100 * quality['accuracy_drop']:.2f} points exceeds {100 * spec.max_accuracy_drop:.2f}"
            )
    elif task == "embedding" and "mean_cosine" in quality:
        if quality["mean_cosine"] < spec.min_cosine:
            problems.append(f"mean cosine to the source {quality['mean_cosine']:.4f} is below {spec.min_cosine}")
    elif quality.get("max_relative_diff", 0.0) > spec.max_relative_diff:
        problems.append(
            f"outputs differ from the source by {100 * quality['max_relative_diff']:.2f}% of their range "
            f"(allowed {100 * spec.max_relative_diff:.2f}%)"
        )
    return problems


def _scores(outputs: list[np.ndarray], ref: list[np.ndarray]) -> int | None:
    """Index of the first float output of rank 2 (logits, probabilities, an embedding), if any."""
    return next((i for i, r in enumerate(ref) if r.dtype.kind == "f" and r.ndim == 2), None)


def _predictions(outputs: list[np.ndarray], ref: list[np.ndarray], scores: int | None) -> tuple[np.ndarray, np.ndarray]:
    if scores is not None:
        return outputs[scores].argmax(axis=1), ref[scores].argmax(axis=1)
    label = next((i for i, r in enumerate(ref) if r.dtype.kind in "iu" and r.ndim == 1), None)
    if label is None:
        raise VerificationError("classification needs a 2-D float output (scores) or a 1-D integer label output")
    return outputs[label], ref[label]


def _rowwise_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(len(b), dtype=bool)
    return (a == b).reshape(len(b), -1).all(axis=1)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
