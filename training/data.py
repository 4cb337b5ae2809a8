"""Data sets, deterministic splits and preprocessing.

Sources: scikit-learn's bundled handwritten digits (no download), a CSV file (numeric feature columns and a
label column) or an NPZ file (arrays ``X`` and ``y``). The split is stratified for classification and fixed
by the seed; standardisation statistics come from the training split only and travel with the checkpoint
(:class:`~modelpress.training.checkpoint.PreprocessingSpec`), so export and serving apply exactly the same transform.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelpress.common.errors import UserError
from modelpress.training.checkpoint import PreprocessingSpec, file_sha256
from modelpress.training.recipe import DataConfig

if TYPE_CHECKING:
    from modelpress.training.checkpoint import CheckpointMeta

# Features whose training-split std is below this are constant (digits has always-blank border pixels):
# dividing by ~0 would blow up any value seen later, so they are only centred.
MIN_STD = 1e-6


class DataError(UserError, ValueError):
    """The data file is missing or malformed, or does not fit what the model expects."""


@dataclass
class Dataset:
    """Raw (not yet preprocessed) features and targets, with class names for classification."""

    X: np.ndarray
    y: np.ndarray
    labels: list[str] | None
    feature_names: list[str] | None = None  # a CSV's header, in column order (the label left out)


@dataclass
class Splits:
    """Train/validation/test arrays, already preprocessed; ``y`` is int64 (classes) or float32 (regression)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    preprocessing: PreprocessingSpec
    labels: list[str] | None
    input_shape: list[int]
    task: str = "classification"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_outputs(self) -> int:
        if self.task == "classification":
            return len(self.labels or [])
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])


def load_splits(data_cfg: DataConfig | dict[str, Any], seed: int, *, task: str = "classification") -> Splits:
    """Load the data set, split it deterministically from ``seed`` and standardise it with train-only stats."""
    if not isinstance(data_cfg, DataConfig):
        # a checkpoint's ``data`` record carries extra facts (seed, sizes, sha256): take the config keys
        data_cfg = DataConfig.model_validate({k: v for k, v in data_cfg.items() if k in DataConfig.model_fields})
    return _make_splits(data_cfg, seed, task, preprocessing=None)


def splits_for_checkpoint(meta: CheckpointMeta) -> Splits:
    """Reproduce exactly the split and preprocessing a checkpoint was trained with (from ``meta.data``).

    The recorded preprocessing statistics are applied as they are, not recomputed.

    Raises:
        DataError: the data file changed since training (sha256 differs) or no longer exists.
    """
    data = dict(meta.data)
    path = data.get("path")
    if path and not Path(path).is_file():
        raise DataError(f"the checkpoint's data file {path} no longer exists")
    if path and data.get("sha256") and file_sha256(Path(path)) != data["sha256"]:
        raise DataError(f"the checkpoint's data file {path} changed since training (sha256 differs)")
    cfg = DataConfig.model_validate({k: v for k, v in data.items() if k in DataConfig.model_fields})
    splits = _make_splits(cfg, int(data.get("seed", 0)), meta.task, preprocessing=meta.preprocessing)
    if splits.input_shape != meta.input_spec.shape:
        raise DataError(f"data shape {splits.input_shape} differs from the checkpoint's {meta.input_spec.shape}")
    return splits


def _make_splits(cfg: DataConfig, seed: int, task: str, preprocessing: PreprocessingSpec | None) -> Splits:
    dataset = load_dataset(cfg, task)
    parts = split_indices(dataset.y, cfg.val_fraction, cfg.test_fraction, seed, stratify=task == "classification")
    spec = preprocessing
    if spec is None:
        spec = fit_preprocessing(dataset.X[parts["train"]]) if cfg.standardize else PreprocessingSpec(type="none")
    meta = {**cfg.model_dump(), "seed": seed, "task": task, "num_samples": len(dataset.y)}
    if cfg.path:
        meta["path"] = str(Path(cfg.path).resolve())
        meta["sha256"] = file_sha256(Path(cfg.path))
    meta["split_sizes"] = {k: len(v) for k, v in parts.items()}
    if dataset.feature_names:  # what :explain and the /ui page name each attribution by
        meta["feature_names"] = dataset.feature_names
    arrays = {k: (apply_preprocessing(dataset.X[idx], spec), dataset.y[idx]) for k, idx in parts.items()}
    return Splits(
        *arrays["train"],
        *arrays["val"],
        *arrays["test"],
        preprocessing=spec,
        labels=dataset.labels,
        input_shape=list(dataset.X.shape[1:]),
        task=task,
        meta=meta,
    )


