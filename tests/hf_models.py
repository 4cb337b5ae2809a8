"""Tiny Hugging Face model folders saved locally (random weights; nothing is downloaded), for tests."""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "the",
    "a",
    "model",
    "is",
    "small",
    "fast",
    "good",
    "bad",
    "cat",
    "dog",
    "runs",
    "sleeps",
    "quickly",
    "very",
    "not",
    "and",
    "server",
    "text",
]


def tiny_tokenizer(folder: Path) -> None:
    """A WordPiece tokenizer over a few words, saved as tokenizer.json (what the server loads)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=32)  # fmt: skip
    fast.save_pretrained(str(folder))


def tiny_bert_folder(folder: Path, *, classifier: bool = False, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32) encoder, or sequence classifier with labels neg/pos, saved to ``folder``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64,
                        id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})  # fmt: skip
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(str(folder))
    tiny_tokenizer(folder)
    return folder
