"""How close a variant's embeddings are to the fp32 teacher's, on sentences it never saw.

:class:`EmbeddingFidelity` is the quality strategy of embedding models.

``mean_cosine`` / ``min_cosine``: per-sentence cosine between the variant's and the teacher's embedding.
``nn_agreement_at_1``: for each held-out sentence, whether its nearest other held-out sentence (by cosine) is
the same under the variant as under the teacher: what a semantic search user would notice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.export.errors import AccuracyRefusedError, VerificationError
from modelpress.export.passes.base import OnnxHandle, QualityStrategy
from modelpress.serving.text import TextTokenizer


def token_batches(
    tokenizer: TextTokenizer, sentences: Sequence[str], batch_size: int = 16
) -> Iterator[dict[str, np.ndarray]]:
    """Graph feeds (``input_ids``, ``attention_mask``) for ``sentences`` in order, ``batch_size`` at a time."""
    for start in range(0, len(sentences), batch_size):
        encoded = tokenizer.encode(list(sentences[start : start + batch_size]))
        yield {"input_ids": encoded.input_ids, "attention_mask": encoded.attention_mask}


def onnx_embeddings(model_path: Path, batches: Sequence[dict[str, np.ndarray]], *, threads: int = 2) -> np.ndarray:
    """Run the model on every batch and stack the (float32) embeddings."""
    from modelpress.export.ort_session import cpu_session

    session = cpu_session(model_path, threads=threads)
    names = {i.name for i in session.get_inputs()}
    outputs = [session.run(None, {k: v for k, v in feeds.items() if k in names})[0] for feeds in batches]
    return np.concatenate(outputs).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosines(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[n, d]`` arrays."""
    if candidate.shape != reference.shape:
        raise ValueError(f"embeddings of shape {candidate.shape} vs reference {reference.shape}")
    return (_unit(candidate.astype(np.float64)) * _unit(reference.astype(np.float64))).sum(axis=1)


def nearest_neighbours(embeddings: np.ndarray) -> np.ndarray:
    """Index of each row's most similar other row (cosine)."""
    unit = _unit(embeddings.astype(np.float64))
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1)


def fidelity(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float | int]:
    """``mean_cosine``, ``min_cosine``, ``nn_agreement_at_1`` and the number of sentences."""
    cos = cosines(candidate, reference)
    agreement = float((nearest_neighbours(candidate) == nearest_neighbours(reference)).mean())
    return {
        "mean_cosine": round(float(cos.mean()), 6),
        "min_cosine": round(float(cos.min()), 6),
        "nn_agreement_at_1": round(agreement, 6),
        "sentences": len(cos),
    }


def torch_embeddings(module: Any, batches: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """A PyTorch sentence encoder's (float32) embeddings of every batch, stacked."""
    import torch

    with torch.inference_mode():
        out = [module(torch.from_numpy(b["input_ids"]), torch.from_numpy(b["attention_mask"])) for b in batches]
    return torch.cat(out).numpy().astype(np.float32)


class EmbeddingFidelity(QualityStrategy):
    """Held-out fidelity to the chain's starting encoder, judged against a floor per variant.

    Args:
        heldout: token batches of held-out sentences (never used for calibration or distillation).
        reference: the starting encoder's embeddings of them.
        floors: variant -> the lowest held-out mean cosine it may be published with (``--force`` overrides).
    """

    task = "embedding"

    def __init__(self, heldout: Sequence[dict[str, np.ndarray]], reference: np.ndarray, floors: Mapping[str, float]):
        self._heldout, self._reference, self._floors = heldout, reference, dict(floors)

    def measure(self, model: OnnxHandle) -> dict[str, Any]:
        embeddings = onnx_embeddings(model.path, self._heldout)
        if embeddings.shape != self._reference.shape:
            raise VerificationError(
                f"{model.path}: embeddings of shape {list(embeddings.shape)}, the reference has "
                f"{list(self._reference.shape)}"
            )
        return {
            **fidelity(embeddings, self._reference),
            "max_abs_diff": float(np.abs(embeddings - self._reference).max()),
            "reference": "fp32 teacher (PyTorch), held-out sentences",
        }

    def judge(
        self, model_name: str, variant: str, precision: str, quality: dict[str, Any], *, force: bool
    ) -> list[str]:
        floor = self._floors.get(variant)
        if floor is None or quality["mean_cosine"] >= floor:
            return []
        message = (
            f"{model_name}: held-out mean cosine {quality['mean_cosine']:.4f} to the fp32 teacher is below the "
            f"recipe's floor {floor} (export.verify.min_mean_cosine; distil longer, or --force)"
        )
        if not force:
            raise AccuracyRefusedError(message)
        return [message]
