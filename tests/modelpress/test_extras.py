"""A verb whose extra is missing ends with one line naming the extra to install, exit code 2, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import typer

from modelpress import cli
from modelpress.extras import EXTRA_OF_MODULE, missing_extra_message

ROOT = Path(__file__).resolve().parents[2]


def _app_needing(module: str) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def verb() -> None:
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    return app


def test_missing_torch_names_the_train_extra(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_app", lambda: _app_needing("torch.nn"))
    monkeypatch.setattr(sys, "argv", ["modelpress"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "'torch'" in err
    assert "pip install 'modelpress[train]'" in err


def test_missing_runtime_offers_both_flavours():
    message = missing_extra_message(ModuleNotFoundError("x", name="onnxruntime.capi"))
    assert "'modelpress[serve]'" in message
    assert "'modelpress[gpu]'" in message


def test_an_unknown_missing_module_keeps_its_traceback(monkeypatch):
    """A module no extra provides (a bug, or our own package) is not disguised as an install hint."""
    monkeypatch.setattr(cli, "build_app", lambda: _app_needing("modelpress.serving.nope"))
    monkeypatch.setattr(sys, "argv", ["modelpress"])
    with pytest.raises(ModuleNotFoundError):
        cli.main()


def _declared_names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_every_hinted_extra_declares_a_distribution_of_that_module():
    """The table names real extras, and each of them lists the distribution that installs the module."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distribution = {"sklearn": "scikit-learn", "yaml": "pyyaml", "torch_pruning": "torch-pruning"}
    for module, extra in EXTRA_OF_MODULE.items():
        assert extra in extras, f"{module}: no extra [{extra}]"
        expected = distribution.get(module, module.replace("_", "-"))
        assert expected in _declared_names(extras[extra]), f"[{extra}] does not install {expected} ({module})"


def test_cli_subprocess_reports_the_extra(tmp_path):
    """As a user sees it: a Python where torch cannot be imported runs `modelpress train`."""
    blocker = tmp_path / "torch"
    blocker.mkdir()
    # A package that raises like a missing one: sitecustomize-free and scoped to this subprocess only.
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "modelpress", "train", "--recipe", str(ROOT / "recipes" / "digits.yaml"),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: this command needs the Python module 'torch', which is not installed: pip install 'modelpress[train]'"
    ]
