"""The PyTorch eager baseline of an imported family, for ``compare``: the program or folder it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpress.export.importers.base import ImportSourceError
from modelpress.serving.manifest import ModelManifest

TORCH_KINDS = ("torch.export", "torchscript", "huggingface")


def is_imported(manifest: ModelManifest) -> bool:
    return bool(manifest.source.get("imported")) and manifest.source.get("kind") is not None


def load_imported_module(manifest: ModelManifest) -> Any:
    """The eager module an imported model was converted from, in eval mode.

    Raises:
        ImportSourceError: the source was an ONNX file (no PyTorch), or it is gone or unreadable now.
    """
    kind, path = manifest.source.get("kind"), Path(str(manifest.source.get("imported")))
    if kind not in TORCH_KINDS:
        raise ImportSourceError(f"imported from an {kind} file: no PyTorch source (the fp32 import is the baseline)")
    if not path.exists():
        raise ImportSourceError(f"imported from {path}, which is no longer there")
    if kind == "torch.export":
        import torch

        return UnliftedProgram(torch.export.load(str(path)).module())
    if kind == "torchscript":
        import torch

        return torch.jit.load(str(path), map_location="cpu").eval()
    from modelpress.export.importers.hf_folder import eager_module

    return eager_module(path)


class UnliftedProgram:
    """An ExportedProgram's module as a baseline: callable, with parameters, and ``eval()`` a no-op.

    The module ``ExportedProgram.module()`` returns refuses ``eval()``/``train()``; it is in inference form already.
    """

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, *args: Any) -> Any:
        return self.module(*args)

    def eval(self) -> UnliftedProgram:
        return self

    def parameters(self) -> Any:
        return self.module.parameters()
