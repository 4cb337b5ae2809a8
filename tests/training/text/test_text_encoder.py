from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from modelpress.serving.text import TextTokenizer
from modelpress.training.text.corpus import CorpusError, load_corpus, split_sentences
from modelpress.training.text.distill import (
    DistillConfig,
    DistillError,
    build_student,
    distill,
    epoch_batches,
    hidden_state_loss,
)
from modelpress.training.text.encoder import SentenceEncoder, mean_pool
from modelpress.training.text.source import TextModelError, load_encoder, resolve_source


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path) -> SentenceEncoder:
    return SentenceEncoder(load_encoder(resolve_source(tiny_bert))).eval()


@pytest.fixture(scope="module")
def tokenize(tiny_bert: Path):
    tokenizer = TextTokenizer(tiny_bert / "tokenizer.json", 32)

    def run(texts):
        encoded = tokenizer.encode(list(texts))
        return encoded.input_ids, encoded.attention_mask

    return run


def test_mean_pool_ignores_padding():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    pooled = mean_pool(tokens, torch.tensor([[1, 1, 0]]))
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 3.0]]))


def test_encoder_outputs_unit_vectors_independent_of_padding(encoder, tokenize):
    ids, mask = tokenize(["the value of a list", "python"])
    with torch.no_grad():
        batch = encoder(torch.from_numpy(ids), torch.from_numpy(mask))
        alone = encoder(*(torch.from_numpy(a) for a in tokenize(["python"])))
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(batch[1], alone[0], atol=1e-5, rtol=1e-5)


def test_resolve_source_reads_the_folder_and_rejects_what_is_not_a_model(tiny_bert: Path, tmp_path: Path):
    source = resolve_source(tiny_bert)
    assert source.tokenizer_file.is_file()
    assert source.max_length == 256  # no sentence-transformers config and no truncation in the file: the default
    with pytest.raises(TextModelError, match="not a local folder nor an installed package"):
        resolve_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextModelError, match=r"no config\.json"):
        resolve_source(tmp_path / "empty")


def test_corpus_holds_out_by_sentence_and_is_deterministic(tiny_corpus: Path):
    a = load_corpus(tiny_corpus, calibration_size=16)
    b = load_corpus(tiny_corpus, calibration_size=40, seed=3)
    assert a.heldout == b.heldout  # the held-out set does not depend on other settings
    assert not set(a.heldout) & (set(a.train) | set(a.calibration))
    assert not set(a.calibration) & set(a.train)
    assert len(a.calibration) == 16
    assert a.source == str(tiny_corpus)


def test_default_corpus_is_cpython_documentation():
    splits = load_corpus(None)
    assert splits.source == "pydoc_data.topics"
    assert len(splits.train) > 500
    assert len(splits.heldout) >= 100
    assert all(4 <= len(s.split()) <= 80 for s in splits.heldout)


def test_corpus_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "nope.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait is here today.".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_corpus(bad)
    short = tmp_path / "short.txt"
    short.write_text("Only one sentence is here.")
    with pytest.raises(CorpusError, match="need at least 8"):
        load_corpus(short)


def test_split_sentences_drops_code_and_rules():
    text = "Heading\n*******\n\nA sentence about code here. Another one follows it!\n\n   x = 1\n   y = 2\n"
    assert split_sentences(text) == ["A sentence about code here.", "Another one follows it!"]


def test_student_keeps_the_chosen_layers_with_teacher_weights(encoder):
    student = build_student(encoder, [1])
    assert student.num_layers == 1
    assert encoder.num_layers == 2
    torch.testing.assert_close(
        student.transformer.encoder.layer[0].output.dense.weight,
        encoder.transformer.encoder.layer[1].output.dense.weight,
    )
    with pytest.raises(DistillError, match=r"layers \[5\] do not exist"):
        build_student(encoder, [0, 5])


@pytest.mark.parametrize("hidden_weight", [0.0, 1.0], ids=["embeddings", "embeddings+layers"])
def test_distillation_brings_the_student_closer_to_the_teacher(encoder, tokenize, tiny_corpus: Path, hidden_weight):
    # A random tiny BERT barely changes its input; larger layer weights make each layer matter, as in a real one.
    encoder = copy.deepcopy(encoder)
    with torch.no_grad():
        for p in encoder.transformer.encoder.layer.parameters():
            p.mul_(4.0)
    corpus = load_corpus(tiny_corpus)
    config = DistillConfig(layers=[0], epochs=3, batch_size=16, lr=1e-3, hidden_weight=hidden_weight)
    ids, mask = (torch.from_numpy(a) for a in tokenize(corpus.heldout))
    with torch.no_grad():
        target = encoder(ids, mask)
        before = torch.cosine_similarity(build_student(encoder, [0])(ids, mask), target).mean()
    student, report = distill(encoder, corpus.train, tokenize, config, progress=False)
    with torch.no_grad():
        after = torch.cosine_similarity(student(ids, mask), target).mean()
    assert report.steps == 3 * int(np.ceil(len(corpus.train) / 16))
    assert report.last_loss < report.first_loss
    assert after > before  # measured on held-out sentences the student never trained on


