"""How close a variant's embeddings are to the fp32 teacher's, on sentences it never saw.

``mean_cosine`` / ``min_cosine``: per-sentence cosine between the variant's and the teacher's embedding.
``nn_agreement_at_1``: for each held-out sentence, whether its nearest other held-out sentence (by cosine) is
the same under the variant as under the teacher: what a semantic search user would notice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

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
