"""A small pre-norm Transformer encoder over a sequence of feature vectors.

Attention is written out with matmul + softmax instead of ``nn.MultiheadAttention`` so that neither the
inference fast path nor fused kernels end up in the ONNX graph: every op here exports on opset 17+.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from modelpress.training.models.config import ArchConfig, check_reshape


class TransformerConfig(ArchConfig):
    seq_shape: list[int] = Field(default_factory=lambda: [8, 8], description="[tokens, features per token]")
    d_model: int = Field(64, ge=1)
    nhead: int = Field(4, ge=1)
    num_layers: int = Field(2, ge=1)
    dim_feedforward: int = Field(128, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pooling: Literal["mean", "cls"] = "mean"


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.nhead = nhead
        self.head_dim = d_model // nhead
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        tokens = x.shape[1]
        q, k, v = self.qkv(x).reshape(-1, tokens, 3, self.nhead, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        attn = self.dropout(torch.softmax(scores, dim=-1))
        # nhead * head_dim, not d_model: head pruning (export/compress/heads.py) leaves fewer heads
        out = torch.matmul(attn, v).transpose(1, 2).reshape(-1, tokens, self.nhead * self.head_dim)
        return self.proj(out)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.nhead, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.dim_feedforward),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.dim_feedforward, cfg.d_model),
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        x = x + self.dropout(self.attn(self.norm1(x)))
        return x + self.dropout(self.ff(self.norm2(x)))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, input_shape: list[int], num_outputs: int):
        super().__init__()
        if len(cfg.seq_shape) != 2:
            raise ValueError(f"transformer seq_shape must be [tokens, features], got {cfg.seq_shape}")
        check_reshape("transformer", "seq_shape", cfg.seq_shape, input_shape)
        if cfg.d_model % cfg.nhead:
            raise ValueError(f"transformer d_model {cfg.d_model} is not divisible by nhead {cfg.nhead}")
        self.seq_shape = tuple(cfg.seq_shape)
        self.pooling = cfg.pooling
        tokens = cfg.seq_shape[0] + (1 if cfg.pooling == "cls" else 0)
        self.embed = nn.Linear(cfg.seq_shape[1], cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if cfg.pooling == "cls" else None
        self.pos = nn.Parameter(torch.randn(1, tokens, cfg.d_model) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, num_outputs)

    def forward(self, x):
        h = self.embed(x.reshape(-1, *self.seq_shape))
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
        h = h + self.pos
        for layer in self.layers:
            h = layer(h)
        h = self.norm(h)
        pooled = h[:, 0] if self.cls is not None else h.mean(dim=1)
        return self.head(pooled)
