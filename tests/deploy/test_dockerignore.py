""".dockerignore keeps the venv, data, demo output and model repositories out, and admits what COPY needs."""

from __future__ import annotations

import pytest

from tests.deploy.files import ROOT, copy_sources, dockerignore_patterns, is_ignored, parse_dockerfile

KEPT_OUT = [
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/torch/__init__.py",
    ".git/HEAD",
    "data/train.csv",
    "demo-output/repository/digits/1/model.onnx",
    "demo-output/work/checkpoint/model.safetensors",
    "repositories/digits/1/model.onnx",
    "serving/__pycache__/app.cpython-311.pyc",
    ".pytest_cache/v/cache/lastfailed",
    "tests/serving/test_app.py",
    "k8s/base/deployment.yaml",
]
LET_IN = [
    "pyproject.toml",
    "README.md",
    "constraints/images.txt",
    "constraints/requirements.py",
    "serving/manifest.py",
    "modelpress/cli.py",
    "training/checkpoint.py",
    "recipes/digits.yaml",
    "model-repository/digits/1/model.onnx",
]


@pytest.fixture(scope="module")
def patterns() -> list[tuple[bool, str]]:
    return dockerignore_patterns()


@pytest.mark.parametrize("path", KEPT_OUT)
def test_kept_out(patterns: list[tuple[bool, str]], path: str) -> None:
    assert is_ignored(path, patterns), f"{path} would be sent to the Docker daemon"


@pytest.mark.parametrize("path", LET_IN)
def test_let_in(patterns: list[tuple[bool, str]], path: str) -> None:
    assert not is_ignored(path, patterns), f"{path} is needed in the build context"


def test_every_copy_source_exists_and_is_admitted(patterns: list[tuple[bool, str]]) -> None:
    _, stages = parse_dockerfile()
    baked_default = next(
        i.args.split("=", 1)[1] for s in stages for i in s.all("ARG") if i.args.startswith("MODEL_REPOSITORY=")
    )
    for source in copy_sources(stages):
        source = source.replace("${MODEL_REPOSITORY}", baked_default).rstrip("/")
        assert not is_ignored(source, patterns), f"COPY {source}: left out of the context by .dockerignore"
        if source != baked_default:  # the baked repository is the user's, staged before the build
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_matcher_follows_docker_rules() -> None:
    """Last match wins; a folder pattern covers its contents; `**` spans folders."""
    rules = [(False, "*"), (True, "src"), (False, "**/*.pyc")]
    assert is_ignored("notes.txt", rules)
    assert not is_ignored("src/a.py", rules)
    assert is_ignored("src/pkg/a.pyc", rules)
    assert not is_ignored("keep.txt", [(False, "*.txt"), (True, "keep.txt")])
