from pathlib import Path

import numpy as np
import pytest

from modelpress.benchmarks.ort_profile import Breakdown, profile, profile_interleaved, side_by_side, text_feeds

pytest.importorskip("transformers", reason="the tiny text encoder needs the hf extra")


def test_profile_sums_kernel_time_per_operator_of_the_measured_runs(tiny_bert: Path, tmp_path: Path):
    from modelpress.export.passes.encoder_onnx import export_encoder
    from modelpress.training.text.encoder import SentenceEncoder
    from modelpress.training.text.source import load_encoder, resolve_source

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
    assert breakdown.run_ms >= breakdown.total_ms * 0.9  # a run spans its kernels (sequential executor, 1 thread)
    both = profile_interleaved([model, model], feeds, threads=1, runs=3)
    assert [b.runs for b in both] == [3, 3]
    assert both[0].nodes_per_op == both[1].nodes_per_op == breakdown.nodes_per_op
    table = breakdown.markdown()
    assert "| MatMul |" in table
    assert "Slowest nodes:" in table


def test_side_by_side_shows_each_operator_of_either_model_with_the_ratio():
    teacher = Breakdown(runs=1, by_op={"MatMul": 6.0, "Gather": 1.0}, nodes_per_op={"MatMul": 12, "Gather": 1},
                        by_node={}, run_ms=7.5)  # fmt: skip
    student = Breakdown(runs=1, by_op={"MatMul": 3.0, "Gather": 1.0, "Cast": 0.5},
                        nodes_per_op={"MatMul": 6, "Gather": 1, "Cast": 2}, by_node={}, run_ms=5.0)  # fmt: skip
    table = side_by_side(teacher, student, names=("teacher", "student")).splitlines()
    assert table[0] == "| operator | teacher nodes | teacher ms | student nodes | student ms | teacher / student |"
    assert table[2] == "| MatMul | 12 | 6.00 | 6 | 3.00 | 2.00 |"  # slowest first
    assert "| Gather | 1 | 1.00 | 1 | 1.00 | 1.00 |" in table  # a fixed cost: the same in both
    assert "| Cast | 0 | 0.00 | 2 | 0.50 | 0.00 |" in table  # only the second model runs it
    assert table[-2] == "| **kernels** | | 7.00 | | 4.50 | 1.56 |"
    assert table[-1] == "| **model_run** | | 7.50 | | 5.00 | 1.50 |"
