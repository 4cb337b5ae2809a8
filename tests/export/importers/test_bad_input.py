"""Bad input to ``modelpress import``: one line naming the problem, exit code 2, the repository untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modelpress.cli import build_app
from tests.sklearn_models import iris_classifier_onnx, iris_data

pytest.importorskip("skl2onnx")


def _opset_99(path: Path) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 99)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-import")
    good = iris_classifier_onnx(root / "iris.onnx")
    x, _y = iris_data()
    (root / "notonnx.onnx").write_text("name,value\nthis is a csv,1\n")
    (root / "truncated.onnx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "nothf").mkdir()
    (root / "nothf" / "weights.bin").write_bytes(b"\0" * 64)
    np.savez(root / "wide.npz", X=np.zeros((8, 5), dtype=np.float32))
    np.savez(root / "bools.npz", X=np.zeros((8, 4), dtype=bool))
    (root / "eval.csv").write_text("a,b,c,d,species\n" + "\n".join(",".join(map(str, r)) + ",0" for r in x[:5]))
    import torch

    from tests.export.importers.helpers import cnn_onnx, small_cnn

    cnn_onnx(root / "cnn.onnx")
    torch.jit.save(torch.jit.trace(small_cnn(), torch.randn(1, 3, 16, 16)), root / "cnn.pt")
    iris_classifier_onnx(root / "zipmap.onnx", zipmap=True)
    return {"root": root, "good": good, "opset": _opset_99(root / "opset99.onnx"), "cnn": root / "cnn.onnx"}


CASES = {
    "not onnx": ("notonnx.onnx", [], "not an ONNX file"),
    "truncated": ("truncated.onnx", [], "truncated or corrupt ONNX file"),
    "unsupported opset": ("opset99.onnx", [], "opset 99 is not supported by ONNX Runtime"),
    "not a hugging face folder": ("nothf", [], "not a Hugging Face model folder"),
    "calibration of the wrong shape": (
        "iris.onnx",
        ["--calibration", "wide.npz"],
        "input 'X' expects shape [-1, 4] FP32, the file gives [8, 5]",
    ),
    "calibration of the wrong dtype": (
        "iris.onnx",
        ["--calibration", "bools.npz"],
        "expects FP32, the file gives bool",
    ),
    "label column missing": (
        "iris.onnx",
        ["--eval", "eval.csv", "--label", "kind"],
        "no column 'kind' for --label; the columns are",
    ),
    "static int8 without calibration": (
        "cnn.onnx",
        ["--variants", "fp32,int8"],
        "needs calibration data: pass --calibration",
    ),
    "zipmap output": ("zipmap.onnx", [], "output 'output_probability' is seq(map(int64,tensor(float))), not a tensor"),
    "missing source": ("nothing.onnx", [], "nothing.onnx: no such file or folder"),
    "torchscript without shape": ("cnn.pt", [], "TorchScript carries no input shapes: pass --input-shape"),
    "bad input shape": ("cnn.pt", ["--input-shape", "3,a"], "--input-shape '3,a': expected positive dims"),
    "label without eval": ("iris.onnx", ["--label", "species"], "--label names a column of the --eval file"),
    "input shape that does not fit": (
        "cnn.pt",
        ["--input-shape", "3"],
        "does not run on --input-shape ((3,),): RuntimeError",
    ),
    "unknown variant": ("iris.onnx", ["--variants", "fp32,int4"], "unknown variant 'int4'"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_nothing_published(inputs: dict[str, Path], tmp_path: Path, case: str) -> None:
    source, extra, message = CASES[case]
    repo = tmp_path / "repo"
    (repo / "kept" / "1").mkdir(parents=True)
    (repo / "kept" / "1" / "model.onnx").write_bytes(b"existing")
    before = sorted((p.relative_to(repo), p.read_bytes() if p.is_file() else b"") for p in repo.rglob("*"))
    args = ["import", str(inputs["root"] / source), "-r", str(repo), "-n", "m", "-q", *extra]
    args = [a if not a.endswith((".npz", ".csv")) else str(inputs["root"] / a) for a in args]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    after = sorted((p.relative_to(repo), p.read_bytes() if p.is_file() else b"") for p in repo.rglob("*"))
    assert after == before


@pytest.mark.slow
def test_cli_subprocess_as_a_user_runs_it(inputs: dict[str, Path], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    done = subprocess.run(
        [sys.executable, "-m", "modelpress", "import", str(inputs["good"]), "-r", str(repo), "-n", "iris",
         "--variants", "fp32,fp16", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "iris-fp16" in done.stdout
    assert (repo / "iris-fp16" / "1" / "manifest.json").is_file()
    truncated = inputs["root"] / "truncated.onnx"
    bad = subprocess.run([sys.executable, "-m", "modelpress", "import", str(truncated), "-r", str(repo), "-n", "t"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr
