"""Fixtures shared across test folders, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Servers built in this process get pools of their own: once ONNX Runtime's shared (global) thread pools exist,
# it refuses every later session a pool of its own, and the export tests create sessions in this process too.
# Servers in subprocesses (tests/serving/server_process.py) drop MODELPRESS_* and run with the shared pools.
os.environ["MODELPRESS_SHARED_THREAD_POOL"] = "false"  # (then allow_spinning, unset, means sleeping pools)
# A server started in this process collects the whole heap before freezing it (gc_freeze): in a test process of
# a million objects that is a second per app, minutes over the suite. tests/serving/test_memory.py turns it on
# where it is the subject; servers in subprocesses run the default (on).
os.environ["MODELPRESS_GC_FREEZE"] = "false"


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
    """moto's S3 API server on 127.0.0.1, one per session (tests/object_stores.py)."""
    from tests.object_stores import moto_server

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
    from tests.object_stores import new_bucket

    return new_bucket(s3_env)


@pytest.fixture(scope="session")
def gcs_server():
    """gcp-storage-emulator (the GCS JSON API) on 127.0.0.1, one per session (tests/object_stores.py)."""
    from tests.object_stores import gcs_emulator

    with gcs_emulator() as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server():
    """Azurite's blob service on 127.0.0.1, one per session; skipped, saying why, where it is not installed."""
    from tests.object_stores import NO_AZURITE, azurite, azurite_command

    if azurite_command() is None:
        pytest.skip(NO_AZURITE)
    with azurite() as server:
        yield server


STORE_SERVERS = {"s3": "s3_server", "gs": "gcs_server", "az": "azurite_server"}


@pytest.fixture(params=list(STORE_SERVERS))
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Each object store's test server in turn (s3://, gs://, az://), its variables set for code in this process."""
    server = request.getfixturevalue(STORE_SERVERS[request.param])
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return server
