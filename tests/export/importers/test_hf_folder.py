"""Hugging Face folders saved here (tiny random BERTs) → import → int8/fp16 → served text answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpress.export.importers.api import ImportRequest, import_model
from modelpress.serving.manifest import read_manifest
from modelpress.serving.text import TextTokenizer
from tests.export.importers.helpers import v2_infer
from tests.hf_models import tiny_bert_folder

pytest.importorskip("transformers")
pytestmark = pytest.mark.anyio
TEXTS = ["the cat runs quickly", "a dog sleeps", "the model is very good and fast", "bad server"]


def _source_outputs(folder: Path, texts: list[str], classifier: bool) -> np.ndarray:
    """What the PyTorch model in the folder gives for ``texts`` (the served model must match it)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    from modelpress.training.text.encoder import SentenceEncoder

    encoded = TextTokenizer(folder / "tokenizer.json", 32).encode(texts)
    ids, mask = torch.from_numpy(encoded.input_ids), torch.from_numpy(encoded.attention_mask)
    with torch.no_grad():
        if classifier:
            model = AutoModelForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager")
            return model.eval()(input_ids=ids, attention_mask=mask).logits.numpy()
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager")
        return SentenceEncoder(model.eval())(ids, mask).numpy()


@pytest.mark.slow
async def test_encoder_folder_served_as_text_embeddings(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "encoder")
    (tmp_path / "calib.txt").write_text("\n".join(TEXTS * 4) + "\n")
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(folder, repo, "enc", variants=["fp32", "int8"], calibration=tmp_path / "calib.txt"),
        progress=False,
    )
    fp32, int8 = (read_manifest(p.path) for p in published)
    assert fp32.task == "embedding"
    assert fp32.tokenizer is not None
    assert "tokenizer.json" in fp32.files
    assert fp32.lineage[0].config["kind"] == "huggingface"
    assert fp32.lineage[0].config["architecture"] == "BertModel"
    assert int8.quality["mean_cosine"] >= 0.99
    assert int8.precision == "int8"
    want = _source_outputs(folder, TEXTS, classifier=False)
    got = (await v2_infer(repo, "enc", {"text": np.asarray(TEXTS, dtype=object)}))["embedding"]
    assert np.max(np.abs(got - want)) <= max(fp32.quality["max_abs_diff"] * 10, 1e-5)
    got8 = (await v2_infer(repo, "enc-int8", {"text": np.asarray(TEXTS, dtype=object)}))["embedding"]
    cosine = (got8 * want).sum(axis=1) / np.linalg.norm(got8, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.98


async def test_sequence_classifier_folder_keeps_its_labels(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "classifier", classifier=True)
    lines = ["text,label", *(f"{t},{('neg', 'pos')[i % 2]}" for i, t in enumerate(TEXTS * 3))]  # names
    (tmp_path / "eval.csv").write_text("\n".join(lines) + "\n")
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(folder, repo, "cls", variants=["fp32", "fp16"], eval=tmp_path / "eval.csv", label="label"),
        progress=False,
    )
    fp16 = read_manifest(published[1].path)
    assert fp16.task == "classification"
    assert fp16.labels == ["neg", "pos"]
    assert fp16.quality["compared_samples"] == 12
    assert "accuracy" in fp16.quality
    want = _source_outputs(folder, TEXTS, classifier=True)
    got = (await v2_infer(repo, "cls", {"text": np.asarray(TEXTS, dtype=object)}))["logits"]
    np.testing.assert_allclose(got, want, atol=1e-5)
