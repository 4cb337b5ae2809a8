"""The data a text encoder's chain uses: the corpus split into training, calibration and held-out sentences.

The recipe's ``data:`` section for a pretrained encoder is :class:`CorpusConfig`; :func:`text_data` loads it
and tokenizes the calibration and held-out sentences once, for every pass and the quality strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelpress.export.text.fidelity import token_batches
from modelpress.serving.text import TextTokenizer


class CorpusConfig(BaseModel):
    """A pretrained encoder recipe's ``data:`` section."""

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(
        "pydoc",
        description="'pydoc' (CPython's documentation), 'python-docs' (+ the stdlib's docstrings), "
        "'python-docs+site' (+ installed packages') or a UTF-8 text file",
    )
    heldout_fraction: float = Field(0.15, gt=0, lt=1)
    max_heldout: int = Field(256, ge=8)
    calibration_size: int = Field(128, ge=8)
    max_length: int = Field(128, gt=1, description="token length for calibration, distillation and fidelity")


@dataclass(frozen=True)
class TextData:
    """Sentences by role (never mixed: the held-out ones only judge) and their token batches.

    Attributes:
        train: sentences a distillation trains on.
        calibration: sentences quantization calibrates on (and distillation validates on).
        calibration_batches, heldout_batches: graph feeds (``input_ids``, ``attention_mask``).
        corpus: where the sentences came from, recorded in the lineage.
    """

    train: list[str]
    calibration: list[str]
    calibration_batches: list[dict[str, np.ndarray]]
    heldout_batches: list[dict[str, np.ndarray]]
    corpus: dict[str, Any]


def text_data(config: CorpusConfig, tokenizer_file: Path, *, seed: int) -> TextData:
    """Load and split the corpus, tokenize its calibration and held-out sentences at ``config.max_length``.

    Raises:
        modelpress.training.text.corpus.CorpusError: the corpus is missing or too small.
    """
    from modelpress.training.text.corpus import load_corpus

    corpus = load_corpus(
        None if config.corpus == "pydoc" else config.corpus,
        heldout_fraction=config.heldout_fraction, max_heldout=config.max_heldout,
        calibration_size=config.calibration_size, seed=seed,
    )  # fmt: skip
    tokenizer = TextTokenizer(tokenizer_file, config.max_length)
    return TextData(
        train=list(corpus.train),
        calibration=list(corpus.calibration),
        calibration_batches=list(token_batches(tokenizer, corpus.calibration)),
        heldout_batches=list(token_batches(tokenizer, corpus.heldout)),
        corpus=corpus.describe(),
    )
