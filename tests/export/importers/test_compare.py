"""``compare`` on imported families: the fp32 import is the baseline, PyTorch eager where the source is PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelpress.export.compare.build import build_report
from modelpress.export.compare.timing import QUICK
from modelpress.export.importers.api import ImportRequest, import_model
from tests.export.importers.helpers import cnn_onnx, small_cnn


@pytest.mark.slow
def test_compare_measures_imported_families_against_their_source(tmp_path: Path) -> None:
    program = torch.export.export(small_cnn(), (torch.randn(2, 3, 16, 16),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
    torch.export.save(program, tmp_path / "cnn.pt2")
    onnx_file, _ = cnn_onnx(tmp_path / "plain.onnx")
    calib = tmp_path / "calib.npz"
    np.savez(calib, np.random.default_rng(0).standard_normal((32, 3, 16, 16)).astype(np.float32))
    repo = tmp_path / "repo"
    for source, name in ((tmp_path / "cnn.pt2", "prog"), (onnx_file, "plain")):
        import_model(ImportRequest(source, repo, name, variants=["fp32", "int8"], calibration=calib, force=True),
                     progress=False)  # fmt: skip
    report = build_report(repo, threads=1, throughput_batch=8, budget=QUICK, progress=False)
    rows = {row.model: row for row in report.rows}
    assert {r.model for r in report.rows if r.is_baseline} == {"prog", "plain"}
    assert all(row.status == "ok" and row.latency_p50_ms for row in rows.values())
    assert rows["prog-int8"].size_ratio is not None
    assert rows["prog-int8"].lineage[0] == "import"
    assert report.baselines["prog"].latency_p50_ms is not None  # PyTorch eager of the .pt2 program
    assert rows["prog-int8"].speedup_vs_torch is not None
    assert report.baselines["plain"].latency_p50_ms is None  # an ONNX file has no PyTorch source
    assert "no PyTorch source" in " ".join(report.baselines["plain"].notes)


def test_compare_reads_a_bare_model_onnx_like_the_server(tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    from tests.sklearn_models import iris_classifier_onnx

    iris_classifier_onnx(tmp_path / "repo" / "bare" / "1" / "model.onnx")
    report = build_report(tmp_path / "repo", threads=1, throughput_batch=4, budget=QUICK, progress=False)
    (row,) = report.rows
    assert row.status == "ok"
    assert row.precision == "unknown"
    assert row.latency_p50_ms is not None
