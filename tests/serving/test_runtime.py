"""Execution-provider selection and fallback (CPU-testable), the ORT runtime, warm-up, settings."""

from __future__ import annotations

import numpy as np
import pytest

from serving.errors import ModelLoadError
from serving.manifest import read_manifest
from serving.runtime.onnx import OnnxModel, RuntimeOptions, warmup_inputs
from serving.runtime.providers import (
    ProviderConfig,
    ProviderError,
    check_session_providers,
    cuda_options,
    select_providers,
    use_io_binding,
)
from serving.settings import Settings
from tests.serving.models import MULTI_INPUTS

KNOWN = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
GPU_BOX = KNOWN
CPU_BOX = ["CPUExecutionProvider"]


def test_order_is_kept_with_options_and_cpu_last():
    config = ProviderConfig(
        requested=("TensorrtExecutionProvider", "CUDAExecutionProvider"), cuda_device_id=1, gpu_mem_limit_bytes=2**30
    )
    chosen = select_providers(config, GPU_BOX, KNOWN)
    assert [p for p, _ in chosen] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert chosen[1][1] == {"device_id": "1", "arena_extend_strategy": "kNextPowerOfTwo", "gpu_mem_limit": "1073741824"}
    assert chosen[0][1] == {"device_id": "1"}


def test_unavailable_gpu_falls_back_to_cpu_unless_required():
    config = ProviderConfig(requested=("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert select_providers(config, CPU_BOX, KNOWN) == [("CPUExecutionProvider", {})]
    with pytest.raises(ProviderError, match="a GPU is required but no GPU execution provider is available"):
        select_providers(ProviderConfig(requested=("CUDAExecutionProvider",), require_gpu=True), CPU_BOX, KNOWN)


def test_required_gpu_does_not_append_cpu_and_unknown_names_fail():
    config = ProviderConfig(requested=("CUDAExecutionProvider",), require_gpu=True)
    assert [p for p, _ in select_providers(config, GPU_BOX, KNOWN)] == ["CUDAExecutionProvider"]
    with pytest.raises(ProviderError, match="unknown execution provider"):
        select_providers(ProviderConfig(requested=("CUDAProvider",)), GPU_BOX, KNOWN)


def test_silent_fallback_after_session_creation_is_caught():
    """onnxruntime-gpu lists CUDA as available without a GPU, then the session runs on CPU."""
    check_session_providers(ProviderConfig(requested=("CUDAExecutionProvider",)), ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="fell back"):
        check_session_providers(
            ProviderConfig(requested=("CUDAExecutionProvider",), require_gpu=True), ["CPUExecutionProvider"]
        )


def test_io_binding_only_on_cuda_sessions():
    assert use_io_binding(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not use_io_binding(["CUDAExecutionProvider"], has_strings=True)  # ORT cannot bind strings
    assert not use_io_binding(["CPUExecutionProvider"])
    assert not use_io_binding([])
    assert cuda_options(ProviderConfig(arena_extend_strategy="kSameAsRequested"))["arena_extend_strategy"] == (
        "kSameAsRequested"
    )


def test_required_gpu_refuses_to_load_here(repo):
    manifest = read_manifest(repo / "digits" / "1")
    options = RuntimeOptions(providers=ProviderConfig(requested=("CUDAExecutionProvider",), require_gpu=True))
    model = OnnxModel(manifest, repo / "digits" / "1", options)
    with pytest.raises(ModelLoadError, match="GPU is required"):
        model.load()
    assert not model.ready


def test_onnx_model_reports_providers_threads_and_predicts(repo):
    manifest = read_manifest(repo / "multi" / "1")
    model = OnnxModel(manifest, repo / "multi" / "1", RuntimeOptions(intra_op_threads=1, inter_op_threads=1))
    model.load()
    assert model.ready
    assert model.providers == ["CPUExecutionProvider"]
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


def test_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELPRESS_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("MODELPRESS_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("MODELPRESS_METRICS_BUCKETS", "0.01,0.1,1")
    monkeypatch.setenv("MODELPRESS_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("MODELPRESS_REQUIRE_GPU", "true")
    s = Settings()
    assert s.repository == tmp_path
    assert s.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert s.metrics_buckets == [0.01, 0.1, 1.0]
    assert s.max_batch_size == 16
    assert s.require_gpu is True
    assert (s.host, s.port, s.workers, s.max_queue_delay_us, s.max_queue_size) == ("127.0.0.1", 8000, 1, 500, 256)
    assert s.max_body_bytes == 64 * 2**20
    assert s.repository_api is False
    monkeypatch.setenv("MODELPRESS_PROVIDERS", '["CPUExecutionProvider"]')
    assert Settings().providers == ["CPUExecutionProvider"]


def test_settings_refuse_bad_values(tmp_path):
    with pytest.raises(ValueError, match="strictly increasing"):
        Settings(repository=tmp_path, metrics_buckets=[1.0, 0.5])
    with pytest.raises(ValueError, match="at least one execution provider"):
        Settings(repository=tmp_path, providers="")
    with pytest.raises(ValueError, match="max_batch_size"):
        Settings(repository=tmp_path, max_batch_size=0)


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


def test_load_settings_names_the_bad_variable(monkeypatch, tmp_path):
    from serving.settings import SettingsError, load_settings

    monkeypatch.delenv("MODELPRESS_REPOSITORY", raising=False)
    with pytest.raises(SettingsError, match=r"setting 'repository' \(MODELPRESS_REPOSITORY\): Field required"):
        load_settings()
    monkeypatch.setenv("MODELPRESS_MAX_QUEUE_SIZE", "lots")
    with pytest.raises(SettingsError, match="MODELPRESS_MAX_QUEUE_SIZE"):
        load_settings(repository=tmp_path)
