from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from modelpress.export.errors import VerificationError
from modelpress.export.ort_session import cpu_session
from modelpress.export.passes import build_pass
from modelpress.export.passes.base import EncoderHandle, OnnxHandle
from modelpress.export.passes.embedding_int8 import quantize_embedding_tables, quantize_rows
from modelpress.export.passes.encoder_onnx import check_against_torch, example_tokens, export_encoder
from modelpress.export.passes.fuse_transformer import optimize_encoder
from modelpress.export.passes.quantize_smooth import Int8Config, quantize_encoder_int8
from modelpress.export.passes.smoothing import activation_ranges, smooth_model, smooth_targets
from modelpress.export.text.fidelity import fidelity, nearest_neighbours, onnx_embeddings, token_batches
from modelpress.serving.text import TextTokenizer
from modelpress.training.text.corpus import load_corpus
from modelpress.training.text.encoder import SentenceEncoder
from modelpress.training.text.source import load_encoder, resolve_source
from tests.training.text.tiny_bert import HEADS, HIDDEN, LAYERS

pytest.importorskip("transformers", reason="text models need the hf extra")


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path) -> SentenceEncoder:
    return SentenceEncoder(load_encoder(resolve_source(tiny_bert))).eval()


@pytest.fixture(scope="module")
def exported(encoder, tmp_path_factory) -> Path:
    path, details = export_encoder(encoder, tmp_path_factory.mktemp("onnx"))
    assert details["max_abs_diff_vs_torch"] < 1e-5
    return path


@pytest.fixture(scope="module")
def batches(tiny_bert: Path, tiny_corpus: Path) -> dict[str, list]:
    tokenizer = TextTokenizer(tiny_bert / "tokenizer.json", 32)
    corpus = load_corpus(tiny_corpus, calibration_size=32)
    return {
        "calibration": list(token_batches(tokenizer, corpus.calibration)),
        "heldout": list(token_batches(tokenizer, corpus.heldout)),
    }


def torch_embed(encoder, batches) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [encoder(torch.from_numpy(b["input_ids"]), torch.from_numpy(b["attention_mask"])).numpy() for b in batches]
        )


def test_export_has_dynamic_batch_and_sequence(exported: Path, encoder):
    graph = onnx.load(str(exported)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["embedding"]
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert all(dims)
    assert len(dims) == 2
    ids, mask = example_tokens(5, 23, encoder.transformer.config.vocab_size, seed=7)
    out = cpu_session(exported).run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert out.shape == (5, HIDDEN)


def test_parity_check_catches_a_wrong_model(exported: Path, tiny_bert: Path):
    other = SentenceEncoder(load_encoder(resolve_source(tiny_bert))).eval()
    with torch.no_grad():
        other.transformer.encoder.layer[0].output.dense.weight.mul_(-1.0)
    with pytest.raises(VerificationError, match="differ from PyTorch"):
        check_against_torch(exported, other)


@pytest.mark.slow
def test_dynamo_exporter_is_also_correct(encoder, tmp_path: Path):
    _path, details = export_encoder(encoder, tmp_path, exporter="dynamo")
    assert details["exporter"] == "dynamo"
    assert details["max_abs_diff_vs_torch"] < 1e-5


def test_optimizer_fuses_attention_layernorm_and_gelu(exported: Path, tmp_path: Path, encoder, batches):
    path, fusions = optimize_encoder(exported, tmp_path / "opt", num_heads=HEADS, hidden_size=HIDDEN)
    assert fusions["Attention"] == LAYERS
    assert fusions["SkipLayerNormalization"] == 2 * LAYERS
    assert fusions["BiasGelu"] == LAYERS
    assert fusions["EmbedLayerNormalization"] == 1
    got = onnx_embeddings(path, batches["heldout"])
    np.testing.assert_allclose(got, torch_embed(encoder, batches["heldout"]), atol=1e-5)
    # the same fp16 pass as every other model's
    fp16 = build_pass({"pass": "fp16"}).run(OnnxHandle(path), tmp_path / "fp16", None).model.path
    assert fidelity(onnx_embeddings(fp16, batches["heldout"]), got)["mean_cosine"] > 0.999


def test_embedding_table_rows_are_int8_and_outputs_barely_move(exported: Path, tmp_path: Path, batches):
    model = onnx.load(str(exported))
    records = quantize_embedding_tables(model, min_elements=1000)
    tables = {r.table: r for r in records}
    word = tables["transformer.embeddings.word_embeddings.weight"]
    assert word.int8_bytes < word.fp32_bytes / 3
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "emb.onnx"))
    got = onnx_embeddings(tmp_path / "emb.onnx", batches["heldout"])
    want = onnx_embeddings(exported, batches["heldout"])
    assert fidelity(got, want)["min_cosine"] > 0.999


