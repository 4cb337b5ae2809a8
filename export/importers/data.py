"""Calibration and evaluation data a user gives: an NPZ, a CSV (``--label COL``) or a text file.

NPZ: one array per graph input, named like the input (any name when the model has one input); ``--label``
names the array of labels. CSV: a header row; every column but the label is a feature, in order, reshaped to
the model's input shape. Text file: one sentence per line, for text models. Everything is checked against the
model's inputs here, so a wrong shape or dtype is one line naming the input, not an ONNX Runtime error later.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.export.errors import ExportError
from modelpress.serving.manifest import TensorSpec
from modelpress.serving.protocol.datatypes import V2_TO_NUMPY

TEXT_SUFFIXES = (".txt", ".text")


class DataFileError(ExportError):
    """A calibration or eval file that cannot be read or does not fit the model's inputs."""


@dataclass(frozen=True)
class UserData:
    """Samples for one purpose (calibration or evaluation): graph feeds or texts, and labels when given."""

    path: Path
    feeds: dict[str, np.ndarray] | None = None
    texts: list[str] | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        if self.texts is not None:
            return len(self.texts)
        return len(next(iter(self.feeds.values()))) if self.feeds else 0


def load_data(
    path: Path, inputs: list[TensorSpec], *, label: str | None = None, text: bool = False, purpose: str = "data"
) -> UserData:
    """Read ``path`` and check it against the model's graph ``inputs`` (or as text for a text model).

    Args:
        path: ``.npz``, ``.csv`` or (text models) ``.txt``.
        inputs: the graph's inputs (shape with -1 for dynamic dims, V2 datatypes).
        label: the array (NPZ) or column (CSV) holding labels.
        text: the model takes text (a tokenizer travels with it).
        purpose: "--calibration" or "--eval", for messages.

    Raises:
        DataFileError: naming the file and what does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{purpose} {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz" and not text:
        data = _npz(path, inputs, label, purpose)
    elif suffix == ".csv":
        data = _csv(path, inputs, label, text, purpose)
    elif suffix in TEXT_SUFFIXES and text:
        if label is not None:
            raise DataFileError(
                f"{purpose} {path}: a text file has no columns; give labels in a CSV with a 'text' column"
            )
        data = UserData(path, texts=_lines(path, purpose))
    else:
        kinds = ".csv or .txt (one sentence per line)" if text else ".npz or .csv"
        raise DataFileError(f"{purpose} {path}: expected {kinds} for this model")
    if len(data) == 0:
        raise DataFileError(f"{purpose} {path}: holds no samples")
    if data.labels is not None and len(data.labels) != len(data):
        raise DataFileError(f"{purpose} {path}: {len(data)} samples but {len(data.labels)} labels")
    return data


def label_indices(data: UserData, names: list[str] | None) -> UserData:
    """Labels as class indices: integers stay, class names are looked up in the model's labels.

    Raises:
        DataFileError: a name that is not one of the model's labels, or names for a model without labels.
    """
    labels = data.labels
    if labels is None or labels.dtype.kind in "iu":
        return data
    if not names:
        raise DataFileError(f"{data.path}: labels are names ({labels[0]!r}, ...) but the model has no label names")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in labels} - set(index))
    if unknown:
        raise DataFileError(f"{data.path}: labels {unknown[:5]} are not among the model's {names}")
    return UserData(data.path, data.feeds, data.texts, np.asarray([index[str(v)] for v in labels], dtype=np.int64))


def _npz(path: Path, inputs: list[TensorSpec], label: str | None, purpose: str) -> UserData:
    try:
        archive = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as e:
        raise DataFileError(f"{purpose} {path}: not a readable .npz file: {e}") from e
    labels = None
    if label is not None:
        if label not in archive:
            raise DataFileError(f"{purpose} {path}: no array named {label!r} for --label; it has {sorted(archive)}")
        labels = archive.pop(label)
    if len(inputs) == 1 and len(archive) == 1:
        arrays = {inputs[0].name: next(iter(archive.values()))}
    else:
        missing = [s.name for s in inputs if s.name not in archive]
        if missing:
            raise DataFileError(
                f"{purpose} {path}: no array for input(s) {missing}; "
                f"name one array per model input, it has {sorted(archive)}"
            )
        arrays = {s.name: archive[s.name] for s in inputs}
    return UserData(path, feeds={s.name: _fit(arrays[s.name], s, path, purpose) for s in inputs}, labels=labels)


def _csv(path: Path, inputs: list[TensorSpec], label: str | None, text: bool, purpose: str) -> UserData:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataFileError(f"{purpose} {path}: not a readable CSV file: {e}") from e
    if len(rows) < 2:
        raise DataFileError(f"{purpose} {path}: expected a header row and at least one sample")
    header, body = rows[0], rows[1:]
    if label is not None and label not in header:
        raise DataFileError(f"{purpose} {path}: no column {label!r} for --label; the columns are {header}")
    columns = {name: [row[i] if i < len(row) else "" for row in body] for i, name in enumerate(header)}
    labels = np.asarray(columns.pop(label)) if label is not None else None
    if text:
        if "text" not in columns and len(columns) != 1:
            raise DataFileError(f"{purpose} {path}: a text model reads the column 'text'; the columns are {header}")
        texts = columns["text"] if "text" in columns else next(iter(columns.values()))
        return UserData(path, texts=texts, labels=_labels(labels))
    if len(inputs) != 1:
        names = [s.name for s in inputs]
        raise DataFileError(f"{purpose} {path}: a CSV feeds a model with one input; this one has {names}: use an .npz")
    try:
        matrix = np.array([[float(v) for v in row] for row in zip(*columns.values(), strict=True)])
    except ValueError as e:
        raise DataFileError(f"{purpose} {path}: feature columns must be numbers: {e}") from e
    return UserData(path, feeds={inputs[0].name: _fit(matrix, inputs[0], path, purpose)}, labels=_labels(labels))


def _labels(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    try:
        return values.astype(np.int64)
    except ValueError:
        return values  # class names: compared as strings


def _lines(path: Path, purpose: str) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DataFileError(f"{purpose} {path}: not UTF-8 text: {e}") from e


def _fit(array: np.ndarray, spec: TensorSpec, path: Path, purpose: str) -> np.ndarray:
    """``array`` as ``spec``'s dtype and shape: CSV rows reshaped to the input's dims, lossless casts only."""
    want = V2_TO_NUMPY[spec.datatype]
    fixed = spec.shape[1:]
    if array.ndim == 2 and len(fixed) != 1 and -1 not in fixed and array.shape[1] == int(np.prod(fixed or [1])):
        array = array.reshape(len(array), *fixed)  # flat feature rows (CSV) for an image-shaped input
    got = [-1, *array.shape[1:]]
    if array.ndim != len(spec.shape) or any(w not in (-1, g) for w, g in zip(spec.shape[1:], got[1:], strict=True)):
        raise DataFileError(
            f"{purpose} {path}: input '{spec.name}' expects shape {spec.shape} {spec.datatype}, "
            f"the file gives {[len(array), *array.shape[1:]]} {array.dtype}"
        )
    if array.dtype == want:
        return np.ascontiguousarray(array)
    same_kind = (
        (want.kind == "f" and array.dtype.kind in "fiu")
        or (want.kind in "iu" and array.dtype.kind in "iu")
        or (want.kind in "iu" and array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0))
    )
    if not same_kind:
        raise DataFileError(
            f"{purpose} {path}: input '{spec.name}' expects {spec.datatype}, the file gives {array.dtype} values"
        )
    return np.ascontiguousarray(array.astype(want))
