import pytest

from modelpress.export.compare.worker import WorkerError, eager_latency_ms, measure_in_fresh_process
from modelpress.export.errors import ExportError
from tests.export.compare.tiny_repository import gemm_classifier, publish

QUICK = ["--threads", "1", "--quick"]


def test_an_onnx_version_is_measured_in_its_own_process(tmp_path):
    version_dir = publish(tmp_path, "tiny", gemm_classifier(16, 8, 3, seed=0), accuracy=0.9)
    result = measure_in_fresh_process(["--kind", "ort", "--version-dir", str(version_dir), "--batch", "4", *QUICK])
    assert list(result) == ["latency", "throughput_rows_s", "batch", "rss_start_bytes", "peak_rss_bytes"]
    assert result["batch"] == 4
    assert 0 < result["latency"]["p50_ms"] <= result["latency"]["p99_ms"]
    assert result["throughput_rows_s"] > 0
    assert result["peak_rss_bytes"] > result["rss_start_bytes"] > 0


def test_a_checkpoint_in_eager_gives_its_batch1_latency_only(checkpoint_for):
    checkpoint, _ = checkpoint_for("mlp")
    result = measure_in_fresh_process(["--kind", "torch", "--checkpoint", str(checkpoint), "--latency-only", *QUICK])
    assert list(result) == ["latency", "rss_start_bytes", "peak_rss_bytes"]
    assert result["latency"]["p50_ms"] > 0
    assert result["latency"]["iterations"] >= 20  # the quick budget's minimum
    assert eager_latency_ms(checkpoint, 1, quick=True) > 0


def test_a_failure_is_the_last_line_the_worker_wrote(tmp_path):
    with pytest.raises(WorkerError, match="manifest missing"):
        measure_in_fresh_process(["--kind", "ort", "--version-dir", str(tmp_path), *QUICK])
    with pytest.raises(WorkerError, match="--checkpoint goes with --kind torch"):
        measure_in_fresh_process(["--kind", "ort", "--checkpoint", str(tmp_path), *QUICK])
    with pytest.raises(ExportError, match=r"^timing PyTorch eager failed: .*not a checkpoint folder"):
        eager_latency_ms(tmp_path / "nope", 1, quick=True)
