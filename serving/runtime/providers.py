"""Choosing ONNX Runtime execution providers and their options, and checking what a session really got.

``onnxruntime-gpu`` lists CUDA/TensorRT as *available* on a machine without a GPU and silently falls back to
CPU at session creation, so the truth is ``session.get_providers()``, checked after the session exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("modelpress.serving.runtime")

GPU_PROVIDERS = ("TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"


class ProviderError(Exception):
    """The requested execution providers cannot be honoured (unknown name, or a GPU required but absent)."""


TENSORRT_PROVIDERS = ("TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider")


@dataclass(frozen=True)
class ProviderConfig:
    """What the server's settings say about execution providers (``serving/settings.py`` documents each)."""

    requested: tuple[str, ...] = (CPU_PROVIDER,)
    require_gpu: bool = False
    cuda_device_id: int = 0
    gpu_mem_limit_bytes: int | None = None
    arena_extend_strategy: str = "kNextPowerOfTwo"
    cudnn_conv_algo_search: str | None = None  # EXHAUSTIVE (ORT's default), HEURISTIC or DEFAULT
    trt_fp16: bool = False
    trt_engine_cache_dir: Path | None = None
    trt_max_workspace_bytes: int | None = None
    io_binding: bool | None = None  # None: when a GPU provider comes first


def cuda_options(config: ProviderConfig) -> dict[str, str]:
    options = {"device_id": str(config.cuda_device_id), "arena_extend_strategy": config.arena_extend_strategy}
    if config.gpu_mem_limit_bytes is not None:
        options["gpu_mem_limit"] = str(config.gpu_mem_limit_bytes)
    if config.cudnn_conv_algo_search is not None:
        options["cudnn_conv_algo_search"] = config.cudnn_conv_algo_search
    return options


def tensorrt_options(config: ProviderConfig) -> dict[str, str]:
    """TensorRT's options: precision, workspace, and engine + timing caches in one folder.

    Building an engine takes seconds to minutes per model and input-shape profile; with a cache folder on a
    volume that outlives the pod, the next start loads the engines instead (TensorRT keys them by model and
    GPU, so one folder serves several models and GPU types).
    """
    options = {"device_id": str(config.cuda_device_id)}
    if config.trt_fp16:
        options["trt_fp16_enable"] = "True"
    if config.trt_max_workspace_bytes is not None:
        options["trt_max_workspace_size"] = str(config.trt_max_workspace_bytes)
    if config.trt_engine_cache_dir is not None:
        folder = str(config.trt_engine_cache_dir)
        options |= {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": folder,
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": folder,
        }
    return options


def provider_options(name: str, config: ProviderConfig) -> dict[str, str]:
    if name == "CUDAExecutionProvider":
        return cuda_options(config)
    if name in TENSORRT_PROVIDERS:
        return tensorrt_options(config)
    return {}


def select_providers(
    config: ProviderConfig, available: list[str], known: list[str]
) -> list[tuple[str, dict[str, str]]]:
    """The providers to ask ORT for, in order, each with its options.

    Unknown names are configuration mistakes (an error); known but unavailable ones are skipped with a
    warning, unless the GPU is required. CPU is always last so a session can be created.

    Raises:
        ProviderError: a name ORT does not know, or ``require_gpu`` without any GPU provider available.
    """
    unknown = [p for p in config.requested if p not in known]
    if unknown:
        raise ProviderError(f"unknown execution provider(s) {unknown}; ONNX Runtime knows {known}")
    chosen = [p for p in config.requested if p in available]
    skipped = [p for p in config.requested if p not in available]
    if skipped:
        log.warning("execution providers %s requested but not available here (available: %s)", skipped, available)
    if config.require_gpu and not uses_gpu(chosen):
        raise ProviderError(
            f"a GPU is required but no GPU execution provider is available: requested {list(config.requested)}, "
            f"available {available}"
        )
    if CPU_PROVIDER not in chosen and not config.require_gpu:
        chosen.append(CPU_PROVIDER)
    return [(p, provider_options(p, config)) for p in chosen]


def check_session_providers(config: ProviderConfig, used: list[str]) -> None:
    """After session creation: refuse a silent CPU fallback when the GPU is required."""
    if config.require_gpu and not uses_gpu(used):
        raise ProviderError(f"a GPU is required but the session fell back to {used}")


def uses_gpu(used: list[str]) -> bool:
    return any(p in GPU_PROVIDERS for p in used)


def use_io_binding(used: list[str], has_strings: bool = False, setting: bool | None = None) -> bool:
    """IOBinding pays off only when the session's first provider keeps tensors on the device (CUDA, TensorRT).

    There the outputs stay on the device until one copy at the end, instead of ORT's copies per output; on
    CPU it only adds calls. ``setting`` False turns it off; True or None uses it wherever it can work. ORT
    cannot bind string tensors, so models with BYTES inputs or outputs use a plain run.
    """
    return setting is not False and bool(used) and used[0] in GPU_PROVIDERS and not has_strings


def ort_available() -> tuple[list[str], list[str]]:
    """(available, known) provider names from the installed onnxruntime."""
    import onnxruntime as ort

    return list(ort.get_available_providers()), list(ort.get_all_providers())


def preflight(config: ProviderConfig) -> list[tuple[str, dict[str, Any]]]:
    """Check the provider configuration before serving (``--require-gpu`` fails fast here)."""
    available, known = ort_available()
    return select_providers(config, available, known)
