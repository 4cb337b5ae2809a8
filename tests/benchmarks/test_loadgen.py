import asyncio
import json

import numpy as np
import pytest

from benchmarks.loadgen import run_step
from benchmarks.payloads import plain_json, v2_binary, v2_json
from benchmarks.processes import free_port, python_module, rss_bytes, running_server
from benchmarks.scrape import histogram_totals, step_split


@pytest.fixture(scope="module")
def echo_url():
    port = free_port()
    with running_server(python_module("benchmarks.baselines.echo_server", "--port", str(port)), port) as proc:
        assert rss_bytes(proc.pid) > 10 * 2**20
        yield f"http://127.0.0.1:{port}"


def test_load_step_is_bounded_and_counts_every_answer(echo_url):
    payload = v2_json("m", "input", np.ones((1, 4), np.float32))
    result = asyncio.run(run_step(echo_url, payload, concurrency=4, duration=1.0, warmup=0.2, max_requests=400))
    assert result.errors == 0
    assert 0 < result.requests <= 400
    assert result.status_counts == {"200": result.requests}
    assert result.p50_ms <= result.p99_ms
    assert result.throughput_rps > 0


def test_refused_connections_are_errors_not_crashes():
    payload = v2_json("m", "input", np.ones((1, 4), np.float32))
    port = free_port()  # nothing listens there
    result = asyncio.run(run_step(f"http://127.0.0.1:{port}", payload, concurrency=2, duration=0.3, warmup=0.0,
                                  max_requests=50))  # fmt: skip
    assert result.errors == result.requests > 0
    assert result.p50_ms is None
    assert "ConnectError" in result.status_counts


def test_binary_payload_layout():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    payload = v2_binary("m", "input", array, output="logits")
    length = int(payload.headers["Inference-Header-Content-Length"])
    header = json.loads(payload.body[:length])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == 24
    assert header["outputs"] == [{"name": "logits", "parameters": {"binary_data": True}}]
    assert np.array_equal(np.frombuffer(payload.body[length:], "<f4").reshape(2, 3), array)


def test_plain_json_payload():
    payload = plain_json("/predict", np.zeros((2, 2), np.float32))
    assert json.loads(payload.body) == {"instances": [[0.0, 0.0], [0.0, 0.0]]}


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
