"""Sentence encoder → ONNX with dynamic batch and sequence axes, checked against PyTorch.

The ``onnx`` pass runs this on an :class:`~modelpress.export.passes.base.EncoderHandle`.

The TorchScript exporter is the default: on BERT with eager attention it yields the MatMul/Softmax pattern
ONNX Runtime's transformer optimizer fuses completely (Attention, SkipLayerNormalization, BiasGelu,
EmbedLayerNormalization); the dynamo exporter's graph is correct too but its attention is not fused (measured
here with transformers 5 / torch 2.13). Either way the graph is checked with ``onnx.checker``, loaded in
ONNX Runtime and compared with PyTorch on several batch and sequence sizes before it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from modelpress.export.errors import VerificationError
from modelpress.export.onnx_files import save_model, strip_node_metadata
from modelpress.export.quiet import quiet_exporters
from modelpress.training.text.encoder import GRAPH_INPUTS, GRAPH_OUTPUT

if TYPE_CHECKING:
    from torch import nn

Exporter = Literal["torchscript", "dynamo"]
# Exported under a name no exporter uses internally, then renamed: the dynamo exporter names the embedding
# lookup's own output "embedding", and a graph output of that name would break SSA form.
EXPORT_OUTPUT = "sentence_embedding_output"
# (batch, sequence) pairs the parity check runs; the middle one has padding in its first row.
PARITY_SHAPES = ((1, 5), (3, 17), (8, 64))


def example_tokens(batch: int, seq: int, vocab: int, *, seed: int = 0, pad_first: bool = True):
    """Random token ids (never special ids 0..999 when the vocabulary allows) and a right-padded mask."""
    rng = np.random.default_rng(seed)
    low = 1000 if vocab > 2000 else 1
    ids = rng.integers(low, vocab, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    if pad_first and seq > 2:
        mask[0, seq // 2 :] = 0
        ids[0, seq // 2 :] = 0
    return ids, mask


def export_encoder(
    encoder: nn.Module,
    out_dir: Path,
    *,
    opset: int = 17,
    exporter: Exporter = "torchscript",
    tolerance: float = 1e-4,
    external: str = "auto",
) -> tuple[Path, dict[str, object]]:
    """Export ``encoder`` (a :class:`modelpress.training.text.encoder.SentenceEncoder`) to ``out_dir/model.onnx``.

    Returns:
        The model path and details (exporter, opset, the largest difference to PyTorch).

    Raises:
        VerificationError: the export failed, the checker or ONNX Runtime refused the graph, or its outputs
            differ from PyTorch's by more than ``tolerance``.
    """
    import onnx
    import torch

    encoder = encoder.eval().cpu()
    vocab = int(encoder.transformer.config.vocab_size)
    ids, mask = example_tokens(2, 8, vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / ".raw.onnx"
    try:
        with quiet_exporters("transformers"), torch.no_grad():
            _export(encoder, (torch.from_numpy(ids), torch.from_numpy(mask)), raw, opset, exporter)
        proto = _rename_output(strip_node_metadata(onnx.load(str(raw))), EXPORT_OUTPUT, GRAPH_OUTPUT)
    except Exception as e:  # the exporters raise many kinds; each means "this model did not export"
        raise VerificationError(
            f"{exporter} ONNX export of the sentence encoder failed: {type(e).__name__}: {e}"
        ) from e
    finally:
        for leftover in out_dir.glob(".raw.onnx*"):
            leftover.unlink()
    path = save_model(proto, out_dir, external=external)
    max_diff = check_against_torch(path, encoder, tolerance=tolerance)
    return path, {"exporter": exporter, "opset": opset, "max_abs_diff_vs_torch": max_diff}


def _export(encoder: nn.Module, example: tuple, path: Path, opset: int, exporter: Exporter) -> None:
    import torch

    if exporter == "dynamo":
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        torch.onnx.export(
            encoder, example, str(path), dynamo=True, input_names=list(GRAPH_INPUTS), output_names=[EXPORT_OUTPUT],
            dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}), opset_version=max(opset, 18),
        )  # fmt: skip
        return
    axes = {name: {0: "batch", 1: "sequence"} for name in GRAPH_INPUTS}
    torch.onnx.export(
        encoder, example, str(path), dynamo=False, input_names=list(GRAPH_INPUTS), output_names=[EXPORT_OUTPUT],
        dynamic_axes={**axes, EXPORT_OUTPUT: {0: "batch"}}, opset_version=min(opset, 20),
    )  # fmt: skip


def _rename_output(model, old: str, new: str):
    """Rename graph output ``old`` to ``new``, first moving any internal tensor already called ``new`` aside."""
    taken = new + "_internal"

    def swap(names, mapping):
        for i, name in enumerate(names):
            if name in mapping:
                names[i] = mapping[name]

    for mapping in ({new: taken}, {old: new}):
        for node in model.graph.node:
            swap(node.input, mapping)
            swap(node.output, mapping)
        for value in [*model.graph.output, *model.graph.value_info]:
            value.name = mapping.get(value.name, value.name)
        for init in model.graph.initializer:
            init.name = mapping.get(init.name, init.name)
    return model


def check_against_torch(model_path: Path, encoder: nn.Module, *, tolerance: float = 1e-4) -> float:
    """Run the ONNX model and ``encoder`` on :data:`PARITY_SHAPES`; return the largest absolute difference.

    Raises:
        VerificationError: the checker or ONNX Runtime refuses the model, or a difference exceeds ``tolerance``.
    """
    import onnx
    import torch

    from modelpress.export.ort_session import cpu_session

    try:
        onnx.checker.check_model(str(model_path), full_check=True)
        session = cpu_session(model_path, threads=1)
    except Exception as e:  # checker and ORT raise their own types
        raise VerificationError(f"{model_path}: invalid ONNX model: {e}") from e
    vocab = int(encoder.transformer.config.vocab_size)
    worst = 0.0
    for i, (batch, seq) in enumerate(PARITY_SHAPES):
        ids, mask = example_tokens(batch, seq, vocab, seed=i)
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        with torch.no_grad():
            want = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        if got.shape != want.shape:
            raise VerificationError(f"{model_path}: output shape {list(got.shape)}, PyTorch gives {list(want.shape)}")
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > tolerance:
        raise VerificationError(f"{model_path}: outputs differ from PyTorch by {worst:.2e} (tolerance {tolerance:.0e})")
    return worst
