"""The architecture registry: one place that maps a recipe's ``architecture`` name to a module.

Every model takes a float32 tensor ``[batch, *input_shape]`` that is already preprocessed and returns
``[batch, num_outputs]`` (logits for classification, values for regression).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import nn

from modelpress.training.models.cnn import CNN, CNNConfig
from modelpress.training.models.config import ArchConfig, parse_config
from modelpress.training.models.mlp import MLP, MLPConfig
from modelpress.training.models.rnn import RNN, RNNConfig
from modelpress.training.models.transformer import Transformer, TransformerConfig

TASKS = ("classification", "regression")


class Architecture(NamedTuple):
    config: type[ArchConfig]
    module: type[nn.Module]


REGISTRY: dict[str, Architecture] = {
    "mlp": Architecture(MLPConfig, MLP),
    "cnn": Architecture(CNNConfig, CNN),
    "rnn": Architecture(RNNConfig, RNN),
    "transformer": Architecture(TransformerConfig, Transformer),
}
ARCHITECTURES: tuple[str, ...] = tuple(REGISTRY)


def resolve_config(architecture: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``config`` with every default filled in (what a checkpoint records), validating it."""
    return parse_config(_arch(architecture).config, architecture, config).model_dump()


def build_model(
    architecture: str,
    config: dict[str, Any] | None,
    *,
    input_shape: list[int],
    num_outputs: int,
    task: str,
) -> nn.Module:
    """Build an untrained module.

    Args:
        architecture: one of :data:`ARCHITECTURES`.
        config: the architecture's options (unknown keys are an error); ``None`` or ``{}`` for defaults.
        input_shape: per-sample shape of the preprocessed input, without the batch dimension.
        num_outputs: classes for classification, target values for regression.
        task: ``"classification"`` or ``"regression"``.

    Raises:
        ValueError: unknown architecture, task or config key; a config whose shape does not fit ``input_shape``.
    """
    arch = _arch(architecture)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be at least 1, got {num_outputs}")
    if not input_shape or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"input_shape must be a non-empty list of positive sizes, got {input_shape}")
    cfg = parse_config(arch.config, architecture, config)
    return arch.module(cfg, [int(d) for d in input_shape], int(num_outputs))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _arch(architecture: str) -> Architecture:
    if architecture not in REGISTRY:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
    return REGISTRY[architecture]


__all__ = ["ARCHITECTURES", "REGISTRY", "build_model", "count_parameters", "resolve_config"]
