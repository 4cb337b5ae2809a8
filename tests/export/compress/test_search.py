import json
import subprocess
import sys

import pytest

from modelpress.export.compress.grid import SearchGrid, load_grid
from modelpress.export.compress.report import print_result, to_json
from modelpress.export.compress.search import Candidate, SearchResult, _judge, search
from modelpress.export.errors import ExportError
from tests.export.tiny_checkpoints import train_checkpoint


def _candidate(name, size, latency, accuracy, drop, status="ok"):
    return Candidate(name=name, steps=[], status=status, onnx_bytes=size, latency_p50_ms=latency,
                     accuracy=accuracy, accuracy_drop_points=drop)  # fmt: skip


def _result(candidates, tolerance=0.5):
    baseline = _candidate("baseline-fp32", 1000, 0.10, 0.98, 0.0)
    return SearchResult("ckpt", tolerance, 2, baseline, eager_latency_p50_ms=0.5, candidates=candidates)


def test_winners_are_chosen_within_tolerance_and_nothing_is_dropped():
    result = _result([
        _candidate("tiny-but-wrong", 10, 0.01, 0.90, 8.0),
        _candidate("small", 100, 0.05, 0.978, 0.2),
        _candidate("fast", 400, 0.02, 0.979, 0.1),
        _candidate("dominated", 500, 0.06, 0.975, 0.5),
        Candidate(name="broken", steps=[], status="failed", reason="ExportError: boom"),
    ])  # fmt: skip
    _judge(result)
    by = {c.name: c for c in result.candidates}
    assert len(result.candidates) == 5
    assert by["tiny-but-wrong"].status == "rejected"
    assert "8.00 points exceeds the tolerance of 0.5" in by["tiny-but-wrong"].reason
    assert by["dominated"].status == "ok"  # exactly at the tolerance is within it
    assert by["broken"].status == "failed"
    assert by["broken"].reason == "ExportError: boom"
    assert [c.name for c in result.candidates if c.smallest] == ["small"]
    assert [c.name for c in result.candidates if c.fastest] == ["fast"]
    # the front spans size, latency and accuracy; the rejected one is on it (smallest of all) but never a winner
    assert {c.name for c in result.candidates if c.pareto} == {"tiny-but-wrong", "small", "fast"}
    assert not by["dominated"].pareto
    assert by["small"].size_ratio == 10.0
    assert by["fast"].speedup_vs_eager == 25.0


def test_no_winner_when_every_candidate_misses_the_tolerance(capsys):
    result = _result([_candidate("bad", 10, 0.01, 0.5, 48.0)])
    _judge(result)
    assert not any(c.smallest or c.fastest for c in result.candidates)
    print_result(result)
    assert "no candidate is within 0.5 points" in capsys.readouterr().out


