from pathlib import Path

import numpy as np
import pytest

from benchmarks.ort_profile import profile, text_feeds

pytest.importorskip("transformers", reason="the tiny text encoder needs the hf extra")


def test_profile_sums_kernel_time_per_operator_of_the_measured_runs(tiny_bert: Path, tmp_path: Path):
    from export.text.onnx_export import export_encoder
    from training.text.encoder import SentenceEncoder
    from training.text.source import load_encoder, resolve_source

    module = SentenceEncoder(load_encoder(resolve_source(tiny_bert))).eval()
    model, _ = export_encoder(module, tmp_path / "onnx", opset=17, exporter="torchscript")
    feeds = text_feeds(2, 16)
    assert feeds["input_ids"].shape == (2, 16)
    assert np.all(feeds["attention_mask"] == 1)
    breakdown = profile(model, feeds, threads=1, runs=4)
    assert breakdown.runs == 4
    assert breakdown.nodes_per_op["MatMul"] >= 2 * 6  # 2 layers, each with its Q/K/V/output/FFN MatMuls at least
    assert breakdown.total_ms == pytest.approx(sum(breakdown.by_node.values()))
    assert breakdown.total_ms > 0
    table = breakdown.markdown()
    assert "| MatMul |" in table
    assert "Slowest nodes:" in table
