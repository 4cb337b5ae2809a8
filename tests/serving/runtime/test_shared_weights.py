"""Embedding tables shared across sessions by content; the ONNX wire scan that finds them without ``onnx``."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelpress.serving.manifest import TensorSpec
from modelpress.serving.memory import release_free_heap, rss_bytes
from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions
from modelpress.serving.runtime.shared_weights import (
    MIN_SHARED_BYTES,
    ScanError,
    SharedWeights,
    scan_initializers,
    shareable,
)
from tests.serving.models import publish

ROWS, DIM = 4096, 128  # a 2 MiB fp32 table: above the sharing threshold


def table(seed: int, dtype=np.float32, rows: int = ROWS) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal((rows, DIM))
    return (values * 50).astype(dtype) if np.dtype(dtype).kind == "i" else values.astype(dtype)


def lookup_graph(emb: np.ndarray, proj_seed: int = 0) -> onnx.GraphProto:
    """``sum(table[ids]) @ W``: a lookup table (shareable) and a MatMul weight (pre-packed: not shared)."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 1024])
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["rows"]),
        helper.make_node("Cast", ["rows"], ["rowsf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["rowsf", "axis1"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "proj"], ["out"]),
    ]
    proj = np.random.default_rng(proj_seed).standard_normal((DIM, 1024)).astype(np.float32)  # 512 KiB
    inits = [
        numpy_helper.from_array(emb, "table"),
        numpy_helper.from_array(proj, "proj"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    return helper.make_graph(nodes, "lookup", [ids], [out], initializer=inits)


def publish_lookup(repo: Path, name: str, emb: np.ndarray, proj_seed: int = 0) -> Path:
    return publish(
        repo, name, 1, lookup_graph(emb, proj_seed), task="embedding",
        inputs=[TensorSpec(name="ids", datatype="INT64", shape=[-1, -1])],
        outputs=[TensorSpec(name="out", datatype="FP32", shape=[-1, 1024])],
    )  # fmt: skip


def load(version_dir: Path, share: bool = True) -> OnnxModel:
    from modelpress.serving.manifest import read_manifest

    model = OnnxModel(read_manifest(version_dir), version_dir, RuntimeOptions(share_weights=share, warmup_runs=1))
    model.load()
    return model


IDS = {"ids": np.array([[1, 5, 4095], [7, 7, 0]], dtype=np.int64)}


def test_scan_finds_inline_tensors_with_their_bytes_dims_and_consumers(tmp_path):
    emb = table(0)
    path = publish_lookup(tmp_path, "lookup", emb) / "model.onnx"
    refs = {r.name: r for r in scan_initializers(path)}
    assert set(refs) == {"table", "proj", "axis1"}
    t = refs["table"]
    assert (t.data_type, t.dims, t.consumers) == (TensorProto.FLOAT, (ROWS, DIM), frozenset({"Gather"}))
    raw = path.read_bytes()[t.offset : t.offset + t.length]
    np.testing.assert_array_equal(np.frombuffer(raw, dtype=np.float32).reshape(ROWS, DIM), emb)
    assert refs["proj"].consumers == frozenset({"MatMul"})
    # the size floor skips small tensors without parsing them
    assert [r.name for r in scan_initializers(path, min_bytes=MIN_SHARED_BYTES)] == ["table"]


def test_only_lookup_tables_of_a_shareable_type_and_size_are_shared(tmp_path):
    int8 = scan_initializers(publish_lookup(tmp_path, "i8", table(0, np.int8, rows=ROWS * 4)) / "model.onnx")
    fp16 = scan_initializers(publish_lookup(tmp_path, "f16", table(0, np.float16)) / "model.onnx")
    small = scan_initializers(publish_lookup(tmp_path, "small", table(0, rows=64)) / "model.onnx")
    assert [r.name for r in shareable(int8)] == ["table"]  # 2 MiB of int8
    assert shareable(fp16) == []  # CPU ONNX Runtime converts fp16 tables to fp32 at load: nothing to share
    assert shareable(small) == []  # 32 KiB: under the threshold
    # MatMul weights are pre-packed by ONNX Runtime, so a shared copy would be held besides the packed one
    assert all(r.name != "proj" for r in shareable(int8 + fp16 + small))


def test_scan_refuses_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x3a\xff\xff\xff\xff\x0f not protobuf")
    with pytest.raises(ScanError):
        scan_initializers(bad)


def test_equal_tables_are_one_copy_and_go_with_the_last_holder(tmp_path):
    cache = SharedWeights()
    a = cache.tables_for(publish_lookup(tmp_path, "a", table(0), proj_seed=1) / "model.onnx")
    b = cache.tables_for(publish_lookup(tmp_path, "b", table(0), proj_seed=2) / "model.onnx")
    c = cache.tables_for(publish_lookup(tmp_path, "c", table(1)) / "model.onnx")
    assert a["table"] is b["table"]  # same bytes in two files (other weights differ)
    assert c["table"] is not a["table"]
    assert len(cache) == 2
    del a, b
    gc.collect()
    assert len(cache) == 1  # nobody holds table(0) any more


def test_sessions_sharing_a_table_answer_exactly_as_unshared_ones(tmp_path):
    teacher = publish_lookup(tmp_path, "teacher", table(3), proj_seed=1)
    student = publish_lookup(tmp_path, "student", table(3), proj_seed=2)
    shared = [load(teacher), load(student)]
    plain = [load(teacher, share=False), load(student, share=False)]
    assert shared[0].shared_tables == {"table": ROWS * DIM * 4}
    assert shared[0]._shared["table"] is shared[1]._shared["table"]
    assert plain[0].shared_tables == {}
    for s, p in zip(shared, plain, strict=True):
        np.testing.assert_array_equal(s.predict(IDS, ["out"])["out"], p.predict(IDS, ["out"])["out"])
    shared[0].unload()
    assert shared[0].shared_tables == {}
    np.testing.assert_array_equal(shared[1].predict(IDS, ["out"])["out"], plain[1].predict(IDS, ["out"])["out"])


def test_a_second_session_with_the_same_table_adds_no_copy_of_it(tmp_path):
    rows = ROWS * 8  # 16 MiB: well above what else a load moves in RSS
    first = publish_lookup(tmp_path, "first", table(4, rows=rows))
    second = publish_lookup(tmp_path, "second", table(4, rows=rows), proj_seed=2)
    third = publish_lookup(tmp_path, "third", table(4, rows=rows), proj_seed=3)
    held = [load(first)]
    release_free_heap()
    before = rss_bytes()
    held.append(load(second))
    release_free_heap()
    shared_cost = rss_bytes() - before
    before = rss_bytes()
    held.append(load(third, share=False))
    release_free_heap()
    plain_cost = rss_bytes() - before
    table_bytes = rows * DIM * 4
    assert plain_cost > 0.8 * table_bytes, (plain_cost, table_bytes)
    assert shared_cost < 0.25 * table_bytes, (shared_cost, table_bytes)


def test_text_variants_share_one_tokenizer_per_file(tmp_path):
    pytest.importorskip("tokenizers")
    from modelpress.serving.app import onnx_runtime_factory
    from modelpress.serving.manifest import read_manifest
    from modelpress.serving.settings import Settings
    from tests.serving.models import publish_encoder

    publish_encoder(tmp_path, "encoder")
    publish_encoder(tmp_path, "encoder-student")
    models = {}
    for share in (True, False):
        make = onnx_runtime_factory(Settings(repository=tmp_path, share_weights=share, warmup_runs=1))
        for name in ("encoder", "encoder-student"):
            d = tmp_path / name / "1"
            models[share, name] = make(read_manifest(d), d)
            models[share, name].load()
    assert models[True, "encoder"]._tokenizer is models[True, "encoder-student"]._tokenizer
    assert models[False, "encoder"]._tokenizer is not models[False, "encoder-student"]._tokenizer
    texts = {"text": np.array([b"hello world"], dtype=object)}
    np.testing.assert_array_equal(
        models[True, "encoder-student"].predict(texts, ["embedding"])["embedding"],
        models[False, "encoder-student"].predict(texts, ["embedding"])["embedding"],
    )
