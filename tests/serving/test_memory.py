"""Process memory helpers: RSS readings and giving freed heap memory back to the system."""

from __future__ import annotations

import gc
import sys

import pytest

from modelpress.serving.memory import release_free_heap, rss_bytes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_heap_memory_goes_back_to_the_system():
    # ~80 MB of 4 KB blocks on the C heap, one in 64 kept alive so the heap cannot shrink from its top alone:
    # the pattern a parsed model file leaves behind once ONNX Runtime has copied its tensors.
    blocks = [bytes(4000) + bytes([i % 256]) for i in range(20_000)]
    keep = blocks[::64]
    del blocks
    gc.collect()
    before = rss_bytes()
    assert release_free_heap()
    assert before - rss_bytes() > 20 * 2**20
    assert len(keep) == 313
