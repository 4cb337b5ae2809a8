"""The ONNX Runtime backend: load, providers in use, warm-up inputs, the IOBinding path."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.serving.errors import ModelLoadError
from modelpress.serving.manifest import read_manifest
from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions, warmup_inputs
from modelpress.serving.runtime.providers import ProviderConfig
from tests.serving.models import MULTI_INPUTS


def test_required_gpu_refuses_to_load_here(repo):
    manifest = read_manifest(repo / "digits" / "1")
    options = RuntimeOptions(providers=ProviderConfig(requested=("CUDAExecutionProvider",), require_gpu=True))
    model = OnnxModel(manifest, repo / "digits" / "1", options)
    with pytest.raises(ModelLoadError, match="GPU is required"):
        model.load()
    assert not model.ready


def test_onnx_model_reports_providers_threads_and_predicts(repo):
    manifest = read_manifest(repo / "multi" / "1")
    model = OnnxModel(manifest, repo / "multi" / "1", RuntimeOptions(intra_op_threads=1, inter_op_threads=2))
    model.load()
    assert model.ready
    assert model.providers == ["CPUExecutionProvider"]
    assert model.session_options() == {
        "thread_pool": "own", "intra_op_threads": "1", "inter_op_threads": "2", "intra_op_spinning": "0",
        "cpu_mem_arena": "0", "mem_pattern": "1", "shared_cpu_allocator": "0",
    }  # fmt: skip
    feeds = warmup_inputs(manifest.inputs, rows=3)
    assert feeds["ids"].shape == (3, 1)
    assert feeds["ids"].dtype == np.int64
    assert feeds["text"].dtype == object
    out = model.predict(feeds, ["x2", "text_out"])
    np.testing.assert_array_equal(out["x2"], feeds["x"] * 2)
    assert out["text_out"].tolist() == [["warm up"]] * 3
    model.unload()
    assert not model.ready


def test_warmup_inputs_fill_dynamic_dims():
    feeds = warmup_inputs(MULTI_INPUTS, rows=5)
    assert {n: a.shape for n, a in feeds.items()} == {
        "ids": (5, 1), "mask": (5, 1), "x": (5, 3), "h": (5, 2), "u8": (5, 2), "text": (5, 1),
    }  # fmt: skip
    assert np.isfinite(feeds["x"]).all()


def test_io_binding_path_gives_the_same_answers(repo):
    """The GPU path's plumbing (bind inputs, bind outputs, copy back), run with outputs bound on the CPU."""
    manifest = read_manifest(repo / "digits" / "1")
    model = OnnxModel(manifest, repo / "digits" / "1", RuntimeOptions())
    model.load()
    assert not model.io_binding  # CPU session: plain run
    feeds = warmup_inputs(manifest.inputs, rows=3)
    names = ["logits"]
    plain = model.predict(feeds, names)
    model.force_io_binding("cpu")
    bound = model.predict(feeds, names)
    for name in names:
        np.testing.assert_array_equal(bound[name], plain[name])


def test_spinning_can_be_allowed(repo):
    manifest = read_manifest(repo / "digits" / "1")
    model = OnnxModel(manifest, repo / "digits" / "1", RuntimeOptions(allow_spinning=True, warmup_runs=0))
    model.load()
    assert model.session_options()["intra_op_spinning"] == "1"


def test_memory_options_reach_the_session_and_answers_do_not_change(repo):
    """Arena off, memory patterns off, the shared allocator on: applied to the session, same outputs."""
    manifest = read_manifest(repo / "digits" / "1")
    feeds = warmup_inputs(manifest.inputs, rows=5)
    plain = OnnxModel(manifest, repo / "digits" / "1", RuntimeOptions(cpu_mem_arena=True, warmup_runs=0))
    plain.load()
    assert plain.session_options()["cpu_mem_arena"] == "1"
    lean_options = RuntimeOptions(cpu_mem_arena=False, mem_pattern=False, shared_cpu_allocator=True, warmup_runs=0)
    lean = OnnxModel(manifest, repo / "digits" / "1", lean_options)
    lean.load()
    options = lean.session_options()
    assert (options["cpu_mem_arena"], options["mem_pattern"], options["shared_cpu_allocator"]) == ("0", "0", "1")
    np.testing.assert_array_equal(lean.predict(feeds, ["logits"])["logits"], plain.predict(feeds, ["logits"])["logits"])


def test_sessions_share_one_registered_allocator(repo):
    """The allocator is registered once per process; every model with the option loads on it and runs."""
    manifest = read_manifest(repo / "digits" / "1")
    models = [
        OnnxModel(manifest, repo / "digits" / "1", RuntimeOptions(shared_cpu_allocator=True, warmup_runs=1))
        for _ in range(2)
    ]
    for model in models:
        model.load()
    feeds = warmup_inputs(manifest.inputs, rows=2)
    first, second = (m.predict(feeds, ["logits"])["logits"] for m in models)
    np.testing.assert_array_equal(first, second)
