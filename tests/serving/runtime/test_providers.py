"""Execution-provider selection and fallback, testable without a GPU."""

from __future__ import annotations

import pytest

from modelpress.serving.runtime.providers import (
    ProviderConfig,
    ProviderError,
    check_session_providers,
    cuda_options,
    select_providers,
    use_io_binding,
)

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


def test_tensorrt_options_precision_workspace_and_engine_cache(tmp_path):
    config = ProviderConfig(
        requested=("TensorrtExecutionProvider", "CUDAExecutionProvider"),
        trt_fp16=True,
        trt_engine_cache_dir=tmp_path / "engines",
        trt_max_workspace_bytes=2**31,
        cudnn_conv_algo_search="HEURISTIC",
    )
    chosen = dict(select_providers(config, GPU_BOX, KNOWN))
    assert chosen["TensorrtExecutionProvider"] == {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_max_workspace_size": str(2**31),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path / "engines"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path / "engines"),
    }
    assert chosen["CUDAExecutionProvider"]["cudnn_conv_algo_search"] == "HEURISTIC"
    assert chosen["CPUExecutionProvider"] == {}
    plain = dict(select_providers(ProviderConfig(requested=("TensorrtExecutionProvider",)), GPU_BOX, KNOWN))
    assert plain["TensorrtExecutionProvider"] == {"device_id": "0"}  # nothing asked, nothing set: ORT's defaults


def test_io_binding_on_any_gpu_provider_first_unless_turned_off():
    assert use_io_binding(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not use_io_binding(["CUDAExecutionProvider"], setting=False)
    assert not use_io_binding(["CPUExecutionProvider"], setting=True)  # nothing to keep on a device


def test_settings_reach_the_provider_options(tmp_path, monkeypatch):
    from modelpress.serving.app import provider_config
    from modelpress.serving.settings import Settings

    monkeypatch.setenv("MODELPRESS_TRT_FP16", "true")
    monkeypatch.setenv("MODELPRESS_TRT_ENGINE_CACHE_DIR", str(tmp_path))
    config = provider_config(Settings(repository=tmp_path, io_binding=False, trt_max_workspace_bytes=1024))
    assert config.trt_fp16 is True
    assert config.trt_engine_cache_dir == tmp_path
    assert config.trt_max_workspace_bytes == 1024
    assert config.io_binding is False


def test_serve_refuses_an_engine_cache_it_cannot_write(tmp_path):
    from modelpress.serving.server import ServeError, check
    from modelpress.serving.settings import Settings

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ServeError, match=r"trt_engine_cache_dir .* is not a writable folder"):
        check(Settings(repository=tmp_path, trt_engine_cache_dir=blocker / "engines"))
    check(Settings(repository=tmp_path, trt_engine_cache_dir=tmp_path / "new" / "engines"))
    assert (tmp_path / "new" / "engines").is_dir()
