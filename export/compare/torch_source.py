"""Where a family's PyTorch eager fp32 baseline comes from, and loading it.

A model trained by a recipe records its checkpoint folder (``source.checkpoint``). A pretrained text encoder
(MiniLM) has no checkpoint: its manifest records the package or local Hugging Face folder it was imported from
(``source.model``), and the baseline is that encoder wrapped with pooling and normalisation, exactly the module
the ONNX graph was exported from, fed the same token ids and mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpress.export.compare.runners import is_text
from modelpress.serving.manifest import ModelManifest


class NoBaselineError(Exception):
    """Why no PyTorch baseline can be loaded for a model (the message is shown in the report)."""


def baseline_source(manifest: ModelManifest) -> str | None:
    """The checkpoint folder, or for a text model the package / Hugging Face folder, it was made from."""
    if manifest.source.get("imported"):
        return str(manifest.source["imported"])
    key = "model" if is_text(manifest) and manifest.source.get("model") else "checkpoint"
    value = manifest.source.get(key)
    return str(value) if value else None


def load_baseline(manifest: ModelManifest) -> Any:
    """The eager fp32 ``torch.nn.Module`` of the model's source, in eval mode.

    Raises:
        NoBaselineError: the source is not recorded, not found, unusable, or PyTorch is not installed.
    """
    source = baseline_source(manifest)
    if manifest.source.get("imported"):  # a model a user brought (modelpress import): its program or folder
        return _load_imported(manifest)
    if is_text(manifest) and manifest.source.get("model"):
        return _load_text_encoder(str(source))
    if not source or not Path(source).is_dir():
        raise NoBaselineError(f"source checkpoint not found ({source!r}): no PyTorch baseline")
    try:
        from modelpress.training.checkpoint import CheckpointError, load_checkpoint
    except ImportError as e:  # a serving-only install has no torch
        raise NoBaselineError(f"PyTorch not installed ({e}): no baseline") from e
    try:
        module, _ = load_checkpoint(Path(source))
    except CheckpointError as e:
        raise NoBaselineError(f"checkpoint unusable: {e}") from e
    return module


def _load_text_encoder(spec: str) -> Any:
    try:
        from modelpress.training.text.encoder import SentenceEncoder
        from modelpress.training.text.source import TextModelError, load_encoder, resolve_source
    except ImportError as e:  # no torch / transformers in this install
        raise NoBaselineError(f"PyTorch or transformers not installed ({e}): no baseline") from e
    try:
        return SentenceEncoder(load_encoder(resolve_source(spec))).eval()
    except TextModelError as e:
        raise NoBaselineError(f"text model source unusable: {e}") from e


def _load_imported(manifest: ModelManifest) -> Any:
    try:
        from modelpress.export.importers.base import ImportSourceError
        from modelpress.export.importers.baseline import load_imported_module
    except ImportError as e:  # no torch in this install
        raise NoBaselineError(f"PyTorch not installed ({e}): no baseline") from e
    try:
        return load_imported_module(manifest)
    except ImportSourceError as e:
        raise NoBaselineError(str(e)) from e
