"""Multi-layer perceptron over the flattened features."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field
from torch import nn

from modelpress.training.models.config import ArchConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLPConfig(ArchConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 128], description="width of each hidden layer")
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    batch_norm: bool = False


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig, input_shape: list[int], num_outputs: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in cfg.hidden:
            layers.append(nn.Linear(width, h))
            if cfg.batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(ACTIVATIONS[cfg.activation]())
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x):
        return self.head(self.body(x))
