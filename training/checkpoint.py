"""The checkpoint: the contract between training and export.

A checkpoint is a folder holding ``model.safetensors`` (the weights) and ``checkpoint.json``
(:class:`CheckpointMeta`): enough to rebuild the module, feed it the same preprocessed inputs it was
trained on, and know how good it was. It is written atomically: a temporary sibling folder, then a rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelpress.common.errors import UserError

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint folder is missing files, malformed, or was edited after it was written."""


class InputSpec(BaseModel):
    """The model's input, per sample (no batch dimension)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "input"
    shape: list[int]
    dtype: Literal["float32", "int64"] = "float32"


class PreprocessingSpec(BaseModel):
    """Computed on the training split only; ``mean``/``std`` are per flattened feature."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["standardize", "none"] = "standardize"
    mean: list[float] | None = None
    std: list[float] | None = None


class CheckpointMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION
    architecture: str
    arch_config: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] = "classification"
    input_spec: InputSpec
    num_outputs: int = Field(gt=0)
    labels: list[str] | None = None
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    data: dict[str, Any] = Field(default_factory=dict, description="data source, split seed and fractions")
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict, description="split -> metric -> value")
    recipe: dict[str, Any] = Field(default_factory=dict, description="the resolved recipe that trained it")
    training: dict[str, Any] = Field(default_factory=dict, description="epochs run, seconds, best epoch...")
    weights_sha256: str = ""
    tool_versions: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (weights, user data files)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tool_versions() -> dict[str, str]:
    import platform

    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}


def save_checkpoint(
    model: nn.Module,
    meta: CheckpointMeta,
    out_dir: Path,
    *,
    overwrite: bool = False,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``model`` and ``meta`` to ``out_dir`` atomically and return ``out_dir``.

    The folder appears complete or not at all. An existing ``out_dir`` is replaced only with ``overwrite``.
    ``extra_files`` (name -> bytes, e.g. the trainer state to resume from) are written inside the same
    atomic step.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise CheckpointError(f"{out_dir} already exists; choose another --out or remove it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        for name, blob in (extra_files or {}).items():
            if Path(name).name != name or name in (WEIGHTS_FILE, META_FILE):
                raise CheckpointError(f"extra checkpoint file name {name!r} must be a plain, new file name")
            (tmp / name).write_bytes(blob)
        meta = meta.model_copy(update={"weights_sha256": file_sha256(tmp / WEIGHTS_FILE)})
        if not meta.tool_versions:
            meta.tool_versions = tool_versions()
        (tmp / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
        if out_dir.exists():
            backup = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(out_dir, backup)
            os.replace(tmp, out_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_meta(ckpt_dir: Path) -> CheckpointMeta:
    """Read and validate ``checkpoint.json`` and check the weights file against its recorded sha256."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"{ckpt_dir}: not a checkpoint folder (does not exist or is a file)")
    for name in (META_FILE, WEIGHTS_FILE):
        if not (ckpt_dir / name).is_file():
            raise CheckpointError(f"{ckpt_dir}: missing {name}")
    try:
        meta = CheckpointMeta.model_validate(json.loads((ckpt_dir / META_FILE).read_text()))
    except (ValidationError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ckpt_dir / META_FILE}: invalid checkpoint metadata: {e}") from e
    digest = file_sha256(ckpt_dir / WEIGHTS_FILE)
    if meta.weights_sha256 and digest != meta.weights_sha256:
        raise CheckpointError(
            f"{ckpt_dir / WEIGHTS_FILE}: sha256 does not match checkpoint.json (the weights were edited)"
        )
    return meta


def load_checkpoint(ckpt_dir: Path) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the module from its metadata, load its weights, and return it in eval mode with the metadata."""
    from safetensors.torch import load_file

    from modelpress.training.models import build_model

    meta = read_meta(Path(ckpt_dir))
    model = build_model(
        meta.architecture,
        meta.arch_config,
        input_shape=meta.input_spec.shape,
        num_outputs=meta.num_outputs,
        task=meta.task,
    )
    state = load_file(str(Path(ckpt_dir) / WEIGHTS_FILE))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt_dir}: weights do not fit architecture {meta.architecture!r}: {e}") from e
    model.eval()
    return model, meta
