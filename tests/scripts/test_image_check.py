"""`make image` without a container engine says it is skipped; the model it sends requests to is a numeric one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving.models import FEATURES, publish_classifier, publish_encoder

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "image_check.py"


@pytest.fixture(scope="module")
def image_check():
    spec = importlib.util.spec_from_file_location("image_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_no_engine_is_a_skip_with_exit_code_0(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--repository", str(tmp_path / "none")],
        env={"PATH": str(empty_bin)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "make image: skipped: no container engine (docker or podman) found or answering `info`"
    )
    assert not (tmp_path / "none").exists(), "nothing is built or trained when there is no engine"


def test_an_engine_that_does_not_answer_is_not_used(tmp_path: Path, image_check, monkeypatch) -> None:
    """A docker CLI without a daemon (its `info` fails) does not count as an engine."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert image_check.find_engine(None) is None
    fake.write_text("#!/bin/sh\nexit 0\n")
    assert image_check.find_engine(None) == str(fake)


def test_requests_go_to_a_model_with_numeric_inputs(tmp_path: Path, image_check) -> None:
    repository = tmp_path / "repository"
    publish_encoder(repository, name="aaa-text")  # first by name, but its input is text
    publish_classifier(repository, name="digits")
    model = image_check.numeric_model(repository)
    assert model.name == "digits"
    assert model.inputs == [("input", "FP32", [1, FEATURES])]


def test_a_repository_without_numeric_models_is_a_named_failure(tmp_path: Path, image_check) -> None:
    repository = tmp_path / "repository"
    publish_encoder(repository, name="text")
    with pytest.raises(image_check.ImageCheckError, match="no model with numeric inputs"):
        image_check.numeric_model(repository)
