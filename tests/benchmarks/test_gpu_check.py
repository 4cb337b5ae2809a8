"""gpu_check on this CPU-only machine: it says what it skipped and exits 0; its timing table runs on CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving.models import publish_classifier, publish_encoder


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpu-check-repo")
    publish_classifier(root)
    publish_encoder(root)
    return root


def gpu_check(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "modelpress.benchmarks.gpu_check", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_without_a_gpu_provider_it_says_what_it_skipped_and_exits_0(repo):
    import onnxruntime as ort

    if any(p in ort.get_available_providers() for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")):
        pytest.skip("this onnxruntime has GPU providers: the skip path is not what runs here")
    done = gpu_check("--repository", str(repo))
    assert done.returncode == 0, done.stderr
    assert "skipped: no GPU execution provider in this onnxruntime" in done.stdout
    assert "skipped: digits v1 on" in done.stdout
    assert "skipped: encoder v1 on" in done.stdout


def test_the_side_by_side_table_with_cpu_in_place_of_the_gpu(repo):
    pytest.importorskip("tokenizers")
    done = gpu_check("--repository", str(repo), "--providers", "CPUExecutionProvider", "--batch", "1", "4",
                     "--runs", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "digits v1 on CPUExecutionProvider: session runs on ['CPUExecutionProvider']" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| digits") or line.startswith("| encoder")]
    assert [row.split("|")[1:4] for row in rows] == [
        [" digits ", " CPUExecutionProvider ", " 1 "],
        [" digits ", " CPUExecutionProvider ", " 4 "],
        [" encoder ", " CPUExecutionProvider ", " 1 "],
        [" encoder ", " CPUExecutionProvider ", " 4 "],
    ]
    assert all(row.rstrip().endswith("| 1.00x |") for row in rows)


def test_bad_repository_is_one_error_line(tmp_path):
    done = gpu_check("--repository", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: --repository")
    empty = gpu_check("--repository", str(tmp_path))
    assert empty.returncode == 2
    assert "no model versions" in empty.stderr
