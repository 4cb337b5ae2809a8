"""docs/benchmarks.md is a reference: small, one table of targets per area with its command, links that resolve."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from modelpress.cli import build_app

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
HISTORY = ROOT / "benchmarks" / "results" / "history"
AREAS = (
    "Training",
    "Export",
    "Compression",
    "MiniLM",
    "Serving: `modelpress bench`",
    "Serving overhead and memory",
    "Reliability",
)


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", BENCHMARKS.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _code(text: str) -> list[str]:
    return [line for block in re.findall(r"```\w*\n(.*?)```", text, flags=re.DOTALL) for line in block.splitlines()]


def test_benchmarks_doc_stays_a_reference() -> None:
    assert BENCHMARKS.stat().st_size <= 30_000
    names = list(_sections())
    assert names[0] == "Method"
    assert names[-1] == "Figures added by current work"


@pytest.mark.parametrize("area", AREAS)
def test_each_area_has_its_command_and_a_table_of_targets(area: str) -> None:
    text = _sections()[area]
    assert _code(text), f"{area}: no command to reproduce its figures"
    assert re.search(r"^\| target \| current figure.* \| met \|$", text, flags=re.MULTILINE), area


def test_every_history_file_is_linked_and_every_link_resolves() -> None:
    text = BENCHMARKS.read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    for link in links:
        if "://" not in link:
            assert (BENCHMARKS.parent / link).resolve().exists(), f"broken link: {link}"
    linked = {Path(link).name for link in links}
    history = sorted(HISTORY.glob("*.md"))
    assert len(history) >= 6
    assert {path.name for path in history} <= linked, "a history file nobody links to"


def test_result_files_named_in_the_doc_exist() -> None:
    for pattern in re.findall(r"`(benchmarks/results/[^`\s]+)`", BENCHMARKS.read_text()):
        assert list(ROOT.glob(pattern)), f"no file matches {pattern}"


def test_commands_name_real_modules_and_verbs() -> None:
    verbs = {command.name for command in build_app().registered_commands}
    modules, used = set(), set()
    for line in _code(BENCHMARKS.read_text()):
        modules.update(re.findall(r"python -m (modelpress(?:\.\w+)+)", line))
        used.update(re.findall(r"(?:^|\s)modelpress (\w[\w-]*)", line))
    assert len(modules) >= 5
    assert len(used) >= 4
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"no module {module}"
    assert used <= verbs, f"not CLI verbs: {used - verbs}"
