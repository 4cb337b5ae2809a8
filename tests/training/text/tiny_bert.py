"""A tiny randomly initialised BERT saved as a Hugging Face folder with a real WordPiece tokenizer.json.

Used by the text tests of training/ and export/: 2 layers, hidden 32, 4 heads; fast to export and train.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
    "this",
    "be",
    "are",
    "from",
    "or",
    "at",
    "which",
    "can",
    "not",
    "python",
    "function",
    "class",
    "object",
    "value",
    "module",
    "name",
    "type",
    "error",
    "list",
    "string",
    "code",
    "returns",
    "called",
    "when",
    "if",
    "each",
    "new",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:'\"()-_")
HIDDEN = 32
SYNTHETIC_VOCAB = 8192
LAYERS = 2
HEADS = 4


def vocabulary() -> dict[str, int]:
    tokens = [*SPECIAL, *WORDS, *CHARS, *(f"##{c}" for c in CHARS)]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def save_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = vocabulary()
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tok.save(str(path))
    return path


def build_tiny_bert_folder(folder: Path, seed: int = 0) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` of a tiny BERT into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        # Rows past the tokenizer's words, as in a real BERT's 30k vocabulary: compare and bench feed synthetic
        # token ids from 2000-8000, which must exist in the embedding table.
        vocab_size=max(len(vocabulary()), SYNTHETIC_VOCAB),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(folder))
    save_tokenizer(folder / "tokenizer.json")
    return folder


def write_corpus(path: Path, sentences: int = 240, seed: int = 0) -> Path:
    """A deterministic English-like corpus: paragraphs of 4 sentences of 6-12 known words each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(sentences):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=int(rng.integers(6, 13)))]
        lines.append(" ".join(words).capitalize() + ".")
    paragraphs = [" ".join(lines[i : i + 4]) for i in range(0, len(lines), 4)]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path
