"""The model handle an import starts from: the source's fp32 ONNX graph, how to run the source itself, lineage."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelpress.export.errors import ExportError

SourceKind = Literal["onnx", "huggingface", "torch.export", "torchscript"]
Task = Literal["classification", "embedding", "regression", "generic"]
# Graph inputs → the source's outputs in the graph's output order (verification of each variant against it).
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


class ImportSourceError(ExportError):
    """The model to import is missing, unreadable, or of a kind (or opset) modelpress cannot take."""


@dataclass(frozen=True)
class InputSignature:
    """Shapes of a PyTorch program's inputs without the batch dimension (``--input-shape 3,32,32``)."""

    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def parse(cls, text: str) -> InputSignature:
        """``3,32,32`` for one input, ``3,32,32;10`` for two (batch dimension left out, it is dynamic).

        Raises:
            ImportSourceError: a dimension that is not a positive integer.
        """
        shapes = []
        for part in text.split(";"):
            try:
                dims = tuple(int(d) for d in part.replace("x", ",").split(",") if d.strip())
            except ValueError:
                dims = ()
            if not dims or any(d <= 0 for d in dims):
                raise ImportSourceError(
                    f"--input-shape {text!r}: expected positive dims without the batch, such as 3,32,32 "
                    "(';' between inputs)"
                )
            shapes.append(dims)
        return cls(tuple(shapes))


@dataclass
class TextSupport:
    """What a text model carries into its version folder so the server takes text: the tokenizer."""

    tokenizer_file: Path
    max_length: int


@dataclass
class SourceModel:
    """A model a user brought, read and converted: the start of the same pass chain trained models go through.

    Attributes:
        kind: what it was.
        path: the file or folder the user gave.
        onnx_path: the source as an fp32 ONNX graph (a copy of it for an ONNX source) in the work folder.
        run_source: runs the source itself (ONNX Runtime on the original file, or PyTorch eager).
        record: the lineage entry of the import (kind, file, sha256, producer, opset).
        task: what the source says it is (a sequence classifier, an encoder), or None.
        labels: class names the source carries (a Hugging Face ``id2label``), or None.
        text: the tokenizer of a text model (its served input is text), or None.
        module: the PyTorch module of a PyTorch or Hugging Face source (compare's eager baseline), or None.
    """

    kind: SourceKind
    path: Path
    onnx_path: Path
    run_source: Runner
    record: dict[str, Any]
    task: Task | None = None
    labels: list[str] | None = None
    text: TextSupport | None = None
    module: Any = None
    notes: list[str] = field(default_factory=list)


def brief(error: BaseException, limit: int = 400) -> str:
    """One line of a foreign library's error: CLI errors are one line, and TorchScript's carry a whole stack.

    The last line when it names an exception (TorchScript puts the cause there), else the first.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    last = lines[-1]
    line = last if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", last) else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def onnx_facts(model_path: Path) -> dict[str, Any]:
    """Producer and default-domain opset of an ONNX file (for the lineage)."""
    import onnx

    proto = onnx.load(str(model_path), load_external_data=False)
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p) or None
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"producer": producer, "opset": opset, "ir_version": proto.ir_version}


def torch_runner(module: Any, input_names: list[str]) -> Runner:
    """Run a PyTorch module on graph feeds, passed positionally in the graph's input order."""

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in input_names]
        with torch.inference_mode():
            out = module(*args)
        return [o.detach().numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]

    return run