def cv_splits(data_cfg: DataConfig, seed: int, folds: int, *, task: str = "classification") -> list[Splits]:
    """K-fold cross-validation over the train+validation pool (the test split stays out of model selection).

    Each fold's standardisation statistics come from that fold's training part only.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {folds}")
    dataset = load_dataset(data_cfg, task)
    parts = split_indices(
        dataset.y, data_cfg.val_fraction, data_cfg.test_fraction, seed, stratify=task == "classification"
    )
    pool = np.concatenate([parts["train"], parts["val"]])
    kind = StratifiedKFold if task == "classification" else KFold
    if task == "classification" and np.bincount(dataset.y[pool]).min() < folds:
        raise DataError(f"a class has fewer than {folds} samples in train+val; use fewer tune.cv_folds")
    splitter = kind(n_splits=folds, shuffle=True, random_state=seed)
    out = []
    for k, (tr, va) in enumerate(splitter.split(pool, dataset.y[pool])):
        train, val, test = pool[tr], pool[va], parts["test"]
        spec = fit_preprocessing(dataset.X[train]) if data_cfg.standardize else PreprocessingSpec(type="none")
        arrays = [a for idx in (train, val, test) for a in (apply_preprocessing(dataset.X[idx], spec), dataset.y[idx])]
        meta = {**data_cfg.model_dump(), "seed": seed, "task": task, "fold": k, "folds": folds}
        out.append(Splits(*arrays, spec, dataset.labels, list(dataset.X.shape[1:]), task, meta))
    return out


def load_dataset(cfg: DataConfig, task: str) -> Dataset:
    if cfg.source == "digits":
        return _digits(task)
    path = Path(cfg.path or "")
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    names = None
    if cfg.source == "csv":
        table = read_csv(path, cfg.label or "")
        X, raw_y, names = table.X, table.y, table.feature_names
    else:
        X, raw_y = read_npz(path)
    _check_finite(X, path)
    return replace(_targets(X, raw_y, task, path), feature_names=names)


@dataclass(frozen=True)
class CsvTable:
    """A CSV's numeric features, its label column as text, and the feature columns' names (header order)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]


