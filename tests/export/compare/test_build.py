import csv
import io
import json

import pytest

from modelpress.export.compare.build import CompareError, build_report, mark_pareto
from modelpress.export.compare.macs import count_macs
from modelpress.export.compare.plot import plot_report
from modelpress.export.compare.render import to_csv, to_json, to_markdown
from modelpress.export.compare.schema import Report, VariantRow
from modelpress.export.compare.timing import TimingBudget
from tests.export.compare.tiny_repository import gemm_classifier, publish

FAST = TimingBudget(warmup=2, min_iterations=5, max_iterations=20, max_seconds=0.05)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    publish(repo, "tiny", gemm_classifier(64, 128, 10, seed=0), accuracy=0.98)
    publish(repo, "tiny-small", gemm_classifier(64, 16, 10, seed=1), accuracy=0.97, lineage=("onnx", "prune"))
    # Larger and worse than the baseline: dominated, so off the Pareto front.
    publish(repo, "tiny-bad", gemm_classifier(64, 256, 10, seed=2), accuracy=0.90, lineage=("onnx", "prune"))
    tampered = publish(repo, "tiny-tampered", gemm_classifier(64, 8, 10, seed=3), accuracy=0.5,
                       lineage=("onnx", "prune"))  # fmt: skip
    with (tampered / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    return repo


@pytest.fixture(scope="module")
def report(repository):
    return build_report(repository, threads=1, throughput_batch=8, budget=FAST, progress=False)


def test_every_model_gets_a_row_and_the_tampered_one_says_why(report):
    rows = {r.model: r for r in report.rows}
    assert set(rows) == {"tiny", "tiny-small", "tiny-bad", "tiny-tampered"}
    assert rows["tiny-tampered"].status == "failed"
    assert "bytes" in rows["tiny-tampered"].notes[0] or "sha256" in rows["tiny-tampered"].notes[0]


def test_baseline_and_size_ratios(report):
    rows = {r.model: r for r in report.rows}
    assert rows["tiny"].is_baseline
    assert not rows["tiny-small"].is_baseline
    assert rows["tiny"].size_ratio == pytest.approx(1.0)
    expected = rows["tiny"].onnx_bytes / rows["tiny-small"].onnx_bytes
    assert rows["tiny-small"].size_ratio == pytest.approx(expected)
    assert rows["tiny-small"].size_ratio > 5


def test_latency_and_macs_are_measured(report):
    rows = {r.model: r for r in report.rows}
    for name in ("tiny", "tiny-small"):
        assert rows[name].latency_p50_ms > 0
        assert rows[name].latency_p99_ms >= rows[name].latency_p50_ms
        assert rows[name].throughput_rows_s > 0
    assert rows["tiny"].macs == 64 * 128 + 128 * 10
    assert rows["tiny-small"].macs == 64 * 16 + 16 * 10


def test_no_checkpoint_means_no_torch_baseline_with_a_reason(report):
    assert report.baselines["tiny"].latency_p50_ms is None
    assert "checkpoint" in report.baselines["tiny"].notes[0]
    assert all(r.speedup_vs_torch is None for r in report.rows)


def test_pareto_front(report):
    rows = {r.model: r for r in report.rows}
    assert rows["tiny"].pareto
    assert rows["tiny-small"].pareto
    assert not rows["tiny-bad"].pareto
    assert not rows["tiny-tampered"].pareto


def test_pareto_marks_nothing_dominated():
    def row(name, size, acc):
        return VariantRow(model=name, version=1, family="f", is_baseline=False, precision="fp32",
                          task="classification", lineage=[], onnx_bytes=size, accuracy=acc)  # fmt: skip

    rows = [row("a", 100, 0.9), row("b", 50, 0.9), row("c", 10, 0.5), row("d", 60, 0.95)]
    mark_pareto(rows)
    assert [r.pareto for r in rows] == [False, True, True, True]


def test_json_round_trips_through_the_schema(report):
    data = json.loads(to_json(report))
    assert data["schema_version"] == 1
    assert Report.model_validate(data) == report
    assert data["machine"]["threads"] == 1


def test_csv_and_markdown_have_a_row_per_model(report):
    assert len(to_csv(report).strip().splitlines()) == 1 + len(report.rows)
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {row["threads"] for row in rows} == {"1"}
    assert {row["throughput_batch"] for row in rows} == {str(report.throughput_batch)}
    assert all(row["cpu_flags"] == " ".join(report.machine["cpu_flags"]) for row in rows)
    markdown = to_markdown(report)
    assert all(f"| {r.model}" in markdown for r in report.rows)


def test_plot_is_a_png(report, tmp_path):
    path = plot_report(report, tmp_path / "report.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_missing_or_empty_repository_is_an_error(tmp_path):
    with pytest.raises(CompareError, match="not a model repository"):
        build_report(tmp_path / "nope", progress=False)
    with pytest.raises(CompareError, match="no models"):
        build_report(tmp_path, progress=False)


def test_macs_of_a_gemm_graph(tmp_path):
    import onnx

    onnx.save(gemm_classifier(8, 4, 3, seed=0), str(tmp_path / "m.onnx"))
    assert count_macs(tmp_path / "m.onnx", {"input": [5, 8]}) == 5 * (8 * 4 + 4 * 3)


def test_text_models_are_fed_their_graph_inputs():
    from modelpress.export.compare.runners import graph_inputs, synthetic_inputs
    from modelpress.serving.manifest import ModelManifest, TensorSpec

    manifest = ModelManifest(
        name="enc",
        version=1,
        task="embedding",
        inputs=[TensorSpec(name="text", datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="embedding", datatype="FP32", shape=[-1, 8])],
        graph_inputs=[
            {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
        ],
    )
    assert [s.name for s in graph_inputs(manifest)] == ["input_ids", "attention_mask"]
    feeds = synthetic_inputs(manifest, 8)
    assert feeds["input_ids"].shape == (8, 64)
    assert feeds["input_ids"].min() >= 2000
    assert (feeds["attention_mask"] == 1).all()


def test_a_forced_variant_says_so(tmp_path):
    import json

    version_dir = publish(tmp_path, "tiny", gemm_classifier(8, 4, 3, seed=0), accuracy=0.9)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["quality"]["forced"] = ["a drop of 1.11 points exceeds the tolerance of 0.50"]
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    report = build_report(tmp_path, threads=1, throughput_batch=2, budget=FAST, progress=False)
    assert report.rows[0].notes == ["published with --force: a drop of 1.11 points exceeds the tolerance of 0.50"]


def test_gzip_sizes_are_taken_at_one_level_whatever_the_manifest_recorded(tmp_path):
    from modelpress.export.sizes import GZIP_LEVEL, gzip_bytes
    from modelpress.serving.manifest import read_manifest, write_manifest

    old = publish(tmp_path, "old", gemm_classifier(64, 32, 10, seed=4), accuracy=0.9)
    new = publish(tmp_path, "old-new", gemm_classifier(64, 32, 10, seed=5), accuracy=0.9, lineage=("onnx", "prune"))
    for version_dir, size in ((old, {"gzip_bytes": 1}), (new, {"gzip_bytes": 2, "gzip_level": GZIP_LEVEL})):
        manifest = read_manifest(version_dir)
        write_manifest(manifest.model_copy(update={"size": manifest.size.model_copy(update=size)}), version_dir)
    rows = {r.model: r for r in build_report(tmp_path, threads=1, throughput_batch=8, budget=FAST, progress=False).rows}
    # no level recorded (a text manifest of before was gzipped at level 1): measured again at the common level
    assert rows["old"].gzip_bytes == gzip_bytes(old / "model.onnx") > 2
    assert rows["old-new"].gzip_bytes == 2  # recorded at the common level: taken as it is
