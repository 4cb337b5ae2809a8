"""A smaller sentence encoder distilled from the teacher's embeddings.

The student keeps a subset of the teacher's transformer layers (e.g. 0, 2, 4 of 6), initialised from them,
with the teacher's embeddings and pooling; it is trained to reproduce the teacher's normalised sentence
embeddings (cosine + MSE) on a corpus of sentences. Tokenisation is the caller's (a callable), so this module
needs only torch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from modelpress.common.errors import UserError
from modelpress.training.text.config import DistillConfig
from modelpress.training.text.encoder import SentenceEncoder, mean_pool

# texts -> (input_ids, attention_mask), int64 arrays [batch, seq]
Tokenize = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


class DistillError(UserError, ValueError):
    """The distillation settings do not fit the teacher (e.g. a layer index it does not have)."""


@dataclass
class DistillReport:
    layers: list[int]
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    losses: list[float] = field(default_factory=list)
    # (step, mean cosine to the teacher on the validation sentences), when ``eval_every`` is set
    validation: list[tuple[int, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "layers": self.layers,
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "first_loss": round(self.first_loss, 6),
            "last_loss": round(self.last_loss, 6),
        }
        if self.validation:
            out["validation_mean_cosine"] = round(self.validation[-1][1], 6)
            out["validation_curve"] = [[step, round(cos, 6)] for step, cos in self.validation]
        return out


def build_student(teacher: SentenceEncoder, layers: Sequence[int]) -> SentenceEncoder:
    """A deep copy of ``teacher`` that keeps only ``layers`` of its encoder stack, in that order."""
    count = teacher.num_layers
    bad = [i for i in layers if i >= count]
    if bad:
        raise DistillError(f"student layers {bad} do not exist: the teacher has layers 0..{count - 1}")
    student = copy.deepcopy(teacher)
    stack = student.transformer.encoder.layer
    student.transformer.encoder.layer = nn.ModuleList([stack[i] for i in layers])
    student.transformer.config.num_hidden_layers = len(layers)
    return student


def teacher_embeddings(teacher: SentenceEncoder, tokenize: Tokenize, sentences: Sequence[str], batch_size: int = 64):
    """The teacher's embeddings of ``sentences`` (computed once; the teacher never changes)."""
    teacher.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            ids, mask = tokenize(sentences[start : start + batch_size])
            out.append(teacher(torch.from_numpy(ids), torch.from_numpy(mask)))
    return torch.cat(out)


