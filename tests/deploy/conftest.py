from __future__ import annotations

import pytest

from tests.deploy.files import KUSTOMIZATIONS, Stage, find_tool, parse_dockerfile, render


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = find_tool("kubectl")
    if path is None:
        pytest.skip("kubectl not found on PATH or beside the interpreter: it renders the kustomizations (offline)")
    return path


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict]]:
    """Every kustomization, rendered once per session."""
    return {name: render(kubectl, name) for name in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile()
    return {s.name: s for s in parsed}
