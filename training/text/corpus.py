"""An offline English corpus of sentences, split into training / calibration and a fixed held-out set.

The default is the Python documentation that ships with CPython (``pydoc_data.topics``: 79 topics, ~465k
characters, ~1,450 sentences); ``python-docs`` adds every docstring of the standard library (~15k sentences),
and a UTF-8 text file the user names replaces them. Which sentence is held out depends only on the
sentence itself (a hash), so the held-out set never leaks into calibration or distillation, whatever sizes a
recipe asks for.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.common.errors import UserError

DEFAULT_CORPUS = "pydoc"
# Larger corpora built from what ships with Python: the pydoc topics first, then every docstring of the
# standard library's sources (~15k sentences; "+site" adds the installed packages', which vary by install).
NAMED_CORPORA = ("python-docs", "python-docs+site")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_HEADING_RULE = re.compile(r"^[*=\-~^]{3,}\s*$")


class CorpusError(UserError):
    """The corpus file is missing, not UTF-8, or holds too few sentences."""


@dataclass(frozen=True)
class CorpusSplits:
    """Disjoint sentence lists. ``heldout`` is only ever used to measure fidelity."""

    train: list[str]
    calibration: list[str]
    heldout: list[str]
    source: str

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "train": len(self.train),
            "calibration": len(self.calibration),
            "heldout": len(self.heldout),
        }


def _prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running prose: code blocks (indented), grammar rules and heading rules are dropped."""
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines or any(ln.startswith((" ", "\t", ">>>")) for ln in lines):
            continue
        if any(_HEADING_RULE.match(ln) or "::=" in ln for ln in lines):
            continue
        paragraphs.append(" ".join(ln.strip() for ln in lines))
    return paragraphs


def split_sentences(text: str, *, min_words: int = 4, max_words: int = 80) -> list[str]:
    """Sentences of ``text`` with ``min_words``..``max_words`` words, in order, without duplicates."""
    seen: set[str] = set()
    sentences: list[str] = []
    for paragraph in _prose_paragraphs(text):
        for sentence in _SENTENCE_END.split(paragraph):
            sentence = " ".join(sentence.split())
            if " | " in sentence:  # a fragment of an ASCII table, not prose
                continue
            if min_words <= len(sentence.split()) <= max_words and sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    return sentences


def _pydoc_topics() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def _named_corpus(name: str) -> str:
    """The text of a corpus that ships with Python: see :data:`NAMED_CORPORA`."""
    from modelpress.training.text.python_docs import docstring_text, site_roots, stdlib_root

    roots = [stdlib_root(), *(site_roots() if name == "python-docs+site" else [])]
    return _pydoc_topics() + "\n\n" + docstring_text(roots)


def check_corpus_spec(path: str | Path | None) -> None:
    """Fail early, before any work, on a corpus that is neither a named one nor an existing file.

    Raises:
        CorpusError: naming the file and the named corpora.
    """
    if path is None or str(path) == DEFAULT_CORPUS or str(path) in NAMED_CORPORA:
        return
    file = Path(path).expanduser()
    if not file.is_file():
        raise CorpusError(
            f"corpus file {file} does not exist (or name one of: {', '.join([DEFAULT_CORPUS, *NAMED_CORPORA])})"
        )


def read_corpus_text(path: str | Path | None = None) -> tuple[str, str]:
    """The corpus text and a name for it: a named corpus (:data:`NAMED_CORPORA`), else a UTF-8 file."""
    if path is None or str(path) == DEFAULT_CORPUS:
        return _pydoc_topics(), "pydoc_data.topics"
    if str(path) in NAMED_CORPORA:
        return _named_corpus(str(path)), str(path)
    check_corpus_spec(path)
    file = Path(path).expanduser()
    try:
        return file.read_text(encoding="utf-8"), str(file)
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {file} is not UTF-8 text ({e.reason} at byte {e.start})") from e


def _held_out(sentence: str, fraction: float) -> bool:
    digest = hashlib.sha256(sentence.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_corpus(
    path: str | Path | None = None,
    *,
    heldout_fraction: float = 0.15,
    max_heldout: int = 256,
    calibration_size: int = 128,
    seed: int = 0,
) -> CorpusSplits:
    """Split the corpus into train / calibration / held-out sentences.

    Args:
        path: a UTF-8 text file, or None / ``"pydoc"`` for the CPython documentation.
        heldout_fraction: share of sentences (chosen by hash) reserved for fidelity measurement.
        max_heldout: at most this many held-out sentences are kept (in corpus order).
        calibration_size: sentences (from the non-held-out part) used to calibrate quantization.
        seed: shuffles the non-held-out part before calibration / training are taken from it.

    Raises:
        CorpusError: the file is unusable or yields fewer than 8 sentences on either side of the split.
    """
    if not 0 < heldout_fraction < 1:
        raise CorpusError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    text, source = read_corpus_text(path)
    sentences = split_sentences(text)
    heldout = [s for s in sentences if _held_out(s, heldout_fraction)][:max_heldout]
    rest = [s for s in sentences if not _held_out(s, heldout_fraction)]
    if len(heldout) < 8 or len(rest) < 8:
        raise CorpusError(
            f"corpus {source}: {len(sentences)} usable sentences ({len(heldout)} held out, {len(rest)} left); "
            "need at least 8 on each side (sentences of 4-80 words of prose)"
        )
    order = np.random.default_rng(seed).permutation(len(rest))
    shuffled = [rest[i] for i in order]
    calibration = shuffled[: min(calibration_size, len(shuffled) // 2)]
    train = shuffled[len(calibration) :]
    return CorpusSplits(train=train, calibration=calibration, heldout=heldout, source=source)
