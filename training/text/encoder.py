"""The exportable sentence encoder: transformer + attention-mask-aware mean pooling + L2 normalisation.

One module, so the ONNX graph takes token ids and a mask and returns the same unit vectors as
sentence-transformers' ``encode(..., normalize_embeddings=True)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GRAPH_INPUTS = ("input_ids", "attention_mask")
GRAPH_OUTPUT = "embedding"


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors a mask keeps (padding contributes nothing, as in sentence-transformers)."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    summed = (token_embeddings * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


class SentenceEncoder(nn.Module):
    """``(input_ids, attention_mask) -> [batch, hidden]`` L2-normalised sentence embeddings.

    Args:
        transformer: a Hugging Face encoder (e.g. ``BertModel``) returning ``last_hidden_state``.
        normalize: L2-normalise the pooled vector (sentence-transformers' Normalize module).
    """

    def __init__(self, transformer: nn.Module, *, normalize: bool = True):
        super().__init__()
        self.transformer = transformer
        self.normalize = normalize

    @property
    def hidden_size(self) -> int:
        return int(self.transformer.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.transformer.config.num_hidden_layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # token_type_ids are all zero for single sentences; BERT fills them in itself when omitted.
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return F.normalize(pooled, p=2.0, dim=1) if self.normalize else pooled
