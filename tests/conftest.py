"""Fixtures shared across test folders, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Servers built in this process get pools of their own: once ONNX Runtime's shared (global) thread pools exist,
# it refuses every later session a pool of its own, and the export tests create sessions in this process too.
# Servers in subprocesses (tests/serving/server_process.py) drop MODELPRESS_* and run with the shared pools.
os.environ["MODELPRESS_SHARED_THREAD_POOL"] = "false"  # (then allow_spinning, unset, means sleeping pools)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT folder with its tokenizer (text tests in training and export)."""
    from tests.training.text.tiny_bert import build_tiny_bert_folder

    return build_tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.training.text.tiny_bert import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
