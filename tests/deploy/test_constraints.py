"""One lock for every image: it pins what the images' extras pull in, one onnxruntime release, and no torch in the
servers; what serving imports is installed by the serve extras."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.deploy.files import (
    IMAGE_EXTRAS,
    LOCK,
    ROOT,
    Stage,
    dependency_closure,
    extras_requirements,
    image_extras,
    normalise,
    read_requirements,
)

# Code that goes into the serving images (Dockerfile stages serve-build / serve-gpu-build).
SERVED_PACKAGES = ("common", "serving", "modelpress")
FORBIDDEN = {"torch", "torchvision", "onnx", "onnxscript", "optuna", "scikit-learn", "transformers", "matplotlib"}
# Build stage -> what it must install: the server images one runtime flavour each, the pipeline every stage.
EXPECTED_EXTRAS = {stage: set(extras) for stage, extras in IMAGE_EXTRAS.items()}
# The images' interpreter and platform: python:3.11-slim-bookworm on x86_64 (the lock is resolved for them).
IMAGE_ENVIRONMENT = default_environment() | {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
}


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return read_requirements(LOCK)


@pytest.fixture(scope="module")
def extras_of(stages: dict[str, Stage]) -> dict[str, list[str]]:
    return image_extras(stages)


def _applies(req: Requirement, extras: set[str] = frozenset()) -> bool:
    return req.marker is None or any(req.marker.evaluate(IMAGE_ENVIRONMENT | {"extra": e}) for e in {"", *extras})


def _direct(extras: list[str]) -> list[Requirement]:
    return [r for r in extras_requirements(extras) if _applies(r)]


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


# ------------------------------------------------------------------------------------------------- the lock


def test_each_image_installs_its_extras_under_the_lock(stages: dict[str, Stage], extras_of) -> None:
    assert {stage: set(extras) for stage, extras in extras_of.items()} == EXPECTED_EXTRAS
    for name in EXPECTED_EXTRAS:
        assert stages[name].env().get("PIP_CONSTRAINT") == "/src/constraints/images.txt", name


def test_onnxruntime_is_pinned_once_and_both_flavours_match(lock: dict[str, str]) -> None:
    lines = [line.split("==")[0] for line in LOCK.read_text().splitlines() if "==" in line.split("#")[0]]
    assert len(lines) == len(set(lines)), "a distribution is pinned twice"
    assert lines.count("onnxruntime") == 1
    assert lock["onnxruntime"] == lock["onnxruntime-gpu"], "export and both servers must run one ORT release"


@pytest.mark.parametrize("image", sorted(EXPECTED_EXTRAS))
def test_the_lock_pins_every_direct_dependency_within_its_range(lock: dict[str, str], extras_of, image) -> None:
    direct = _direct(extras_of[image])
    assert len(direct) >= 10
    missing = sorted(normalise(r.name) for r in direct if normalise(r.name) not in lock)
    assert not missing, f"{image}: not pinned in constraints/images.txt: {missing} (run `make lock`)"
    outside = {
        r.name: f"{lock[normalise(r.name)]} not in {r.specifier}"
        for r in direct
        if not r.specifier.contains(lock[normalise(r.name)], prereleases=True)
    }
    assert not outside, f"{image}: pins outside pyproject.toml's ranges: {outside} (run `make lock`)"


def test_the_lock_is_closed_under_dependencies(lock: dict[str, str]) -> None:
    """Each pinned distribution installed here at its pinned version has all its requirements pinned and met.

    (The metadata comes from this environment, so a distribution installed here at another version is skipped;
    enough must be checked for the test to mean something. A venv installed long after the lock, from newer
    releases, cannot check it: then the test says so and skips rather than fail on what PyPI published since.)
    """
    checked, unmet = 0, {}
    for name, version in lock.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked += 1
        for text in dist.requires or []:
            req = Requirement(text)
            if not _applies(req):
                continue
            pinned = lock.get(normalise(req.name))
            if pinned is None or not req.specifier.contains(pinned, prereleases=True):
                unmet.setdefault(name, []).append(f"{text} (lock: {pinned})")
    if checked < len(lock) // 2:
        pytest.skip(f"only {checked} of {len(lock)} pins are installed here at the locked version: `make lock` first")
    assert not unmet, f"requirements of pinned distributions the lock does not meet: {unmet}"


# ----------------------------------------------------------------------------------------------- the servers


@pytest.mark.parametrize("extras", [sorted(EXPECTED_EXTRAS["serve-build"]), sorted(EXPECTED_EXTRAS["serve-gpu-build"])])
def test_no_torch_in_the_server_images(extras: list[str]) -> None:
    direct = {normalise(r.name) for r in _direct(extras)}
    assert not FORBIDDEN & direct
    assert not FORBIDDEN & dependency_closure(dict.fromkeys(direct, "")), "a serving dependency pulls in torch"


@pytest.mark.parametrize("extras", [sorted(EXPECTED_EXTRAS["serve-build"]), sorted(EXPECTED_EXTRAS["serve-gpu-build"])])
def test_every_serving_import_is_installed(extras: list[str]) -> None:
    """What each server image installs covers every module the serving code imports (GPU-only ones on CPU aside)."""
    direct = {normalise(r.name) for r in _direct(extras)}
    provided = _import_names(dependency_closure(dict.fromkeys(direct, "")))
    missing = {
        module: where
        for module, (where, optional) in served_imports().items()
        if module not in provided and not (optional and "gpu" not in extras)
    }
    assert not missing, f"modelpress[{','.join(extras)}] does not install what these import: {missing}"


def test_import_scan_sees_real_imports() -> None:
    """The scanner finds what the code imports (so an empty result cannot pass by accident)."""
    found = served_imports()
    assert {"pydantic", "typer", "onnxruntime"} <= set(found)
    assert not found["typer"][1]
