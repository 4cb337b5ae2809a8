"""What the CLI and other stages call: train a recipe into a checkpoint, resume one, evaluate one."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelpress.common.errors import UserError
from modelpress.training import distributed
from modelpress.training.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    InputSpec,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from modelpress.training.data import (
    DataError,
    Splits,
    apply_preprocessing,
    encode_labels,
    load_splits,
    read_csv,
    read_npz,
    splits_for_checkpoint,
)
from modelpress.training.models import build_model, count_parameters, resolve_config
from modelpress.training.recipe import Recipe, RecipeError, recipe_from_dict
from modelpress.training.trainer import FitResult, check_monitor, evaluate_outputs, fit, predict, resolve_device

TRAINER_STATE_FILE = "trainer_state.pt"


class TrainingError(UserError, ValueError):
    """The recipe and the data do not fit together (shapes, metric names, resume limits)."""


# What the CLI reports as one line and exit code 2 (everything else is a bug and keeps its traceback).


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_out_dir(out_dir: Path) -> None:
    """Refuse an existing output folder before any work is done, so nothing is overwritten."""
    if Path(out_dir).exists():
        raise CheckpointError(f"{out_dir} already exists; choose another --out or remove it")


def data_overrides(data_file: str | Path | None, label: str | None) -> list[str]:
    """Turn ``--data FILE --label COL`` into recipe overrides (source from the file's suffix)."""
    if data_file is None:
        if label is not None:
            raise RecipeError("--label needs --data")
        return []
    suffix = Path(data_file).suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"--data {data_file}: expected a .csv or .npz file")
    if suffix == ".csv" and not label:
        raise DataError(f"--data {data_file}: a CSV file needs --label COLUMN")
    items = [f"data.source={suffix[1:]}", f"data.path={_yaml_str(data_file)}"]
    return [*items, f"data.label={_yaml_str(label)}"] if label else items


def train_recipe(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> Path:
    """Train ``recipe`` and write its checkpoint to ``out_dir`` (which must not exist); return ``out_dir``.

    Under ``torchrun`` every rank trains its shard with DDP and only rank 0 writes.

    Raises:
        RecipeError, DataError, CheckpointError, TrainingError: bad input; nothing is written.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    distributed.init_from_env(recipe.training.device)
    seed_everything(recipe.seed)
    splits = load_splits(recipe.data, recipe.seed, task=recipe.task)
    model = build_for_recipe(recipe, splits)
    return _train_and_save(model, splits, recipe, out_dir, progress=progress, resume_state=None)


def resume_checkpoint(
    ckpt_dir: Path, out_dir: Path, overrides: tuple[str, ...] | list[str] = (), *, progress: bool = True
) -> Path:
    """Continue training the checkpoint in ``ckpt_dir`` (its recipe plus ``overrides``) into ``out_dir``.

    Optimizer, schedule, early-stopping and RNG state continue from where the run stopped, so 2 + 3
    epochs give the same weights as 5 epochs in one go. Raise ``training.epochs`` to train further.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    meta = read_meta(Path(ckpt_dir))
    state_file = Path(ckpt_dir) / TRAINER_STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"{ckpt_dir}: no {TRAINER_STATE_FILE}; this checkpoint cannot be resumed")
    recipe = recipe_from_dict(meta.recipe, list(overrides), source=f"{ckpt_dir} recipe")
    if recipe.model.architecture != meta.architecture or resolve_config(
        recipe.model.architecture, recipe.model.config
    ) != resolve_config(meta.architecture, meta.arch_config):
        raise TrainingError("resume cannot change model.architecture or model.config")
    if recipe.data.model_dump() != {k: meta.data.get(k) for k in recipe.data.model_dump()}:
        raise TrainingError("resume cannot change the data section (the split must stay the same)")
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    if state["epoch"] >= recipe.training.epochs:
        raise TrainingError(
            f"{ckpt_dir} already ran {state['epoch']} epochs of training.epochs={recipe.training.epochs}; "
            "raise it with --set training.epochs=N"
        )
    distributed.init_from_env(recipe.training.device)
    splits = splits_for_checkpoint(meta)
    model = build_for_recipe(recipe, splits)
    return _train_and_save(model, splits, recipe, out_dir, progress=progress, resume_state=state)


