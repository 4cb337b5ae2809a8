"""Which extra installs a third-party module, so a verb run without it says what to install instead of a traceback.

The base install is the server minus its ONNX Runtime (pyproject.toml); training, export and the benchmarks need
extras. Verbs import their stage lazily, so a missing extra shows up as a ``ModuleNotFoundError`` at run time.
"""

from __future__ import annotations

# Top-level import name -> the extra that brings it. ONNX Runtime comes in two flavours installing one module.
EXTRA_OF_MODULE: dict[str, str] = {
    "onnxruntime": "serve",
    "torch": "train",
    "safetensors": "train",
    "sklearn": "train",
    "optuna": "train",
    "yaml": "train",
    "tqdm": "train",
    "onnx": "export",
    "onnxscript": "export",
    "torch_pruning": "export",
    "matplotlib": "export",
    "transformers": "hf",
    "sentence_transformers": "hf",
    "httpx": "bench",
}


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """The one-line hint for a module an extra provides, or None when the missing module is not one of ours."""
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    hint = f"pip install 'modelpress[{extra}]'"
    if top == "onnxruntime":
        hint += " (CPU) or 'modelpress[gpu]' (CUDA), not both"
    return f"this command needs the Python module {top!r}, which is not installed: {hint}"
