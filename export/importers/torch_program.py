"""A PyTorch program: an ``ExportedProgram`` saved by ``torch.export.save`` (.pt2) or TorchScript (.pt).

A .pt2 carries its input signature (shapes, dtypes, which dims are dynamic); it is exported to ONNX as it is,
so a program exported with a static batch stays static (export it with a ``Dim`` on the batch for a batched
model). TorchScript carries no shapes: ``--input-shape`` gives them, and the batch dimension is made dynamic.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from modelpress.export.importers.base import (
    ImportSourceError,
    InputSignature,
    SourceModel,
    brief,
    onnx_facts,
    sha256_of,
    torch_runner,
)
from modelpress.export.onnx_files import save_model, strip_export_metadata
from modelpress.export.quiet import quiet_exporters

OPSET = 18


def load_torch_program(path: Path, work: Path, signature: InputSignature | None) -> SourceModel:
    """Load the program, export it to ONNX in ``work`` and keep the eager module as the reference.

    Raises:
        ImportSourceError: not a program torch can load, no input signature, or the ONNX export failed.
    """
    import torch

    if path.suffix.lower() == ".pt2":
        kind, module, names, export = "torch.export", *_exported_program(path)
    else:
        if signature is None:
            raise ImportSourceError(
                f"{path}: TorchScript carries no input shapes: pass --input-shape (without the batch), e.g. 3,32,32"
            )
        kind, module, names, export = "torchscript", *_torchscript(path, signature)
    with tempfile.TemporaryDirectory(dir=work, prefix=".torch-export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        try:
            with quiet_exporters(), torch.no_grad():
                export(raw)
            import onnx

            proto = strip_export_metadata(onnx.load(str(raw)))
        except Exception as e:  # the exporters raise many kinds; each means "this program did not export"
            raise ImportSourceError(f"{path}: the ONNX export failed: {type(e).__name__}: {brief(e)}") from e
    onnx_path = save_model(proto, work / "source")
    record = {"kind": kind, "file": path.name, "sha256": sha256_of(path), "torch": torch.__version__,
              **onnx_facts(onnx_path)}  # fmt: skip
    return SourceModel(kind=kind, path=path, onnx_path=onnx_path, run_source=torch_runner(module, names),
                       record=record, module=module)  # fmt: skip


def _exported_program(path: Path) -> tuple[Any, list[str], Any]:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as e:  # a zip that is not a program, a newer format, ...: torch raises many kinds
        raise ImportSourceError(
            f"{path}: not a program torch.export.load can read: {type(e).__name__}: {brief(e)}"
        ) from e
    names = list(program.graph_signature.user_inputs)
    example = getattr(program, "example_inputs", None)
    if not example or not example[0]:
        raise ImportSourceError(f"{path}: the program carries no example inputs (saved by torch < 2.6?)")
    args = tuple(example[0])

    def export(target: Path) -> None:
        import torch

        torch.onnx.export(program, args, str(target), dynamo=True, input_names=names, opset_version=OPSET)

    from modelpress.export.importers.baseline import UnliftedProgram

    return UnliftedProgram(program.module()), names, export


def _torchscript(path: Path, signature: InputSignature) -> tuple[Any, list[str], Any]:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:  # RuntimeError for files that are not TorchScript archives
        raise ImportSourceError(f"{path}: not a TorchScript program torch.jit.load can read: {brief(e)}") from e
    names = ["input"] if len(signature.shapes) == 1 else [f"input_{i}" for i in range(len(signature.shapes))]
    args = tuple(torch.randn(2, *shape) for shape in signature.shapes)
    try:
        with torch.no_grad():
            module(*args)
    except Exception as e:  # the program's own shape checks
        raise ImportSourceError(
            f"{path}: the program does not run on --input-shape {signature.shapes}: {brief(e)}"
        ) from e

    def export(target: Path) -> None:
        import torch

        axes = {name: {0: "batch"} for name in names}
        torch.onnx.export(module, args, str(target), dynamo=False, input_names=names, dynamic_axes=axes,
                          opset_version=OPSET)  # fmt: skip

    return module, names, export
