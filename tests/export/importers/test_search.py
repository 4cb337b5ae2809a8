"""``search`` on an imported model: its precisions measured, judged on labelled data, winners published."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from modelpress.cli import build_app
from modelpress.export.compress.search import PublishRequest
from modelpress.export.importers.api import ImportRequest
from modelpress.export.importers.search import search_import
from modelpress.serving.manifest import read_manifest
from tests.export.importers.helpers import cnn_onnx


@pytest.fixture(scope="module")
def cnn_with_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("search-import")
    source, _ = cnn_onnx(root / "cnn.onnx")
    x = np.random.default_rng(0).standard_normal((96, 3, 16, 16)).astype(np.float32)
    labels = ort.InferenceSession(str(source)).run(None, {"image": x})[0].argmax(axis=1)  # the source is right
    np.savez(root / "eval.npz", image=x, y=labels)
    np.savez(root / "calib.npz", image=x[:48])
    return source, root / "eval.npz", root / "calib.npz"


def test_search_over_the_precisions_of_an_imported_cnn(cnn_with_data: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, evaluation, calibration = cnn_with_data
    request = ImportRequest(source, tmp_path, "cnn", calibration=calibration, eval=evaluation, label="y")
    result = search_import(request, ["fp16w", "int8"], max_accuracy_drop=100.0, threads=1, quick=True,
                           progress=False, publish=PublishRequest(tmp_path / "repo", "cnn", pareto=True))  # fmt: skip
    assert result.baseline.accuracy == 1.0
    assert result.baseline.accuracy_drop_points == 0.0
    by_name = {c.name: c for c in result.candidates}
    assert by_name["int8"].status == "ok"
    assert by_name["int8"].precision == "int8"  # (a 1.8 k-parameter net: QDQ nodes cost what int8 saves)
    assert by_name["fp16w"].onnx_bytes < result.baseline.onnx_bytes
    published = [c.published for c in result.candidates if c.published]
    assert published
    manifest = read_manifest(tmp_path / "repo" / published[0].split("/")[0] / "1")
    assert manifest.lineage[0].name == "import"
    assert manifest.quality["search"]["roles"]


def test_search_on_an_import_needs_labels_and_refuses_pruning(cnn_with_data: tuple[Path, Path, Path]) -> None:
    source, evaluation, _ = cnn_with_data
    app = build_app()
    no_labels = CliRunner().invoke(app, ["search", str(source), "--max-accuracy-drop", "1"])
    assert no_labels.exit_code == 2
    assert "pass --eval FILE --label COL" in no_labels.stderr
    pruning = CliRunner().invoke(app, ["search", str(source), "--max-accuracy-drop", "1", "--sparsities", "0.5",
                                       "--eval", str(evaluation), "--label", "y"])  # fmt: skip
    assert pruning.exit_code == 2
    assert "an imported model searches --precisions only" in pruning.stderr
