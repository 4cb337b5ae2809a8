"""Models users bring: an ONNX file, a Hugging Face folder or a PyTorch program, read into a :class:`SourceModel`.

Each source kind has its module; :func:`load_source` picks one from what the path is.
"""

from __future__ import annotations

from pathlib import Path

from modelpress.export.importers.base import ImportSourceError, InputSignature, SourceModel

TORCH_SUFFIXES = (".pt2", ".pt", ".pth")


def load_source(path: Path, work: Path, *, signature: InputSignature | None = None) -> SourceModel:
    """Read the model at ``path`` and write its fp32 ONNX form into ``work``.

    Args:
        path: an ``.onnx`` file (external data beside it), a Hugging Face model folder, or a PyTorch program
            (``.pt2`` from ``torch.export.save``, ``.pt`` TorchScript).
        work: a scratch folder for the converted model.
        signature: input shapes for a PyTorch program that does not carry them (TorchScript).

    Raises:
        ImportSourceError: the path is missing or not a model of a kind modelpress reads, naming the problem.
    """
    path = Path(path)
    if not path.exists():
        raise ImportSourceError(f"{path}: no such file or folder")
    if path.is_dir():
        from modelpress.export.importers.hf_folder import load_hf_folder

        return load_hf_folder(path, work)
    if path.suffix.lower() in TORCH_SUFFIXES:
        from modelpress.export.importers.torch_program import load_torch_program

        return load_torch_program(path, work, signature)
    from modelpress.export.importers.onnx_file import load_onnx_file

    return load_onnx_file(path, work)


__all__ = ["ImportSourceError", "InputSignature", "SourceModel", "load_source"]
