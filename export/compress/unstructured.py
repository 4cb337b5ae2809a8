"""Unstructured pruning: global magnitude pruning to a target sparsity, iterative, with fine-tuning between steps.

The weights of every Linear and Conv layer compete in one global ranking by absolute value (layers that
matter less lose more). Pruning is iterative (e.g. 50 → 75 → 90 %): each step zeroes more weights and the
model is fine-tuned with the masks in place, so pruned weights stay zero while the others adapt. At the end
the masks are made permanent (no ``weight_orig``/``weight_mask`` is left), ready for export.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune
from tqdm.auto import tqdm

from modelpress.export.compress.config import UnstructuredConfig

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# (model, step_index) -> None: fine-tunes the model in place with its masks applied.
FineTune = Callable[[nn.Module, int], Any]


def prunable_parameters(model: nn.Module, *, include_bias: bool = False) -> list[tuple[nn.Module, str]]:
    """``(module, name)`` of every Linear/Conv weight (and bias with ``include_bias``)."""
    targets: list[tuple[nn.Module, str]] = []
    for module in model.modules():
        if isinstance(module, PRUNABLE):
            targets.append((module, "weight"))
            if include_bias and module.bias is not None:
                targets.append((module, "bias"))
    if not targets:
        raise ValueError(f"{type(model).__name__} has no Linear or Conv layer to prune")
    return targets


def effective(module: nn.Module, name: str) -> torch.Tensor:
    """The tensor the forward pass uses: ``<name>_orig * <name>_mask`` while a mask is attached.

    Computed here rather than read from ``module.<name>``, which the pruning hook only refreshes on the next
    forward call (stale after ``load_state_dict``, e.g. when a trainer restores its best epoch).
    """
    if hasattr(module, f"{name}_mask"):
        return (getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")).detach()
    return getattr(module, name).detach()


def global_magnitude_prune(model: nn.Module, sparsity: float, *, include_bias: bool = False) -> nn.Module:
    """Zero the smallest-magnitude weights across all prunable layers until ``sparsity`` of them are zero.

    Masks are attached with :mod:`torch.nn.utils.prune` (the forward pass sees ``weight_orig * weight_mask``),
    so fine-tuning cannot revive a pruned weight. Already pruned weights are zero and rank lowest, so calling
    this again with a higher sparsity extends the earlier masks.
    """
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must lie strictly between 0 and 1, got {sparsity}")
    targets = prunable_parameters(model, include_bias=include_bias)
    current = [effective(module, name) for module, name in targets]
    scores = torch.cat([t.abs().flatten() for t in current])
    keep = scores.numel() - round(sparsity * scores.numel())
    # The threshold is the keep-th largest magnitude; ties are broken by position so the count is exact.
    order = torch.argsort(scores, descending=True, stable=True)
    flat_mask = torch.zeros_like(scores)
    flat_mask[order[:keep]] = 1.0
    offset = 0
    for (module, name), tensor in zip(targets, current, strict=True):
        mask = flat_mask[offset : offset + tensor.numel()].reshape(tensor.shape)
        offset += tensor.numel()
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            # Replace, not stack: the new global mask already contains the old zeros.
            prune.remove(module, name)
        prune.custom_from_mask(module, name, mask)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into its weight and drop the hooks, leaving plain parameters."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return model


def sparsity_of(model: nn.Module, *, include_bias: bool = False) -> float:
    """Fraction of zero entries among the prunable weights, as the forward pass sees them."""
    targets = prunable_parameters(model, include_bias=include_bias)
    tensors = [effective(m, n) for m, n in targets]
    total = sum(t.numel() for t in tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return zeros / total


def prune_unstructured(
    model: nn.Module,
    cfg: UnstructuredConfig,
    finetune: FineTune | None = None,
    *,
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Prune ``model`` in place step by step to ``cfg.sparsity``, fine-tuning after each step.

    Args:
        model: any module with Linear/Conv layers.
        cfg: target sparsity and schedule.
        finetune: ``finetune(model, step)`` trains the masked model in place; ``None`` skips fine-tuning.
        progress: show a progress bar over the steps.

    Returns:
        The model with permanent zeros, and one record per step (``sparsity`` reached, fine-tune result).
    """
    records: list[dict[str, Any]] = []
    steps = cfg.schedule()
    for i, target in enumerate(tqdm(steps, desc="prune", unit="step", disable=not progress, leave=False)):
        global_magnitude_prune(model, target, include_bias=cfg.include_bias)
        record: dict[str, Any] = {"step": i + 1, "target_sparsity": target}
        if finetune is not None and cfg.finetune_epochs > 0:
            record["finetune"] = finetune(model, i)
        record["sparsity"] = sparsity_of(model, include_bias=cfg.include_bias)
        records.append(record)
    make_permanent(model)
    return model, records
