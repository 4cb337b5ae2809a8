"""An offline stand-in for the `serve` image's Python environment, built from this venv without a network.

A folder holds symlinks to exactly the distributions ``modelpress[serve]`` depends on (with their
dependencies, read from installed metadata) plus the ``modelpress`` package laid out as the wheel installs it, with
only the stage folders the server imports (``common`` and ``serving`` as ``modelpress.common`` and
``modelpress.serving``): a server module that imports training or export code fails here. ``python -S`` with that
folder on PYTHONPATH sees the standard library and that folder only, no site-packages: what is not in the image
cannot be imported.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
from pathlib import Path

from tests.deploy.files import ROOT, dependency_closure

IMAGE_STAGES = ("common", "serving")


def _top_level_entries(dist: md.Distribution) -> set[str]:
    """First path components a distribution installed into site-packages (packages, modules, .libs, dist-info)."""
    entries = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith(".pth"):
            continue
        entries.add(first)
    return entries


def build(target: Path, requirements: dict[str, str]) -> Path:
    """Lay out the image's importable world in ``target`` and return it (for PYTHONPATH with ``python -S``)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(dependency_closure(requirements)):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        site = Path(dist.locate_file(""))
        for entry in _top_level_entries(dist):
            link = target / entry
            if not link.exists() and (site / entry).exists():
                link.symlink_to(site / entry)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "modelpress", target / "modelpress", ignore=ignore)
    for stage in IMAGE_STAGES:
        shutil.copytree(ROOT / stage, target / "modelpress" / stage, ignore=ignore)
    return target
