"""Process memory readings used to attribute memory to a model version at load."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc), else the peak RSS as a fallback."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``); False where unavailable.

    Loading a model parses the whole ONNX file into protobuf objects that ONNX Runtime frees once its own
    tensors exist; glibc keeps most of that freed memory mapped, so it stays in the RSS of a server that
    loads many models (about 9 MiB over the demo repository). Called after each load.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return False
    return True
