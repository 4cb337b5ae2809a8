from modelpress.benchmarks.inprocess import bench_repository, to_markdown
from tests.export.compare.tiny_repository import gemm_classifier, publish


def test_each_model_measured_in_its_own_process(tmp_path):
    publish(tmp_path, "tiny", gemm_classifier(16, 8, 3, seed=0), accuracy=0.9)
    publish(tmp_path, "tiny-small", gemm_classifier(16, 4, 3, seed=1), accuracy=0.9, lineage=("onnx", "prune"))
    result = bench_repository(tmp_path, threads=1, batch=4, quick=True)
    rows = {r["model"]: r for r in result["models"]}
    assert set(rows) == {"tiny", "tiny-small"}
    for row in rows.values():
        assert row["latency"]["p50_ms"] > 0
        assert row["peak_rss_bytes"] > row["rss_start_bytes"] > 0
        assert "speedup_p50_vs_torch" not in row  # no checkpoint, so no baseline to divide by
    assert result["baselines"] == {}
    assert "| tiny |" in to_markdown(result)