def test_length_buckets_cut_padding_and_still_cover_every_sentence_once(tokenize, tiny_corpus: Path):
    sentences = load_corpus(tiny_corpus).train
    plain, bucketed = (
        list(epoch_batches(sentences, tokenize, DistillConfig(batch_size=4, augment=False, length_buckets=n), rng))
        for n, rng in ((1, np.random.default_rng(0)), (8, np.random.default_rng(0)))
    )
    for batches in (plain, bucketed):
        assert sorted(int(i) for index, _, _ in batches for i in index) == list(range(len(sentences)))
        for index, ids, mask in batches:
            assert ids.shape == mask.shape == (len(index), int(mask.sum(1).max()))  # trimmed to its longest text
            expected_ids, expected_mask = tokenize([sentences[i] for i in index])
            width = ids.shape[1]
            assert (mask.numpy() == expected_mask[:, :width]).all()
            assert (ids.numpy() == expected_ids[:, :width]).all()

    def padding(batches):
        return sum(int(m.numel() - m.sum()) for _, _, m in batches)

    assert len(bucketed) == len(plain)
    assert padding(bucketed) < padding(plain) / 2


def test_validation_curve_is_recorded_every_n_steps_and_at_the_end(encoder, tokenize, tiny_corpus: Path):
    corpus = load_corpus(tiny_corpus)
    config = DistillConfig(layers=[1], epochs=1, batch_size=8, lr=1e-3, max_steps=5, eval_every=2)
    student, report = distill(encoder, corpus.train, tokenize, config, validation=corpus.calibration, progress=False)
    assert [step for step, _ in report.validation] == [2, 4, 5]
    ids, mask = (torch.from_numpy(a) for a in tokenize(corpus.calibration))
    with torch.no_grad():
        final = torch.cosine_similarity(student(ids, mask), encoder(ids, mask)).mean()
    assert report.validation[-1][1] == pytest.approx(float(final), abs=1e-5)  # the final student, in eval mode
    recorded = report.as_dict()
    assert recorded["validation_curve"][-1][0] == 5
    assert recorded["validation_mean_cosine"] == pytest.approx(float(final), abs=1e-5)
    assert (
        "validation_curve"
        not in distill(encoder, corpus.train, tokenize, config.model_copy(update={"eval_every": None}), progress=False)[
            1
        ].as_dict()
    )
    with pytest.raises(DistillError, match="eval_every needs validation sentences"):
        distill(encoder, corpus.train, tokenize, config, progress=False)
    # training further from a student: the curve starts where that student is, not at the teacher's layer
    _, again = distill(encoder, corpus.train, tokenize, config, validation=corpus.calibration,
                       start=copy.deepcopy(student), progress=False)  # fmt: skip
    assert again.validation[0][1] != pytest.approx(report.validation[0][1])
    with pytest.raises(DistillError, match="start from has 1 layers, layers names 2"):
        distill(
            encoder,
            corpus.train,
            tokenize,
            config.model_copy(update={"layers": [0, 1], "eval_every": None}),
            start=student,
        )


def test_hidden_state_loss_matches_kept_layers_and_ignores_padding():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 5, 8) for _ in range(4)]  # embeddings + 3 layers
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    student = [teacher[0], teacher[1].clone(), teacher[3].clone()]  # keeps teacher layers 0 and 2
    assert float(hidden_state_loss(student, teacher, [0, 2], mask)) == pytest.approx(0.0)
    student[2][0, 3:] += 100.0  # padding positions do not count
    assert float(hidden_state_loss(student, teacher, [0, 2], mask)) == pytest.approx(0.0)
    student[2][0, 0] += 1.0
    assert float(hidden_state_loss(student, teacher, [0, 2], mask)) > 0
    # matched against the wrong teacher layer, the loss is large: states are compared layer to layer
    assert float(hidden_state_loss(student, teacher, [1, 2], mask)) > 0.5
