"""Structured pruning: remove whole channels and neurons so the graph itself gets smaller and faster.

Dependency-aware through torch-pruning's DepGraph: removing an output channel of a conv also removes the
matching batch-norm entries and the input channels of every layer that consumes it (and, across a flatten,
the matching block of the next Linear's inputs), so coupled layers shrink together and the module stays
valid. The classifier head keeps its outputs. Attention projections are not channel-pruned (their reshape
into heads would not survive an arbitrary width); with ``heads``, whole attention heads are removed instead
(:mod:`modelpress.export.compress.heads`), and the feed-forward neurons of a transformer are channel-pruned.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from modelpress.export.compress.config import StructuredConfig

FineTune = Callable[[nn.Module, int], Any]


def output_layer(model: nn.Module) -> nn.Module:
    """The last Linear (or Conv) in registration order: the head, whose outputs are the classes."""
    last = None
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            last = module
    if last is None:
        raise ValueError(f"{type(model).__name__} has no Linear or Conv layer to prune")
    return last


def _ignored_layers(model: nn.Module) -> list[nn.Module]:
    ignored = [output_layer(model)]
    for module in model.modules():
        # Attention blocks reshape their projections into heads; an RNN's hidden size is baked into its gates.
        if type(module).__name__ in ("SelfAttention", "MultiheadAttention") or isinstance(module, nn.RNNBase):
            ignored.append(module)
        # Embeddings feed a residual stream whose width every attention block depends on.
        if hasattr(module, "embed") and isinstance(module.embed, nn.Linear):
            ignored.append(module.embed)
    return ignored


def _importance(kind: str) -> Any:
    import torch_pruning as tp

    if kind == "bn":
        return tp.importance.BNScaleImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if kind == "l1" else 2)


def _pruner(model: nn.Module, example: torch.Tensor, cfg: StructuredConfig) -> Any:
    import torch_pruning as tp

    importance = cfg.importance
    if importance == "bn" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        importance = "l2"
    with warnings.catch_warnings():
        # Free parameters (a transformer's positional table) sit on the residual width, which stays whole.
        warnings.filterwarnings("ignore", message=".*Unwrapped parameters.*")
        warnings.filterwarnings("ignore", message=".*unwrapped_parameters.*")
        return _meta_pruner(tp, model, example, importance, cfg)


def _meta_pruner(tp: Any, model: nn.Module, example: torch.Tensor, importance: str, cfg: StructuredConfig) -> Any:
    return tp.pruner.MetaPruner(
        model,
        example,
        importance=_importance(importance),
        pruning_ratio=cfg.ratio,
        iterative_steps=cfg.iterative_steps,
        global_pruning=cfg.global_ranking,
        max_pruning_ratio=cfg.max_layer_ratio,
        ignored_layers=_ignored_layers(model),
        round_to=cfg.round_to,
    )


def layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """``[out, in]`` of every Linear/Conv, for reports and tests: structured pruning changes these."""
    return {
        name: [int(m.weight.shape[0]), int(m.weight.shape[1])]
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    }


def prune_structured(
    model: nn.Module,
    example_input: torch.Tensor,
    cfg: StructuredConfig,
    finetune: FineTune | None = None,
    *,
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Remove channels/neurons from ``model`` in place, in ``cfg.iterative_steps`` steps with fine-tuning.

    Args:
        model: the module to shrink; its layers are replaced by narrower ones.
        example_input: one batch of valid input (traced to build the dependency graph).
        cfg: ratio, importance and schedule.
        finetune: ``finetune(model, step)`` trains the pruned model in place; ``None`` skips it.
        progress: show a progress bar over the steps.

    Returns:
        The narrower model (same object) and one record per step (parameters left, fine-tune result).
    """
    from modelpress.export.compress.heads import head_counts, prune_heads

    if cfg.ratio == 0 and cfg.heads == 0:
        raise ValueError("nothing to prune: set ratio (channels) or heads above 0")
    model.eval()
    before = sum(p.numel() for p in model.parameters())
    original_heads = head_counts(model)
    if cfg.heads and not original_heads:
        raise ValueError(f"heads: {type(model).__name__} has no attention block whose heads can be removed")
    pruner = _pruner(model, example_input, cfg) if cfg.ratio > 0 else None
    records: list[dict[str, Any]] = []
    steps = range(cfg.iterative_steps)
    for i in tqdm(steps, desc="prune structures", unit="step", disable=not progress, leave=False):
        model.eval()
        if pruner is not None:
            pruner.step()
        record: dict[str, Any] = {"step": i + 1}
        if cfg.heads:
            fraction = cfg.heads * (i + 1) / cfg.iterative_steps
            record["heads"] = prune_heads(model, fraction, original_heads, p=1 if cfg.importance == "l1" else 2)
        record["parameters"] = sum(p.numel() for p in model.parameters())
        if finetune is not None and cfg.finetune_epochs > 0:
            record["finetune"] = finetune(model, i)
        records.append(record)
    if sum(p.numel() for p in model.parameters()) == before:
        raise ValueError(
            f"structured pruning found nothing to remove in {type(model).__name__}: its only prunable widths "
            "are the output layer, recurrent cells or attention projections (use distillation instead)"
        )
    model.eval()
    with torch.no_grad():
        out = model(example_input)
    if not torch.isfinite(out).all():
        raise RuntimeError("structured pruning left a model whose outputs are not finite")
    return model, records
