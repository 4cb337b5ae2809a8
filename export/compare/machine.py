"""What a benchmark figure means depends on the machine: describe it next to every number."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Flags that change what ONNX Runtime and PyTorch kernels can do on x86.
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The subset of :data:`INTERESTING_FLAGS` this CPU advertises, in that order."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in INTERESTING_FLAGS if f in present]
    return []


def describe_machine(threads: int) -> dict[str, object]:
    """A JSON-ready description: CPU model and flags, cores, the thread count used, Python and platform."""
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
