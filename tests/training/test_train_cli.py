import json
from pathlib import Path

import pytest

from modelpress.serving.explain import feature_names
from modelpress.serving.manifest import read_manifest
from tests.cli import cli as in_process

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
    """Every bad-input case, run in this process (the subprocess path is the user-CSV test's)."""
    inputs = tmp_path_factory.mktemp("inputs")
    results = {}
    for name, (args, expected) in _cases(inputs).items():
        work = tmp_path_factory.mktemp("work")
        argv = [*args, "--out", str(work / "out")] if args[0] != "evaluate" else list(args)
        stdout, stderr, code = in_process(*argv)
        results[name] = (code, stdout, stderr, work, expected)
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
    assert meta["data"]["feature_names"] == [f"p{i}" for i in range(64)]  # the header, label left out
    # ...and they travel into the published manifest, where :explain and the page name attributions by them.
    _, stderr, code = in_process("export", str(out), "--repository", str(tmp_path / "repo"), "--name", "digits",
                                 "--variants", "fp32", "-q")  # fmt: skip
    assert code == 0, stderr
    manifest = read_manifest(tmp_path / "repo" / "digits" / "1")
    assert feature_names(manifest) == [f"p{i}" for i in range(64)]
    ev = cli("evaluate", str(out), "--data", str(digits_csv), "--label", "digit", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["samples"] == 300
    assert len(result["metrics"]["confusion_matrix"]) == 10


def test_evaluate_prints_metrics_and_confusion_matrix(trained_ckpt):
    stdout, stderr, code = in_process("evaluate", str(trained_ckpt))
    assert code == 0, stderr
    assert "test split" in stdout
    assert "confusion matrix" in stdout
    assert "accuracy" in stdout


def test_help_lists_the_verbs(cli):
    run = cli("--help")
    assert run.returncode == 0
    for verb in ("train", "tune", "evaluate"):
        assert verb in run.stdout
