"""Recurrent network (GRU or LSTM) over a sequence, e.g. the 8 rows of a digit image."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from modelpress.training.models.config import ArchConfig, check_reshape


class RNNConfig(ArchConfig):
    seq_shape: list[int] = Field(default_factory=lambda: [8, 8], description="[steps, features per step]")
    cell: Literal["gru", "lstm"] = "gru"
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(1, ge=1)
    bidirectional: bool = False
    pooling: Literal["last", "mean"] = "mean"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class RNN(nn.Module):
    def __init__(self, cfg: RNNConfig, input_shape: list[int], num_outputs: int):
        super().__init__()
        if len(cfg.seq_shape) != 2:
            raise ValueError(f"rnn seq_shape must be [steps, features], got {cfg.seq_shape}")
        check_reshape("rnn", "seq_shape", cfg.seq_shape, input_shape)
        self.seq_shape = tuple(cfg.seq_shape)
        self.pooling = cfg.pooling
        cell = nn.GRU if cfg.cell == "gru" else nn.LSTM
        self.rnn = cell(
            input_size=cfg.seq_shape[1],
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x):
        x = x.reshape(-1, *self.seq_shape)
        out, _ = self.rnn(x)
        # mean over steps sees both directions of a bidirectional net equally; "last" is the classic read-out
        pooled = out.mean(dim=1) if self.pooling == "mean" else out[:, -1, :]
        return self.head(self.dropout(pooled))
