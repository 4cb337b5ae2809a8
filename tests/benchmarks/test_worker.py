import json
import subprocess
import sys

from tests.export.compare.tiny_repository import gemm_classifier, publish


def test_python_m_benchmarks_worker_keeps_its_arguments(tmp_path):
    """The command docs/benchmarks.md shows: one JSON object on stdout, as export.compare.worker prints it."""
    version_dir = publish(tmp_path, "tiny", gemm_classifier(16, 8, 3, seed=0), accuracy=0.9)
    argv = ["--kind", "ort", "--version-dir", str(version_dir), "--threads", "1", "--batch", "8", "--quick"]
    command = [sys.executable, "-m", "modelpress.benchmarks.worker", *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["batch"] == 8
    assert result["latency"]["p50_ms"] > 0
    assert result["peak_rss_bytes"] >= result["rss_start_bytes"] > 0
