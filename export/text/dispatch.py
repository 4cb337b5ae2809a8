"""Which recipes take the pretrained text path (read before anything heavy is imported)."""

from __future__ import annotations

from pathlib import Path

import yaml


def is_text_recipe(path: Path) -> bool:
    """Whether the YAML at ``path`` names a pretrained Hugging Face model (``model.source: hf``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the regular recipe loader reports the problem
    model = raw.get("model") if isinstance(raw, dict) else None
    return isinstance(model, dict) and model.get("source") == "hf"