def test_quantize_rows_bounds_the_error_per_row():
    table = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32) * np.arange(1, 51)[:, None]
    q, scale = quantize_rows(table)
    assert q.dtype == np.int8
    assert scale.shape == (50,)
    error = np.abs(q * scale[:, None] - table).max(axis=1)
    assert np.all(error <= scale / 2 + 1e-6)


def test_smoothing_keeps_fp32_outputs(exported: Path, tmp_path: Path, batches):
    model = onnx.load(str(exported))
    targets = smooth_targets(model)
    assert len(targets) == 6 * LAYERS  # q, k, v, attention output, FFN in, FFN out
    ranges = activation_ranges(model, targets, batches["calibration"])
    assert smooth_model(model, targets, ranges, alpha=0.7) == len(targets)
    onnx.save(model, str(tmp_path / "smooth.onnx"))
    got = onnx_embeddings(tmp_path / "smooth.onnx", batches["heldout"])
    np.testing.assert_allclose(got, onnx_embeddings(exported, batches["heldout"]), atol=1e-4)


def test_int8_measures_trials_and_keeps_sensitive_nodes_fp32(exported, tmp_path: Path, batches, encoder):
    path, _ = optimize_encoder(exported, tmp_path / "opt", num_heads=HEADS, hidden_size=HIDDEN, embed_layer_norm=False)
    reference = torch_embed(encoder, batches["calibration"])
    # An unreachable target forces the sensitivity search to keep its single allowed node in fp32.
    config = Int8Config(smoothing_alphas=[0.7], target_mean_cosine=1.0, max_fp32_nodes=1)
    out, details = quantize_encoder_int8(path, tmp_path / "int8", batches["calibration"], reference, config)
    assert set(details["trials"]) >= {"no smoothing", "smoothing alpha=0.7"}
    assert len(details["kept_fp32"]) == 1
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops or "DynamicQuantizeMatMul" in ops
    got = onnx_embeddings(out, batches["heldout"])
    assert fidelity(got, torch_embed(encoder, batches["heldout"]))["mean_cosine"] > 0.9


def test_fidelity_metrics():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 8))
    same = fidelity(ref * 3.0, ref)
    assert same["mean_cosine"] == pytest.approx(1.0)
    assert same["nn_agreement_at_1"] == 1.0
    noisy = fidelity(ref + rng.normal(size=ref.shape) * 2.0, ref)
    assert noisy["min_cosine"] < noisy["mean_cosine"] < 1.0
    assert noisy["nn_agreement_at_1"] < 1.0
    assert list(nearest_neighbours(np.array([[1.0, 0], [0.9, 0.1], [0, 1.0]]))) == [1, 0, 1]


def test_the_onnx_pass_exports_an_encoder_handle_and_fusion_reads_its_dims(encoder, tiny_bert: Path, tmp_path: Path):
    handle = EncoderHandle(encoder, tiny_bert / "tokenizer.json", tiny_bert)
    exported = build_pass({"pass": "onnx", "opset": 17}).run(handle, tmp_path / "onnx", None)
    assert exported.details["exporter"] == "torchscript"  # auto: TorchScript for text encoders
    assert exported.model.source is handle
    fused = build_pass({"pass": "fuse-transformer"}).run(exported.model, tmp_path / "fused", _Notes())
    assert fused.details["fusions"]["Attention"] == LAYERS
    assert (fused.details["num_heads"], fused.details["hidden_size"]) == (HEADS, HIDDEN)
    with pytest.raises(VerificationError, match="exported from a text encoder"):
        build_pass({"pass": "fuse-transformer"}).run(OnnxHandle(exported.model.path), tmp_path / "x", _Notes())


class _Notes:
    """The part of a pass context the fusion pass reads."""

    @staticmethod
    def note(text: str) -> None:
        del text
