"""The built wheel as a user installs it: one top-level package, and `[serve]` alone serves without torch."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import tomllib

from tests.serving.models import FEATURES, classifier_reference, publish_classifier
from tests.serving.server_process import server_process

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "images.txt"

pytestmark = pytest.mark.slow


def _pip(*args: str, timeout: float = 300) -> str:
    """This venv's pip (it also drives the clean venv through --python); fails the test with pip's output."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _source_copy(target: Path) -> Path:
    """The files a wheel is built from, copied out so the build writes nothing into the checkout."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for folder in table["package-dir"].values():
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _source_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(source))
    (built,) = out.glob("modelpress-*.whl")
    return built


@pytest.fixture(scope="module")
def serve_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv (no pip of its own) holding ``wheel[serve]`` at the images' locked versions."""
    venv = tmp_path_factory.mktemp("serve-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    _pip("--python", str(venv / "bin" / "python"), "install", "--quiet", "-c", str(CONSTRAINTS), f"{wheel}[serve]")
    return venv


def test_the_only_top_level_package_is_modelpress(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    metadata = {top for top in tops if top.endswith(".dist-info")}
    assert len(metadata) == 1
    assert tops - metadata == {"modelpress"}
    # Every stage is inside, under the namespace.
    for stage in ("common", "training", "export", "serving", "benchmarks"):
        assert f"modelpress/{stage}/__init__.py" in names


def test_serve_extra_brings_no_torch(serve_venv: Path) -> None:
    python = str(serve_venv / "bin" / "python")
    listed = _pip("--python", python, "list", "--format=freeze").lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert "onnxruntime" in installed
    assert "fastapi" in installed
    assert not installed & {"torch", "onnx", "optuna", "matplotlib", "scikit-learn", "transformers"}
    assert "pip" not in installed


def test_serve_only_install_answers_v2_and_stops_on_sigterm(serve_venv: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    w, b = publish_classifier(repository, name="digits")
    command = [str(serve_venv / "bin" / "modelpress"), "serve", "--host", "127.0.0.1"]
    # No PYTHONPATH (the console script's sys.path starts at the venv's bin/): nothing of the checkout is importable.
    with server_process(command, repository, PYTHONPATH="") as server:
        x = np.linspace(-1, 1, 2 * FEATURES, dtype=np.float32).reshape(2, FEATURES)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, FEATURES], "data": x.ravel().tolist()}]}
        response = httpx.post(f"{server.url}/v2/models/digits/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["name"] == "logits"
        assert output["shape"] == [2, 10]
        np.testing.assert_allclose(np.array(output["data"]).reshape(2, 10), classifier_reference(x, w, b), rtol=1e-5)
        # A graceful stop: uvicorn re-raises SIGTERM once it has drained, so the status may be the signal's.
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_a_serve_only_install_says_which_extra_training_needs(serve_venv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(serve_venv / "bin" / "modelpress"), "train", "--recipe", str(ROOT / "recipes" / "digits.yaml"),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: this command needs the Python module")
    assert "pip install 'modelpress[train]'" in result.stderr
