import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "digits.yaml")
TINY = ["--set", "training.epochs=1", "--set", "model.architecture=mlp", "--set", "model.config={hidden: [8]}"]


def _bad_csv(folder: Path, name: str, cell: str) -> str:
    path = folder / name
    rows = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(20)]
    rows[5] = f"{cell},1,0"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _cases(inputs: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments after `modelpress`, text the one-line error must contain)."""
    good = inputs / "ten.csv"
    good.write_text("\n".join(["f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,y"] + [f"{'1,' * 10}{i % 2}" for i in range(30)]) + "\n")
    return {
        "missing label column": (
            ["train", "--recipe", RECIPE, "--data", str(good), "--label", "target"],
            "label column 'target' not found",
        ),
        "non-numeric cell": (
            ["train", "--recipe", RECIPE, "--data", _bad_csv(inputs, "text.csv", "abc"), "--label", "y"],
            "'abc' is not a number",
        ),
        "NaN cell": (
            ["train", "--recipe", RECIPE, "--data", _bad_csv(inputs, "nan.csv", "NaN"), "--label", "y"],
            "is NaN or infinite",
        ),
        "missing data file": (
            ["train", "--recipe", RECIPE, "--data", str(inputs / "absent.csv"), "--label", "y"],
            "does not exist",
        ),
        "shape does not fit": (
            ["train", "--recipe", RECIPE, "--data", str(good), "--label", "y"],
            "image_shape [1, 8, 8] (64 values) does not fit input_shape [10]",
        ),
        "unknown architecture": (["train", "--recipe", RECIPE, "--set", "model.architecture=resnet"], "'resnet'"),
        "unknown optimizer": (["train", "--recipe", RECIPE, "--set", "training.optimizer.name=lion"], "optimizer"),
        "unknown --set key": (["train", "--recipe", RECIPE, "--set", "training.epochz=3"], "'training.epochz'"),
        "missing recipe": (["train", "--recipe", str(inputs / "none.yaml")], "does not exist"),
        "csv without --label": (["train", "--recipe", RECIPE, "--data", str(good)], "needs --label"),
        "evaluate missing checkpoint": (["evaluate", str(inputs / "no-ckpt")], "not a checkpoint folder"),
        "tune unknown space key": (
            ["tune", "--recipe", RECIPE, "--trials", "1", "--set", "tune.space={training.lrr: {low: 0.1, high: 1}}"],
            "'training.lrr'",
        ),
    }


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad-input case, run at once as separate processes (bounded: one per case, 240 s each)."""
    inputs = tmp_path_factory.mktemp("inputs")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {}
    for name, (args, expected) in _cases(inputs).items():
        work = tmp_path_factory.mktemp("work")
        out = work / "out"
        cmd = [sys.executable, "-m", "modelpress", *args]
        if args[0] != "evaluate":
            cmd += ["--out", str(out)]
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs[name] = (p, work, expected)
    results = {}
    for name, (p, work, expected) in procs.items():
        try:
            stdout, stderr = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
        results[name] = (p.returncode, stdout, stderr, work, expected)
    return results


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        "missing label column",
        "non-numeric cell",
        "NaN cell",
        "missing data file",
        "shape does not fit",
        "unknown architecture",
        "unknown optimizer",
        "unknown --set key",
        "missing recipe",
        "csv without --label",
        "evaluate missing checkpoint",
        "tune unknown space key",
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(bad_runs, case):
    code, _stdout, stderr, work, expected = bad_runs[case]
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in stderr
    assert list(work.iterdir()) == []  # no checkpoint, no temporary folder


@pytest.mark.slow
def test_train_then_evaluate_user_csv(tmp_path, digits_csv, cli):
    out = tmp_path / "ckpt"
    run = cli("train", "--recipe", RECIPE, "--data", str(digits_csv), "--label", "digit", "--out", str(out), *TINY)
    assert run.returncode == 0, run.stderr
    assert "test" in run.stdout
    assert "accuracy" in run.stdout
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["data"]["source"] == "csv"
    assert meta["data"]["label"] == "digit"
    ev = cli("evaluate", str(out), "--data", str(digits_csv), "--label", "digit", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["samples"] == 300
    assert len(result["metrics"]["confusion_matrix"]) == 10


def test_evaluate_prints_metrics_and_confusion_matrix(trained_ckpt):
    from typer.testing import CliRunner

    from modelpress.cli import build_app

    result = CliRunner().invoke(build_app(), ["evaluate", str(trained_ckpt)])
    assert result.exit_code == 0, result.output
    assert "test split" in result.output
    assert "confusion matrix" in result.output
    assert "accuracy" in result.output


def test_help_lists_the_verbs(cli):
    run = cli("--help")
    assert run.returncode == 0
    for verb in ("train", "tune", "evaluate"):
        assert verb in run.stdout