def evaluate_checkpoint(ckpt_dir: Path, data_file: str | Path | None = None, label: str | None = None) -> dict:
    """Metrics of a checkpoint on its own test split, or on every sample of ``data_file`` (CSV or NPZ).

    Returns:
        ``{"data": <what was scored>, "samples": n, "metrics": {...}}``.
    """
    model, meta = load_checkpoint(Path(ckpt_dir))
    if data_file is None:
        if label is not None:
            raise RecipeError("--label needs --data")
        splits = splits_for_checkpoint(meta)
        X, y, what = splits.X_test, splits.y_test, "test split"
    else:
        X, y = _external_data(meta, Path(data_file), label)
        what = str(data_file)
    num_classes = meta.num_outputs if meta.task == "classification" else None
    metrics = evaluate_outputs(predict(model, X), y, meta.task, num_classes)
    return {"data": what, "samples": len(y), "metrics": metrics}


def build_for_recipe(recipe: Recipe, splits: Splits) -> torch.nn.Module:
    """The recipe's untrained model, shaped for the data, after checking its monitor and device.

    Raises:
        TrainingError: the architecture does not fit the data, or the monitor or device is invalid.
    """
    try:
        check_monitor(recipe.training.early_stopping.metric, recipe.task)
        resolve_device(recipe.training.device)
        return build_model(
            recipe.model.architecture,
            recipe.model.config,
            input_shape=splits.input_shape,
            num_outputs=splits.num_outputs,
            task=recipe.task,
        )
    except ValueError as e:
        raise TrainingError(f"the model does not fit the data: {e}") from e


def _train_and_save(
    model: torch.nn.Module,
    splits: Splits,
    recipe: Recipe,
    out_dir: Path,
    *,
    progress: bool,
    resume_state: dict[str, Any] | None,
) -> Path:
    cfg = recipe.training
    if cfg.seed is None:
        cfg = cfg.model_copy(update={"seed": recipe.seed})
    result = fit(model, splits, cfg, progress=progress, resume_state=resume_state)
    state = result.state
    meta = _meta(model, splits, recipe, result)
    if distributed.is_main():
        buffer = io.BytesIO()
        torch.save(state, buffer)
        save_checkpoint(model, meta, out_dir, extra_files={TRAINER_STATE_FILE: buffer.getvalue()})
    distributed.barrier()
    return out_dir


def _meta(model: torch.nn.Module, splits: Splits, recipe: Recipe, result: FitResult) -> CheckpointMeta:
    num_classes = splits.num_outputs if splits.task == "classification" else None
    metrics = {
        name: evaluate_outputs(predict(model, X), y, splits.task, num_classes)
        for name, X, y in (
            ("train", splits.X_train, splits.y_train),
            ("val", splits.X_val, splits.y_val),
            ("test", splits.X_test, splits.y_test),
        )
    }
    training = {**result.summary(), "parameters": count_parameters(model), "threads": torch.get_num_threads()}
    return CheckpointMeta(
        architecture=recipe.model.architecture,
        arch_config=resolve_config(recipe.model.architecture, recipe.model.config),
        task=splits.task,
        input_spec=InputSpec(shape=splits.input_shape),
        num_outputs=splits.num_outputs,
        labels=splits.labels,
        preprocessing=splits.preprocessing,
        data=splits.meta,
        metrics=metrics,
        recipe=recipe.model_dump(mode="json"),
        training=training,
    )


def _external_data(meta: CheckpointMeta, path: Path, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        column = label or meta.data.get("label")
        if not column:
            raise DataError(f"--data {path}: a CSV file needs --label COLUMN")
        table = read_csv(path, column)
        X, raw_y = table.X, table.y
    elif suffix == ".npz":
        X, raw_y = read_npz(path)
    else:
        raise DataError(f"--data {path}: expected a .csv or .npz file")
    if list(X.shape[1:]) != meta.input_spec.shape:
        raise DataError(f"{path}: samples have shape {list(X.shape[1:])}, the model expects {meta.input_spec.shape}")
    if not np.isfinite(X).all():
        raise DataError(f"{path}: features contain NaN or infinite values")
    X = apply_preprocessing(X, meta.preprocessing)
    if meta.task == "classification":
        return X, encode_labels(raw_y, meta.labels or [], path)
    try:
        return X, raw_y.astype(np.float32)
    except ValueError as e:
        raise DataError(f"{path}: regression needs numeric labels ({e})") from e


def _yaml_str(value: str | os.PathLike) -> str:
    """Quote a value for a ``--set`` override so YAML keeps it a string."""
    return "'" + str(value).replace("'", "''") + "'"
