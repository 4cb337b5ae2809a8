"""Fixtures shared across test folders, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Servers built in this process get pools of their own: once ONNX Runtime's shared (global) thread pools exist,
# it refuses every later session a pool of its own, and the export tests create sessions in this process too.
# Servers in subprocesses (tests/serving/server_process.py) drop MODELPRESS_* and run with the shared pools.
os.environ["MODELPRESS_SHARED_THREAD_POOL"] = "false"  # (then allow_spinning, unset, means sleeping pools)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, as the server does (trio arrives with selenium and must not double them)."""
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT folder with its tokenizer (text tests in training and export)."""
    from tests.training.text.tiny_bert import build_tiny_bert_folder

    return build_tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.training.text.tiny_bert import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 API server on 127.0.0.1, one per session (tests/s3_server.py)."""
    from tests.s3_server import moto_server

    with moto_server() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch: pytest.MonkeyPatch):
    """The standard AWS variables pointing at the test S3 server, for code that runs in this process."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture
def bucket(s3_env) -> str:
    """A fresh, empty bucket on the test S3 server."""
    from tests.s3_server import new_bucket

    return new_bucket(s3_env)