def read_csv(path: Path, label: str) -> CsvTable:
    """Read numeric feature columns and the ``label`` column (kept as text until the task decides)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise DataError(f"{path}: label column {label!r} not found (columns: {', '.join(header)})")
    if len(header) < 2:
        raise DataError(f"{path}: no feature columns besides the label {label!r}")
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if not body:
        raise DataError(f"{path}: no data rows")
    li = header.index(label)
    features = [i for i in range(len(header)) if i != li]
    X = np.empty((len(body), len(features)), dtype=np.float32)
    y = []
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {r} has {len(row)} cells, the header has {len(header)}")
        for j, i in enumerate(features):
            X[r - 2, j] = _number(row[i], path, r, header[i])
        if not row[li].strip():
            raise DataError(f"{path}: line {r}, column {label!r}: empty label")
        y.append(row[li].strip())
    return CsvTable(X, np.asarray(y), [header[i] for i in features])


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("X", "y") if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing array {missing[0]!r} (found: {', '.join(npz.files) or 'none'})")
            X, y = npz["X"], npz["y"]
    except (ValueError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable NPZ file ({e})") from e
    if X.ndim < 2 or len(X) != len(y):
        raise DataError(f"{path}: X must be [samples, features...] with one y per sample, got X {X.shape}, y {y.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    return X.astype(np.float32), y


def split_indices(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int, *, stratify: bool
) -> dict[str, np.ndarray]:
    """Deterministic train/val/test indices; stratified by class when ``stratify``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    strat = y if stratify else None
    _check_split_size(y, val_fraction + test_fraction, stratify)
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=strat)
    strat_rest = y[rest] if stratify else None
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), random_state=seed + 1, stratify=strat_rest
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def fit_preprocessing(X_train: np.ndarray) -> PreprocessingSpec:
    flat = X_train.reshape(len(X_train), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std = np.where(std < MIN_STD, 1.0, std)
    return PreprocessingSpec(type="standardize", mean=mean.tolist(), std=std.tolist())


def apply_preprocessing(X: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    if spec.type == "none":
        return X.astype(np.float32)
    if spec.mean is None or spec.std is None:
        raise DataError("standardize preprocessing without mean/std")
    flat = X.reshape(len(X), -1)
    if flat.shape[1] != len(spec.mean):
        raise DataError(f"data has {flat.shape[1]} features, the preprocessing expects {len(spec.mean)}")
    out = (flat - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return out.reshape(X.shape).astype(np.float32)


def encode_labels(raw: np.ndarray, labels: list[str], path: Path | str) -> np.ndarray:
    """Map raw label values to the class indices of ``labels`` (a checkpoint's class names)."""
    index = {name: i for i, name in enumerate(labels)}
    names = [_label_name(v) for v in raw]
    unknown = sorted({n for n in names if n not in index})
    if unknown:
        raise DataError(f"{path}: label {unknown[0]!r} is not one of the model's classes ({', '.join(labels)})")
    return np.asarray([index[n] for n in names], dtype=np.int64)


def _digits(task: str) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = bunch.data.astype(np.float32)
    if task == "regression":
        # The digit value as a number: a real regression target on the same images.
        return Dataset(X, bunch.target.astype(np.float32), None)
    return Dataset(X, bunch.target.astype(np.int64), [str(int(t)) for t in bunch.target_names])


def _targets(X: np.ndarray, raw_y: np.ndarray, task: str, path: Path) -> Dataset:
    if task == "regression":
        try:
            y = raw_y.astype(np.float32)
        except ValueError as e:
            raise DataError(f"{path}: regression needs numeric labels ({e})") from e
        if not np.isfinite(y).all():
            raise DataError(f"{path}: label contains NaN or infinite values")
        return Dataset(X, y, None)
    if raw_y.ndim != 1:
        raise DataError(f"{path}: classification needs one label per sample, got y of shape {raw_y.shape}")
    names = [_label_name(v) for v in raw_y]
    if any(n.lower() in ("nan", "inf", "-inf") for n in names):
        raise DataError(f"{path}: label contains NaN or infinite values")
    labels = sorted(set(names), key=_label_sort_key)
    if len(labels) < 2:
        raise DataError(f"{path}: classification needs at least 2 classes, found {len(labels)}")
    return Dataset(X, encode_labels(raw_y, labels, path), labels)


def _label_name(value: Any) -> str:
    """``3``, ``3.0`` and ``"3"`` are the same class; anything else keeps its text."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def _label_sort_key(name: str) -> tuple[int, float, str]:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _number(cell: str, path: Path, line: int, column: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: line {line}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: line {line}, column {column!r}: {text!r} is NaN or infinite")
    return value


def _check_finite(X: np.ndarray, path: Path) -> None:
    bad = ~np.isfinite(X.reshape(len(X), -1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: sample {row}, feature {col} is NaN or infinite")


def _check_split_size(y: np.ndarray, held_out: float, stratify: bool) -> None:
    if stratify:
        counts = np.unique(y, return_counts=True)[1]
        # each class needs a member in train, val and test
        if counts.min() < 3:
            raise DataError(f"a class has only {counts.min()} samples; stratified splits need at least 3 per class")
        if len(y) * min(held_out / 2, 1 - held_out) < len(counts):
            raise DataError(f"{len(y)} samples are too few for {len(counts)} classes with these split fractions")
    elif len(y) < 3:
        raise DataError(f"{len(y)} samples are too few to split into train/val/test")
