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
