"""compare and bench time PyTorch eager fp32 of a text model's recorded source (no checkpoint exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpress.benchmarks.inprocess import bench_repository
from modelpress.export.compare.build import build_report
from modelpress.export.compare.render import footer
from modelpress.export.compare.timing import QUICK
from modelpress.export.compare.torch_source import NoBaselineError, load_baseline
from modelpress.export.pipeline import run_pipeline
from modelpress.serving.manifest import read_manifest
from tests.export.text.test_text_pipeline import write_recipe


@pytest.fixture(scope="module")
def repository(tiny_bert: Path, tiny_corpus: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text-baseline")
    recipe = write_recipe(root / "tiny.yaml", tiny_bert, tiny_corpus, variants=["fp32", "student"])
    run_pipeline(recipe, root / "repo", workdir=root / "work", progress=False)
    return root / "repo"


@pytest.mark.slow
def test_compare_times_the_packaged_encoder_as_the_eager_baseline(repository: Path, tiny_bert: Path):
    report = build_report(repository, threads=1, throughput_batch=64, budget=QUICK, progress=False)
    base = report.baselines["tiny"]
    assert base.checkpoint == str(tiny_bert)  # the folder the manifest recorded as the model's source
    assert base.latency_p50_ms > 0
    assert base.throughput_rows_s > 0
    assert base.throughput_batch == 8  # the text batch its variants run, not the digits' 64
    rows = {r.model: r for r in report.rows}
    for name in ("tiny", "tiny-student"):
        assert rows[name].speedup_vs_torch == pytest.approx(base.latency_p50_ms / rows[name].latency_p50_ms)
    assert any(line.startswith("PyTorch eager fp32 [tiny]: p50") for line in footer(report))


@pytest.mark.slow
def test_bench_measures_the_text_baseline_in_its_own_process(repository: Path):
    result = bench_repository(repository, threads=1, batch=64, quick=True)
    assert result["baselines"]["tiny"]["latency"]["p50_ms"] > 0
    assert all(row["speedup_p50_vs_torch"] > 0 for row in result["models"])


def test_a_missing_text_source_says_why(repository: Path, tmp_path: Path):
    manifest = read_manifest(repository / "tiny" / "1")
    manifest.source["model"] = str(tmp_path / "gone")
    with pytest.raises(NoBaselineError, match="text model source unusable"):
        load_baseline(manifest)
