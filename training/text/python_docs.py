"""English text that ships with Python itself: docstrings of the standard library (and installed packages).

The docstrings are read from the source files with :mod:`ast`, never by importing a module (importing the
whole standard library has side effects: ``antigravity`` opens a browser, ``this`` prints). Files are visited
in sorted path order and each docstring once, so the text is the same on every run of one Python install.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

# Folders of the standard library that hold tests, vendored tools or installed packages, not library prose.
_SKIPPED_PARTS = frozenset({"test", "tests", "idle_test", "idlelib", "lib2to3", "site-packages", "dist-packages"})
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_root() -> Path:
    """The folder of this interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def site_roots() -> list[Path]:
    """The folders of installed third-party packages (purelib and platlib, once each)."""
    paths = sysconfig.get_paths()
    return sorted({Path(paths["purelib"]), Path(paths["platlib"])})


def source_files(root: Path) -> Iterator[Path]:
    """The ``.py`` files under ``root`` in sorted order, skipping test and vendored folders."""
    for path in sorted(root.rglob("*.py")):
        if not _SKIPPED_PARTS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def docstrings(source: str) -> list[str]:
    """The cleaned docstrings of a module's source (module, classes, functions), in source order.

    Source that does not parse (a file for another Python version) yields nothing.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED)), key=lambda n: getattr(n, "lineno", 0))
    return [text for node in nodes if (text := ast.get_docstring(node, clean=True))]


def docstring_text(roots: Iterable[Path]) -> str:
    """Every docstring under ``roots``, each once, as paragraphs separated by blank lines."""
    seen: set[str] = set()
    parts: list[str] = []
    for root in roots:
        for path in source_files(root):
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # a broken or non-UTF-8 file of some package is not worth failing the corpus for
            for text in docstrings(source):
                if text not in seen:
                    seen.add(text)
                    parts.append(text)
    return "\n\n".join(parts)
