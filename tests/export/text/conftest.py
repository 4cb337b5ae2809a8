from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.text.tiny_bert import build_tiny_bert_folder, write_corpus

pytest.importorskip("transformers", reason="text models need the hf extra")
pytest.importorskip("tokenizers", reason="text models need the hf extra")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
