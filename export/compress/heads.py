"""Attention-head pruning: remove whole heads of the registry's transformer so its attention really shrinks.

A head of ``modelpress.training.models.transformer.SelfAttention`` owns ``head_dim`` rows of each of the q, k and v
blocks of ``qkv`` and the same ``head_dim`` input columns of ``proj``. Removing a head removes those rows and
columns and lowers ``nhead``; the residual width (``d_model``) stays, so nothing outside the block changes.
A head's importance is the norm of all its weights (the ``l1``/``l2`` group magnitude the channel pruner uses).
"""

from __future__ import annotations

import torch
from torch import nn


def attention_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """Every multi-head block whose heads this module can remove, by module name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear) and isinstance(getattr(m, "proj", None), nn.Linear)
        and hasattr(m, "nhead") and hasattr(m, "head_dim")
    }  # fmt: skip


def head_importance(block: nn.Module, p: int = 2) -> torch.Tensor:
    """One score per head: the ``p``-norm of its q, k, v rows (weights and biases) and its ``proj`` columns."""
    nhead, dim = block.nhead, block.head_dim
    qkv = block.qkv.weight.detach().reshape(3, nhead, dim, -1)
    score = qkv.abs().pow(p).sum(dim=(0, 2, 3))
    if block.qkv.bias is not None:
        score = score + block.qkv.bias.detach().reshape(3, nhead, dim).abs().pow(p).sum(dim=(0, 2))
    proj = block.proj.weight.detach().reshape(block.proj.out_features, nhead, dim)
    score = score + proj.abs().pow(p).sum(dim=(0, 2))
    return score.pow(1.0 / p)


def _narrow(layer: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> None:
    """Keep only ``rows`` (outputs) and ``cols`` (inputs) of ``layer``, in place (the module object stays)."""
    weight = layer.weight.detach()
    if rows is not None:
        weight = weight[rows]
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.detach()[rows].clone())
        layer.out_features = len(rows)
    if cols is not None:
        weight = weight[:, cols]
        layer.in_features = len(cols)
    layer.weight = nn.Parameter(weight.clone())


@torch.no_grad()
def remove_heads(block: nn.Module, drop: list[int]) -> None:
    """Remove the heads ``drop`` from ``block`` in place: fewer ``qkv`` rows, fewer ``proj`` columns.

    The layers stay the same objects (a dependency graph built on the model still points at them).
    """
    nhead, dim = block.nhead, block.head_dim
    keep = [h for h in range(nhead) if h not in set(drop)]
    if not keep:
        raise ValueError(f"cannot remove all {nhead} heads of an attention block")
    rows = torch.tensor([(part * nhead + h) * dim + i for part in range(3) for h in keep for i in range(dim)])
    cols = torch.tensor([h * dim + i for h in keep for i in range(dim)])
    _narrow(block.qkv, rows=rows)
    _narrow(block.proj, cols=cols)
    block.nhead = len(keep)


def head_counts(model: nn.Module) -> dict[str, int]:
    """Heads of every attention block, by module name."""
    return {name: int(block.nhead) for name, block in attention_blocks(model).items()}


def prune_heads(model: nn.Module, fraction: float, original: dict[str, int], p: int = 2) -> dict[str, int]:
    """Bring every attention block to ``round((1 - fraction) * original heads)`` heads (at least one).

    The least important heads go first. ``fraction`` counts against ``original`` (:func:`head_counts` before
    the first step), so iterative steps (0.25, then 0.5) reach the final count.

    Returns:
        Heads left per block name.
    """
    left = {}
    for name, block in attention_blocks(model).items():
        target = max(1, round((1.0 - fraction) * original.get(name, block.nhead)))
        if block.nhead > target:
            order = torch.argsort(head_importance(block, p))
            remove_heads(block, order[: block.nhead - target].tolist())
        left[name] = block.nhead
    return left
