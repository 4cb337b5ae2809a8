"""The serving images install what serving imports, nothing of torch, at the versions the suite runs."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.deploy.files import REQUIREMENTS, ROOT, dependency_closure, normalise, read_requirements

# Code that goes into the serving images (Dockerfile stages serve-build / serve-gpu-build).
SERVED_PACKAGES = ("common", "serving", "modelpress")
FORBIDDEN = {"torch", "torchvision", "onnx", "onnxscript", "optuna", "scikit-learn", "transformers", "matplotlib"}


def _import_names(dists: set[str]) -> set[str]:
    names = set()
    for module, owners in md.packages_distributions().items():
        if any(normalise(o) in dists for o in owners):
            names.add(module)
    # Not installed here (it excludes onnxruntime), but in the GPU image: same modules as their CPU twins.
    if "onnxruntime-gpu" in dists:
        names.add("onnxruntime")
    if "nvidia-ml-py" in dists:
        names.add("pynvml")
    return names


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside ``try: ... except (ImportError|Exception)``: the code runs without it."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                caught = ast.unparse(handler.type) if handler.type else "BaseException"
                if any(word in caught for word in ("ImportError", "ModuleNotFoundError", "Exception")):
                    return True
    return False


def imports_of(package: str, *, top_level_only: bool) -> dict[str, tuple[str, bool]]:
    """{top-level module: (first file importing it, optional?)} for absolute imports under ``package``."""
    found: dict[str, tuple[str, bool]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                optional = _optional(node, parents)
                previous = found.get(top)
                if previous is None or (previous[1] and not optional):
                    found[top] = (str(path.relative_to(ROOT)), optional)
    return found


def served_imports() -> dict[str, tuple[str, bool]]:
    """serving/ and common/ at every level (the server runs all of it); modelpress/ only at module top (verbs
    import lazily)."""
    found = imports_of("serving", top_level_only=False)
    for module, where in imports_of("common", top_level_only=False).items():
        found.setdefault(module, where)
    for module, where in imports_of("modelpress", top_level_only=True).items():
        found.setdefault(module, where)
    return {m: w for m, w in found.items() if m not in sys.stdlib_module_names and m not in SERVED_PACKAGES}


@pytest.mark.parametrize("name", ["serve.txt", "serve-gpu.txt"])
def test_no_torch_in_the_server_images(name: str) -> None:
    listed = read_requirements(REQUIREMENTS / name)
    assert not FORBIDDEN & set(listed)
    assert not FORBIDDEN & dependency_closure(listed), "a serving dependency pulls in torch-side packages"


def test_one_onnxruntime_flavour_per_image() -> None:
    cpu = read_requirements(REQUIREMENTS / "serve.txt")
    gpu = read_requirements(REQUIREMENTS / "serve-gpu.txt")
    assert "onnxruntime" in cpu
    assert "onnxruntime-gpu" not in cpu
    assert "onnxruntime-gpu" in gpu
    assert "onnxruntime" not in gpu
    assert cpu["onnxruntime"] == gpu["onnxruntime-gpu"], "both images should serve with the same ORT release"


@pytest.mark.parametrize("name", ["serve.txt", "serve-gpu.txt"])
def test_every_serving_import_is_installed(name: str) -> None:
    provided = _import_names(dependency_closure(read_requirements(REQUIREMENTS / name)))
    missing = {
        module: where
        for module, (where, optional) in served_imports().items()
        if module not in provided and not (optional and name == "serve.txt")
    }
    assert not missing, f"requirements/{name} does not install what these import: {missing}"


def test_import_scan_sees_real_imports() -> None:
    """The scanner finds what the code imports (so an empty result cannot pass by accident)."""
    found = served_imports()
    assert {"pydantic", "typer"} <= set(found)
    assert not found["typer"][1]


def test_pins_are_project_dependencies_within_their_ranges() -> None:
    """Nothing in the images that `pip install modelpress[cpu,hf]` (or `[gpu,hf]`) would not also bring, and
    each pin inside the range pyproject.toml declares (exact equality with this venv would break whenever a
    fresh install resolves a newer release)."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads(Path(ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = project["dependencies"] + extras["cpu"] + extras["gpu"] + extras["hf"]
    ranges = {normalise(Requirement(d).name): Requirement(d).specifier for d in declared}
    pins = read_requirements(REQUIREMENTS / "serve.txt") | read_requirements(REQUIREMENTS / "serve-gpu.txt")
    undeclared = sorted(set(pins) - set(ranges))
    assert not undeclared, f"not declared in pyproject.toml: {undeclared}"
    outside = {
        name: f"{version} not in {ranges[name]}" for name, version in pins.items() if version not in ranges[name]
    }
    assert not outside, f"pins outside the project's ranges: {outside}"
