from __future__ import annotations

from pathlib import Path

import pytest

from modelpress.training.text import python_docs
from modelpress.training.text.corpus import CorpusError, _held_out, load_corpus, read_corpus_text

MODULE = '''"""Tools that parse the configuration files of a small web server.

The parser reads every section in order and keeps the last value of a key."""


class Reader:
    """Read one file at a time and report the line of each error it finds."""

    def close(self):
        """Close the file and forget every section that was read from it."""


async def fetch():
    """Fetch the remote copy of the settings when the local one is missing."""
'''


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "config.py").write_text(MODULE)
    (root / "pkg" / "copy.py").write_text(MODULE)  # the same docstrings again: kept once
    (root / "pkg" / "broken.py").write_text("def f(:\n    pass\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_config.py").write_text('"""A test module whose docstring must never be read here."""\n')
    return root


def test_docstrings_of_module_classes_and_functions_in_source_order():
    found = python_docs.docstrings(MODULE)
    assert [text.split()[0] for text in found] == ["Tools", "Read", "Close", "Fetch"]
    assert found[0].endswith("keeps the last value of a key.")
    assert python_docs.docstrings("def f(:\n") == []


def test_docstring_text_skips_tests_and_duplicates_and_is_deterministic(tmp_path: Path):
    root = _tree(tmp_path)
    text = python_docs.docstring_text([root])
    assert text == python_docs.docstring_text([root])
    assert text.count("Read one file at a time") == 1
    assert "must never be read" not in text
    assert [p.name for p in python_docs.source_files(root)] == ["broken.py", "config.py", "copy.py"]


def test_python_docs_corpus_adds_the_docstrings_with_a_disjoint_fixed_heldout(tmp_path: Path, monkeypatch):
    root = _tree(tmp_path)
    monkeypatch.setattr(python_docs, "stdlib_root", lambda: root)
    text, source = read_corpus_text("python-docs")
    assert source == "python-docs"
    assert "Close the file and forget every section" in text
    pydoc, docs = load_corpus("pydoc", max_heldout=100_000), load_corpus("python-docs", max_heldout=100_000)
    again = load_corpus("python-docs", max_heldout=100_000, calibration_size=16, seed=5)
    assert docs.heldout == again.heldout  # fixed by each sentence's hash, whatever the other settings
    assert set(pydoc.heldout) <= set(docs.heldout)  # a larger corpus never moves a held-out sentence
    assert "Close the file and forget every section that was read from it." in docs.train + docs.heldout
    assert not set(docs.heldout) & (set(docs.train) | set(docs.calibration))
    assert all(_held_out(s, 0.15) for s in docs.heldout)

    def total(splits):
        return len(splits.train) + len(splits.calibration) + len(splits.heldout)

    assert total(docs) == total(pydoc) + 5  # the five new sentences, each once


def test_unknown_corpus_name_lists_the_named_ones():
    with pytest.raises(CorpusError, match="python-docs"):
        load_corpus("python-doc")


@pytest.mark.slow
def test_the_real_standard_library_gives_ten_times_the_pydoc_sentences():
    docs, pydoc = load_corpus("python-docs"), load_corpus("pydoc")
    assert len(docs.train) > 10 * len(pydoc.train)
    assert docs.heldout == load_corpus("python-docs").heldout
