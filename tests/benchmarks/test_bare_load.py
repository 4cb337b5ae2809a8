"""benchmarks/bare_load.py: a child load is the server's (one ONNX Runtime session), the old path two."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sklearn_models import iris_classifier_onnx

pytest.importorskip("skl2onnx")


@pytest.mark.parametrize(("old_path", "sessions"), [(False, 1), (True, 2)])
def test_a_child_load_reports_the_sessions_it_built(tmp_path: Path, old_path: bool, sessions: int) -> None:
    version_dir = tmp_path / "iris" / "1"
    iris_classifier_onnx(version_dir / "model.onnx")
    argv = [sys.executable, "-m", "modelpress.benchmarks.bare_load", str(version_dir), "--child"]
    done = subprocess.run(argv + (["--signature-session", "x"] if old_path else []),
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["sessions"] == sessions
    assert run["seconds"] > 0
    assert run["peak_rss"] >= run["rss_before"] > 0
