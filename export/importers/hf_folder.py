"""A Hugging Face model folder on disk (``save_pretrained``): an encoder or a sequence classifier.

An encoder becomes a sentence encoder (mean pooling over the attention mask, L2-normalised: what
sentence-transformers serves); a ``*ForSequenceClassification`` model keeps its logits and its ``id2label``.
The fast tokenizer (``tokenizer.json``) travels into every version folder, so the server takes text. Nothing is
fetched from a hub: the folder must hold everything.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from modelpress.export.importers.base import (
    ImportSourceError,
    SourceModel,
    TextSupport,
    brief,
    onnx_facts,
    sha256_of,
    torch_runner,
)
from modelpress.export.onnx_files import save_model, strip_node_metadata
from modelpress.export.quiet import quiet_exporters

GRAPH_INPUTS = ["input_ids", "attention_mask"]
OPSET = 17


def load_hf_folder(folder: Path, work: Path) -> SourceModel:
    """Load the model in ``folder``, export it to ONNX in ``work``, keep the PyTorch module as the reference.

    Raises:
        ImportSourceError: not a Hugging Face model folder (no config.json, no tokenizer.json, no weights),
            an architecture transformers cannot build, or a failed export.
    """
    from modelpress.training.text.source import TextModelError, resolve_source

    try:
        source = resolve_source(folder)
    except TextModelError as e:
        raise ImportSourceError(f"{folder}: not a Hugging Face model folder modelpress can import: {e}") from e
    model, task, output = _load(source.folder)
    module = _wrap(model, task)
    onnx_path = _export(module.eval(), output, work, folder)
    labels = _labels(model.config) if task == "classification" else None
    limit = int(getattr(model.config, "max_position_embeddings", source.max_length) or source.max_length)
    import transformers

    record = {"kind": "huggingface", "file": folder.name, "sha256": sha256_of(source.folder),
              "architecture": type(model).__name__, "transformers": transformers.__version__,
              **onnx_facts(onnx_path)}  # fmt: skip
    return SourceModel(
        kind="huggingface", path=folder, onnx_path=onnx_path, run_source=torch_runner(module, GRAPH_INPUTS),
        record=record, task=task, labels=labels, module=module,
        text=TextSupport(source.tokenizer_file, min(source.max_length, limit)),
    )  # fmt: skip


def _load(folder: Path) -> tuple[Any, str, str]:
    """The model, its task and its output name: a sequence classifier when the config says so, else an encoder."""
    from modelpress.training.text.source import offline

    offline()
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        classifier = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
        auto = AutoModelForSequenceClassification if classifier else AutoModel
        model = auto.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True)
    except (OSError, ValueError, KeyError) as e:  # missing weights, unknown model_type, bad config
        raise ImportSourceError(f"{folder}: transformers cannot load the model: {brief(e)}") from e
    return model.eval(), ("classification" if classifier else "embedding"), ("logits" if classifier else "embedding")


def eager_module(folder: Path) -> Any:
    """The PyTorch module an import of ``folder`` exports: ``(input_ids, attention_mask) -> logits | embedding``."""
    model, task, _ = _load(folder)
    return _wrap(model, task).eval()


def _wrap(model: Any, task: str) -> Any:
    if task == "classification":
        return _Logits(model)
    from modelpress.training.text.encoder import SentenceEncoder

    return SentenceEncoder(model)


def _labels(config: Any) -> list[str] | None:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[i]) for i in sorted(id2label)] if id2label else None


def _Logits(model: Any) -> Any:  # noqa: N802 - a factory standing in for a class defined after torch is imported
    from torch import nn

    class Logits(nn.Module):
        """``(input_ids, attention_mask) -> logits`` of a sequence classifier."""

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits(model)


def _export(module: Any, output: str, work: Path, folder: Path) -> Path:
    """TorchScript exporter: on BERT with eager attention its graph is the one ORT's fusions recognise."""
    import onnx
    import torch

    vocab = int((getattr(module, "inner", None) or module.transformer).config.vocab_size)
    ids = torch.randint(1, vocab, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    axes = {name: {0: "batch", 1: "sequence"} for name in GRAPH_INPUTS}
    with tempfile.TemporaryDirectory(dir=work, prefix=".hf-export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        try:
            with quiet_exporters("transformers"), torch.no_grad():
                torch.onnx.export(module, (ids, mask), str(raw), dynamo=False, input_names=GRAPH_INPUTS,
                                  output_names=[output], dynamic_axes={**axes, output: {0: "batch"}},
                                  opset_version=OPSET)  # fmt: skip
            proto = strip_node_metadata(onnx.load(str(raw)))
        except Exception as e:  # the exporter raises many kinds; each means "this model did not export"
            raise ImportSourceError(f"{folder}: the ONNX export failed: {type(e).__name__}: {brief(e)}") from e
    return save_model(proto, work / "source")
