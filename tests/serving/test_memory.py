"""Process memory helpers: RSS readings, giving freed heap memory back to the system, freezing the start's heap."""

from __future__ import annotations

import gc
import sys

import pytest

from modelpress.serving.app import create_app
from modelpress.serving.memory import freeze_startup_heap, release_free_heap, rss_bytes, thaw_heap
from tests.serving.conftest import running, settings_for


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


def test_freezing_keeps_the_objects_out_of_collections_and_thawing_gives_them_back():
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 1000  # this process's modules, at least
        assert all(count == 0 for count in gc.get_count()[1:])  # collected first: nothing waits in the old generations
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0


@pytest.mark.anyio
@pytest.mark.parametrize("freeze", [True, False])
async def test_the_server_freezes_the_start_once_ready_and_thaws_at_shutdown(repo, freeze):
    app = create_app(settings_for(repo, gc_freeze=freeze), handle_signals=False)
    async with running(app) as client:
        assert (await client.get("/v2/health/ready")).status_code == 200
        assert (gc.get_freeze_count() > 0) is freeze
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
        assert (await client.post("/v2/models/digits/infer", json=body)).status_code == 200
    assert gc.get_freeze_count() == 0
