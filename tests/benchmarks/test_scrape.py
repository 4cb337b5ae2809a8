import pytest

from modelpress.benchmarks.scrape import histogram_totals, step_split

METRICS = """\
# HELP modelpress_queue_duration_seconds Time in queue.
# TYPE modelpress_queue_duration_seconds histogram
modelpress_queue_duration_seconds_bucket{model="a",version="1",le="+Inf"} 4.0
modelpress_queue_duration_seconds_count{model="a",version="1"} 4.0
modelpress_queue_duration_seconds_sum{model="a",version="1"} 0.004
modelpress_queue_duration_seconds_count{model="b",version="1"} 10.0
modelpress_queue_duration_seconds_sum{model="b",version="1"} 5.0
# HELP modelpress_batch_size_rows Rows per batch.
# TYPE modelpress_batch_size_rows histogram
modelpress_batch_size_rows_count{model="a",version="1"} 2.0
modelpress_batch_size_rows_sum{model="a",version="1"} 8.0
"""


def test_histogram_totals_per_model_and_split():
    after = histogram_totals(METRICS, "a")
    assert after["queue"] == (0.004, 4.0)
    assert after["batch_rows"] == (8.0, 2.0)
    before = {k: (0.0, 0.0) for k in after}
    split = step_split(before, after)
    assert split["queue_ms"] == pytest.approx(1.0)
    assert split["mean_batch_rows"] == pytest.approx(4.0)
    assert "compute_ms" not in split