def test_grid_names_every_candidate_and_skips_the_baseline():
    grid = SearchGrid(
        sparsities=[0.9], channel_ratios=[0.5], student_widths=[[16], [32, 8]], precisions=["fp32", "int8"]
    )
    names = [name for name, _ in grid.candidates()]
    assert names == ["original-int8", "sparse90-fp32", "sparse90-int8", "slim50-fp32", "slim50-int8",
                     "student16-fp32", "student16-int8", "student32x8-fp32", "student32x8-int8"]  # fmt: skip
    steps = dict(grid.candidates())
    assert steps["sparse90-int8"][0] == {"pass": "prune", "sparsity": 0.9, "steps": [0.5, 0.75], "finetune_epochs": 3}
    assert [s["pass"] for s in steps["student16-int8"]] == ["distill", "onnx", "quantize"]
    fp16w = dict(SearchGrid(precisions=["fp16w"], sparsities=[], channel_ratios=[], student_widths=[]).candidates())
    assert fp16w["original-fp16w"][-1] == {"pass": "fp16", "weights_only": True}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sparsities": [1.5]}, "sparsities"),
        ({"student_widths": [[]]}, "student_widths"),
        ({"precisions": ["int4"]}, "precisions"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_grids_name_the_problem(overrides, message):
    with pytest.raises(ExportError, match=message):
        load_grid(None, overrides)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    checkpoint, _ = train_checkpoint("mlp", root / "checkpoint", epochs=3)
    # a cnn student takes an int `hidden`: the list the grid gives it is a real, reported failure
    grid = SearchGrid(sparsities=[0.5], channel_ratios=[], student_widths=[[8]], student_architecture="cnn",
                      precisions=["fp32"], include_original=False, finetune_epochs=0, distill_epochs=1)  # fmt: skip
    return search(checkpoint, grid, max_accuracy_drop=100.0, threads=1, quick=True, progress=False)


@pytest.mark.slow
def test_search_keeps_failed_candidates_with_their_reason(searched):
    by = {c.name: c for c in searched.candidates}
    assert set(by) == {"sparse50-fp32", "student8-fp32"}
    assert by["student8-fp32"].status == "failed"
    assert "invalid cnn config 'hidden'" in by["student8-fp32"].reason
    sparse = by["sparse50-fp32"]
    assert sparse.status == "ok"
    assert sparse.nonzero_parameters < 0.55 * sparse.parameters
    assert sparse.onnx_bytes > 0.9 * searched.baseline.onnx_bytes
    assert sparse.latency_p50_ms > 0
    assert sparse.smallest
    assert sparse.fastest
    # PyTorch eager is timed in its own process, so the speed-up is a ratio of two real measurements
    assert searched.eager_latency_p50_ms > 0
    assert sparse.speedup_vs_eager == pytest.approx(searched.eager_latency_p50_ms / sparse.latency_p50_ms, rel=0.01)


@pytest.mark.slow
def test_search_json_holds_every_candidate(searched):
    data = json.loads(to_json(searched))
    assert data["schema_version"] == 1
    assert data["smallest"] == "sparse50-fp32"
    assert [c["name"] for c in data["candidates"]] == ["sparse50-fp32", "student8-fp32"]
    assert data["candidates"][1]["status"] == "failed"
    assert data["baseline"]["accuracy"] > 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-accuracy-drop", "0.5", "/nonexistent/checkpoint"], "not a checkpoint folder"),
        (["--max-accuracy-drop", "0.5", "--sparsities", "lots", "ckpt"], "--sparsities 'lots'"),
        (["--max-accuracy-drop", "0.5", "--precisions", "int4", "/nonexistent"], "precisions"),
        (["--max-accuracy-drop", "0.5", "--publish-pareto", "."], "--name and --publish-pareto need --publish"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    proc = subprocess.run([sys.executable, "-m", "modelpress", "search", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_search_prints_every_candidate_and_writes_json(tmp_path):
    checkpoint, _ = train_checkpoint("mlp", tmp_path / "checkpoint", epochs=2)
    grid = tmp_path / "grid.yaml"
    grid.write_text("include_original: false\nchannel_ratios: []\nstudent_widths: []\nfinetune_epochs: 0\n")
    out = tmp_path / "search.json"
    args = [str(checkpoint), "--max-accuracy-drop", "0", "--grid", str(grid), "--sparsities", "0.5,0.95",
            "--precisions", "fp32", "--threads", "1", "--quick", "--quiet", "--json", str(out),
            "--publish", str(tmp_path / "repo"), "--name", "mlp"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "modelpress", "search", *args], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["candidates"]] == ["sparse50-fp32", "sparse95-fp32"]
    # 95 % of the weights gone without fine-tuning: beyond a zero-point tolerance, and said so
    worst = data["candidates"][1]
    assert worst["status"] == "rejected"
    assert "exceeds the tolerance of 0" in worst["reason"]
    assert "sparse95-fp32: rejected: accuracy drop" in proc.stdout
    # at a zero tolerance even 50 % sparsity without fine-tuning misses: nothing is published, no folder made
    assert data["candidates"][0]["status"] == "rejected"
    assert data["published"] == {}
    assert "nothing published to" in proc.stdout
    assert not (tmp_path / "repo").exists()


@pytest.mark.slow
def test_search_publishes_its_winners_atomically_with_lineage(tmp_path):
    from modelpress.export.compress.search import PublishRequest
    from modelpress.serving.manifest import list_models, read_manifest, verify_files

    checkpoint, _ = train_checkpoint("mlp", tmp_path / "checkpoint", epochs=2)
    grid = SearchGrid(sparsities=[0.5], channel_ratios=[], student_widths=[[4]], precisions=["fp32"],
                      include_original=False, finetune_epochs=0, distill_epochs=1)  # fmt: skip
    repo = tmp_path / "repo"
    result = search(checkpoint, grid, max_accuracy_drop=100.0, threads=1, quick=True, progress=False,
                    publish=PublishRequest(repo, "tiny", pareto=True))  # fmt: skip
    by = {c.name: c for c in result.candidates}
    assert by["student4-fp32"].smallest  # 4 hidden units: far fewer bytes than the 50 % sparse MLP
    chosen = {c.name for c in result.candidates if c.smallest or c.fastest or (c.pareto and c.status == "ok")}
    assert {name for name, c in by.items() if c.published} == chosen
    assert sorted(list_models(repo)) == sorted(f"tiny-{name}" for name in chosen)
    manifest = read_manifest(repo / "tiny-student4-fp32" / "1")
    verify_files(manifest, repo / "tiny-student4-fp32" / "1")
    assert [step.name for step in manifest.lineage][1:] == ["distill", "onnx", "optimize"]
    assert manifest.lineage[1].config["architecture"] == "mlp"
    assert "smallest" in manifest.quality["search"]["roles"]
    assert manifest.quality["accuracy"] == pytest.approx(by["student4-fp32"].accuracy)
    assert manifest.size.onnx_bytes == by["student4-fp32"].onnx_bytes
    assert json.loads(to_json(result))["published"]["student4-fp32"] == "tiny-student4-fp32/1"


def test_search_refuses_a_repository_that_is_a_file_before_any_candidate_runs(tmp_path):
    from modelpress.export.compress.search import PublishRequest

    checkpoint, _ = train_checkpoint("mlp", tmp_path / "checkpoint", epochs=1)
    not_a_repo = tmp_path / "repo"
    not_a_repo.write_text("keep me")
    grid = SearchGrid(sparsities=[0.5], channel_ratios=[], student_widths=[], precisions=["fp32"],
                      include_original=False, finetune_epochs=0)  # fmt: skip
    with pytest.raises(ExportError, match="is a file, expected a folder"):
        search(checkpoint, grid, max_accuracy_drop=1.0, threads=1, quick=True, progress=False,
               publish=PublishRequest(not_a_repo))  # fmt: skip
    assert not_a_repo.read_text() == "keep me"