def augment_texts(texts: list[str], pool: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Keep half the texts; replace the others by a random word span of themselves or a pair of sentences.

    The student then sees far more distinct inputs than the corpus has sentences (its targets are the
    teacher's embeddings of exactly those inputs), which keeps it from memorising a small corpus.
    """
    out = []
    for text in texts:
        words = text.split()
        choice = rng.random()
        if choice < 0.5 or len(words) < 4:
            out.append(text)
        elif choice < 0.8:
            length = int(rng.integers(3, len(words)))
            begin = int(rng.integers(0, len(words) - length + 1))
            out.append(" ".join(words[begin : begin + length]))
        else:
            out.append(f"{text} {pool[int(rng.integers(0, len(pool)))]}")
    return out


class _Validation:
    """The student's mean cosine to the teacher's (fixed) embeddings of a few sentences, measured in eval mode."""

    def __init__(self, teacher: SentenceEncoder, tokenize: Tokenize, sentences: Sequence[str], batch_size: int):
        self.batches = [tokenize(sentences[i : i + batch_size]) for i in range(0, len(sentences), batch_size)]
        self.target = teacher_embeddings(teacher, tokenize, sentences, batch_size)

    def __call__(self, student: SentenceEncoder) -> float:
        training = student.training
        student.eval()
        with torch.inference_mode():
            out = torch.cat([student(torch.from_numpy(i), torch.from_numpy(m)) for i, m in self.batches])
        student.train(training)
        return float(F.cosine_similarity(out, self.target, dim=1).mean())


def epoch_batches(
    sentences: Sequence[str], tokenize: Tokenize, config: DistillConfig, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """One epoch of training batches: (sentence indices, token ids, mask), augmented when the config says so.

    With ``length_buckets`` > 1, that many batches are tokenised together, sorted by token length, cut into
    batches and yielded in random order, each trimmed to its own longest text. On the python-docs corpus only
    37 % of the tokens of a plain batch are real (one long text pads all 32 to 64 tokens).
    """
    order = rng.permutation(len(sentences))
    chunk = config.batch_size * config.length_buckets
    for start in range(0, len(order), chunk):
        index = order[start : start + chunk]
        texts = [sentences[i] for i in index]
        if config.augment:
            texts = augment_texts(texts, sentences, rng)
        ids, mask = tokenize(texts)
        if config.length_buckets == 1:
            yield index, torch.from_numpy(ids), torch.from_numpy(mask)
            continue
        lengths = mask.sum(axis=1)
        by_length = np.argsort(lengths, kind="stable")
        groups = [by_length[i : i + config.batch_size] for i in range(0, len(by_length), config.batch_size)]
        for g in rng.permutation(len(groups)):
            rows = groups[g]
            width = int(lengths[rows].max())
            yield index[rows], torch.from_numpy(ids[rows, :width]), torch.from_numpy(mask[rows, :width])


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, mse_weight: float) -> torch.Tensor:
    """``(1 - cosine)`` plus ``mse_weight`` × MSE scaled by the dimension (so both terms are O(1 - cos))."""
    cos = F.cosine_similarity(student, teacher, dim=1)
    mse = F.mse_loss(student, teacher, reduction="none").sum(dim=1) / 2
    return (1 - cos).mean() + mse_weight * mse.mean()


def _encode(
    encoder: SentenceEncoder, ids: torch.Tensor, mask: torch.Tensor, hidden: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The sentence embedding and, when ``hidden``, every layer's token states (embeddings first)."""
    out = encoder.transformer(input_ids=ids, attention_mask=mask, output_hidden_states=hidden)
    pooled = mean_pool(out.last_hidden_state, mask)
    embedding = F.normalize(pooled, p=2.0, dim=1) if encoder.normalize else pooled
    return embedding, (out.hidden_states or ())


def hidden_state_loss(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], layers: Sequence[int], mask: torch.Tensor
) -> torch.Tensor:
    """Mean over the kept layers of the token-state MSE to the teacher's same layer, padding excluded.

    Each term is divided by the teacher layer's mean square, so layers whose states differ in scale weigh
    alike. ``student[j + 1]`` is the output of the student's j-th layer, the teacher's ``layers[j]``-th.
    """
    keep = mask.unsqueeze(-1).to(student[0].dtype)
    tokens = keep.sum().clamp(min=1.0) * student[0].shape[-1]
    terms = []
    for j, layer in enumerate(layers):
        target = teacher[layer + 1]
        error = ((student[j + 1] - target) ** 2 * keep).sum() / tokens
        terms.append(error / ((target**2 * keep).sum() / tokens).clamp(min=1e-6))
    return torch.stack(terms).mean()


def distill(
    teacher: SentenceEncoder,
    sentences: Sequence[str],
    tokenize: Tokenize,
    config: DistillConfig | None = None,
    *,
    validation: Sequence[str] = (),
    start: SentenceEncoder | None = None,
    progress: bool = True,
) -> tuple[SentenceEncoder, DistillReport]:
    """Build a student from ``config.layers`` of ``teacher`` and train it to match the teacher's embeddings.

    Args:
        teacher: the encoder to imitate (never changed).
        sentences: the training texts.
        tokenize: texts -> padded token ids and mask.
        config: see :class:`DistillConfig`.
        validation: sentences outside ``sentences`` (and outside any held-out test set) on which the student is
            measured every ``config.eval_every`` steps and at the end; only recorded, nothing is chosen by it.
        start: the student to train further (e.g. one an earlier run distilled; it is changed in place), with
            one layer per entry of ``config.layers``; default: a copy of those layers of ``teacher``.
        progress: show a progress bar.

    Raises:
        DistillError: bad layer indices, no sentences to train on, or ``eval_every`` without validation sentences.
    """
    config = config or DistillConfig()
    if not sentences:
        raise DistillError("no training sentences for distillation")
    if config.eval_every is not None and not validation:
        raise DistillError("distill.eval_every needs validation sentences")
    torch.manual_seed(config.seed)
    if start is not None and start.num_layers != len(config.layers):
        raise DistillError(
            f"the student to start from has {start.num_layers} layers, layers names {len(config.layers)}"
        )
    student = build_student(teacher, config.layers) if start is None else start
    hidden = config.hidden_weight > 0
    # Fixed inputs let the teacher run once; augmented ones (or layer targets) need it on every batch.
    targets = None if config.augment or hidden else teacher_embeddings(teacher, tokenize, sentences)
    teacher.eval()
    steps_per_epoch = math.ceil(len(sentences) / config.batch_size)
    total = (
        steps_per_epoch * config.epochs
        if config.max_steps is None
        else min(config.max_steps, steps_per_epoch * config.epochs)
    )
    if config.freeze_embeddings:
        student.transformer.embeddings.requires_grad_(False)
    trainable = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(total * config.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    rng = np.random.default_rng(config.seed)
    validate = _Validation(teacher, tokenize, validation, 64) if config.eval_every is not None else None
    curve: list[tuple[int, float]] = []
    losses: list[float] = []
    started = time.perf_counter()
    student.train(config.dropout)
    with tqdm(total=total, desc="distill", unit="step", disable=not progress, leave=False) as bar:
        while len(losses) < total:
            for index, ids, mask in epoch_batches(sentences, tokenize, config, rng):
                if len(losses) >= total:
                    break
                if targets is None:
                    with torch.no_grad():  # not inference_mode: its tensors cannot enter the student's autograd
                        target, teacher_states = _encode(teacher, ids, mask, hidden)
                else:
                    target, teacher_states = targets[torch.from_numpy(index)], ()
                out, student_states = _encode(student, ids, mask, hidden)
                loss = distillation_loss(out, target, config.mse_weight)
                if hidden:
                    loss = loss + config.hidden_weight * hidden_state_loss(
                        student_states, teacher_states, config.layers, mask
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                if validate is not None and (len(losses) % config.eval_every == 0 or len(losses) == total):
                    curve.append((len(losses), validate(student)))
                postfix = {"loss": f"{losses[-1]:.4f}"} | ({"val_cos": f"{curve[-1][1]:.4f}"} if curve else {})
                bar.set_postfix(postfix)
    student.eval()
    report = DistillReport(
        layers=list(config.layers),
        steps=len(losses),
        seconds=time.perf_counter() - started,
        first_loss=losses[0],
        last_loss=float(np.mean(losses[-max(1, steps_per_epoch // 4) :])),
        losses=losses,
        validation=curve,
    )
    return student, report
