import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from modelpress.cli import build_app
from modelpress.serving.manifest import list_models, read_manifest

SUBPROCESS_CASES = ("edited weights", "unknown variant", "slash in name")


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "modelpress", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.fixture(scope="module")
def bad_inputs(checkpoint_for, tmp_path_factory):
    checkpoint, _ = checkpoint_for("mlp")
    root = tmp_path_factory.mktemp("cli-bad")
    missing = shutil.copytree(checkpoint, root / "missing")
    (missing / "checkpoint.json").unlink()
    edited = shutil.copytree(checkpoint, root / "edited")
    with (edited / "model.safetensors").open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x01\x02\x03\x04")
    a_file = root / "repo-file"
    a_file.write_text("not a folder")
    repo = root / "repo"
    existing = repo / "digits" / "3"
    existing.mkdir(parents=True)
    recipe = root / "recipe.yaml"
    recipe.write_text("name: digits\nexport:\n  variants: [fp32, int4]\n")
    ok = ["--repository", str(repo), "--name", "digits"]
    cases = {
        "missing file": (["export", str(missing), *ok], "missing checkpoint.json"),
        "edited weights": (["export", str(edited), *ok], "the weights were edited"),
        "no checkpoint": (["export", str(root / "nowhere"), *ok], "not a checkpoint folder"),
        "unknown variant": (["export", str(checkpoint), *ok, "--variants", "fp32,int3"], "unknown variant 'int3'"),
        "repository is a file": (
            ["export", str(checkpoint), "--repository", str(a_file), "--name", "d"],
            "is a file, expected a folder",
        ),
        "slash in name": (
            ["export", str(checkpoint), "--repository", str(repo), "--name", "a/b"],
            "invalid model name 'a/b'",
        ),
        "dots in name": (
            ["export", str(checkpoint), "--repository", str(repo), "--name", "a..b"],
            "invalid model name 'a..b'",
        ),
        "existing version": (
            ["export", str(checkpoint), *ok, "--variants", "fp32", "--version", "3"],
            "version 3 already exists",
        ),
        "pipeline unknown variant": (
            ["pipeline", "--recipe", str(recipe), "--repository", str(repo)],
            "unknown variant 'int4'",
        ),
        "pipeline no recipe": (
            ["pipeline", "--recipe", str(root / "none.yaml"), "--repository", str(repo)],
            "does not exist",
        ),
    }
    # As a user runs it, in subprocesses (each pays the torch import) for a few; in-process for the rest.
    running = {case: _start(cases[case][0], root) for case in SUBPROCESS_CASES}
    results = {case: _in_process(args) for case, (args, _) in cases.items() if case not in SUBPROCESS_CASES}
    results |= {case: (*proc.communicate(timeout=240), proc.returncode) for case, proc in running.items()}
    return cases, results, repo


def _in_process(args):
    result = CliRunner().invoke(build_app(), args)
    return result.stdout, result.stderr, result.exit_code


@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_publishes_nothing(bad_inputs):
    cases, results, repo = bad_inputs
    for case, (_, expected) in cases.items():
        stdout, stderr, code = results[case]
        assert code == 2, f"{case}: exit {code}, stderr {stderr!r}"
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, f"{case}: {stderr!r}"
        assert lines[0].startswith("error: "), f"{case}: {stderr!r}"
        assert expected in lines[0], f"{case}: {lines[0]!r}"
        assert "Traceback" not in stdout + stderr
    assert list_models(repo) == ["digits"]
    assert sorted(p.name for p in (repo / "digits").iterdir()) == ["3"]


@pytest.mark.slow
def test_export_verb_publishes_and_prints_a_summary(checkpoint_for, tmp_path):
    checkpoint, _ = checkpoint_for("mlp")
    proc = _start(["export", str(checkpoint), "--repository", str(tmp_path / "repo"), "--name", "digits",
                   "--variants", "fp32,int8", "-q"], tmp_path)  # fmt: skip
    (
        stdout,
        stderr,
    ) = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert "digits-int8" in stdout
    assert "100.00%" in stdout
    assert read_manifest(tmp_path / "repo" / "digits-int8" / "1").precision == "int8"
    assert list_models(tmp_path / "repo") == ["digits", "digits-int8"]
