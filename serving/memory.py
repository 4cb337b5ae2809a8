"""Process memory readings used to attribute memory to a model version at load."""

from __future__ import annotations

import gc
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


def freeze_startup_heap() -> int:
    """Collect once, then move every object left into the collector's permanent generation (``gc.freeze``).

    A loaded server holds tens of thousands of long-lived objects (modules, routes, manifests, tokenizers); each
    full collection under load walked all of them while every request waited, which was most of REST's p99 at
    concurrency 32. Frozen, they are skipped; they are still freed by reference counting when dropped (a model
    unloaded), only a cycle among them waits for :func:`thaw_heap`. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_heap() -> None:
    """Back to Python's default collection (``gc.unfreeze``), at shutdown.

    So a process that serves again (tests, an application embedding the server) does not keep the first server's
    objects out of the collector's reach.
    """
    gc.unfreeze()
