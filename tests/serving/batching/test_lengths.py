"""Splitting a batch by length: exact against brute force, and the text runtime's answers do not change."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from modelpress.serving.batching.lengths import length_groups


def cost(lengths: np.ndarray, groups: list[np.ndarray], overhead: float) -> float:
    return sum(len(g) * lengths[g].max() + overhead for g in groups)


def brute_force(lengths: np.ndarray, overhead: float) -> float:
    """Cheapest split over every partition into contiguous runs of the sorted rows."""
    ordered = np.sort(lengths)
    n = len(ordered)
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0, *(i + 1 for i, c in enumerate(cuts) if c), n]
        total = sum((b - a) * ordered[b - 1] + overhead for a, b in itertools.pairwise(bounds))
        best = min(best, total)
    return best


def test_equal_lengths_stay_one_run_and_far_apart_ones_split():
    assert [len(g) for g in length_groups(np.full(16, 40), 64)] == [16]
    lengths = np.array([128, 5, 6, 127, 5, 128, 7, 126])
    groups = length_groups(lengths, 64)
    assert [sorted(lengths[g].tolist()) for g in groups] == [[5, 5, 6, 7], [126, 127, 128, 128]]
    assert length_groups(np.array([9]), 64)[0].tolist() == [0]


@pytest.mark.parametrize("seed", range(20))
def test_optimal_and_a_partition_of_the_rows(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 129, size=int(rng.integers(2, 10)))
    overhead = float(rng.choice([1, 16, 64, 256]))
    groups = length_groups(lengths, overhead)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    assert cost(lengths, groups, overhead) == pytest.approx(brute_force(lengths, overhead))


def test_text_runtime_splits_by_length_with_the_same_embeddings(tmp_path: Path, monkeypatch):
    pytest.importorskip("tokenizers")
    from modelpress.serving.manifest import read_manifest
    from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions
    from modelpress.serving.runtime.text_onnx import TextOnnxModel
    from tests.serving.models import encoder_reference, publish_encoder

    publish_encoder(tmp_path)
    folder = tmp_path / "encoder" / "1"
    texts = np.array(["a", "hello world the cat", "b", "the cat a b", "c"], dtype=object)
    widths: list[int] = []
    run = OnnxModel._execute

    def spy(self, session, feeds, names):
        widths.append(feeds["input_ids"].shape[1])
        return run(self, session, feeds, names)

    monkeypatch.setattr(OnnxModel, "_execute", spy)
    outputs = {}
    for overhead in (None, 1):
        model = TextOnnxModel(read_manifest(folder), folder, RuntimeOptions(length_group_overhead_tokens=overhead))
        model.load()
        widths.clear()
        outputs[overhead] = model.predict({"text": texts}, ["embedding"])["embedding"]
        assert widths == ([6] if overhead is None else [3, 6])  # [CLS] w [SEP] for the short ones
    for text, row in zip(texts, outputs[1], strict=True):
        np.testing.assert_allclose(row, encoder_reference(text)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[1], outputs[None], rtol=1e-5, atol=1e-6)
