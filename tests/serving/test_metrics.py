"""Prometheus metrics: fixed names and labels, what is (not) counted, custom buckets, promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import client_for
from tests.serving.models import FEATURES

pytestmark = pytest.mark.anyio

BODY = {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32", "data": [0.5] * 2 * FEATURES}]}


def samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(found: dict, name: str, **labels: str) -> float:
    matches = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert matches, f"no sample {name} {labels}"
    return sum(matches)


async def _traffic(c) -> str:
    for _ in range(3):
        assert (await c.post("/v2/models/digits/infer", json=BODY)).status_code == 200
    assert (await c.post("/v1/models/digits:predict", json={"instances": [[1.0] * FEATURES]})).status_code == 200
    assert (await c.post("/v2/models/digits/infer", json={"inputs": [{"name": "x"}]})).status_code == 400
    assert (await c.post("/v2/models/ghost/infer", json=BODY)).status_code == 404
    for _ in range(5):  # health and metrics must not count as requests
        await c.get("/v2/health/ready")
        await c.get("/v2/health/live")
        await c.get("/metrics")
    r = await c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_request_metrics_by_protocol_and_outcome(repo):
    async with client_for(repo) as c:
        found = samples(await _traffic(c))
    labels = {"model": "digits", "version": "1"}
    assert value(found, "modelpress_requests_total", protocol="v2", outcome="success", **labels) == 3
    assert value(found, "modelpress_requests_total", protocol="v1", outcome="success", **labels) == 1
    assert value(found, "modelpress_requests_total", protocol="v2", outcome="client_error", **labels) == 1
    assert value(found, "modelpress_requests_total", model="_unknown", outcome="client_error") == 1
    total = sum(s.value for s in found["modelpress_requests_total"])
    assert total == 6  # 5 health/metrics rounds were not counted
    assert value(found, "modelpress_request_duration_seconds_count", protocol="v2", outcome="success", **labels) == 3
    assert value(found, "modelpress_inferences_total", outcome="success", **labels) == 7  # rows: 3x2 + 1
    assert value(found, "modelpress_queue_duration_seconds_count", **labels) == 4
    assert value(found, "modelpress_compute_duration_seconds_count", **labels) >= 4  # + warm-up is not counted
    assert value(found, "modelpress_batch_size_rows_sum", **labels) == 7
    assert value(found, "modelpress_inflight_requests", **labels) == 0
    assert value(found, "modelpress_queue_depth", **labels) == 0


async def test_model_gauges_info_and_process_metrics(repo):
    async with client_for(repo) as c:
        found = samples(await _traffic(c))
    size = sum(p.stat().st_size for p in (repo / "digits" / "1").iterdir() if p.name != "manifest.json")
    assert value(found, "modelpress_model_size_bytes", model="digits", version="1") == size
    assert value(found, "modelpress_model_memory_bytes", model="digits", version="1") >= 0
    (info,) = [s for s in found["modelpress_model_info"] if s.labels["model"] == "digits"]
    assert info.labels["provider"] == "CPUExecutionProvider"
    assert info.labels["providers"] == "CPUExecutionProvider"
    assert info.labels["precision"] == "fp32"
    assert value(found, "process_resident_memory_bytes") > 0
    assert "process_cpu_seconds_total" in found


async def test_gpu_metric_families_exist_without_a_gpu(repo):
    async with client_for(repo) as c:
        text = (await c.get("/metrics")).text
    assert "# TYPE modelpress_gpu_memory_used_bytes gauge" in text
    assert "# TYPE modelpress_gpu_memory_total_bytes gauge" in text


async def test_custom_buckets_from_settings(repo):
    async with client_for(repo, metrics_buckets=[0.01, 0.5, 2.0]) as c:
        await c.post("/v2/models/digits/infer", json=BODY)
        found = samples((await c.get("/metrics")).text)
    les = {s.labels["le"] for s in found["modelpress_request_duration_seconds_bucket"]}
    assert les == {"0.01", "0.5", "2.0", "+Inf"}


async def test_each_app_has_its_own_registry(repo):
    async with client_for(repo) as a, client_for(repo) as b:
        await a.post("/v2/models/digits/infer", json=BODY)
        text_b = (await b.get("/metrics")).text
    assert "modelpress_requests_total{" not in text_b


async def test_names_pass_promtool(repo):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; `make test` installs it)")
    async with client_for(repo) as c:
        text = await _traffic(c)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_series_write_the_same_series_as_labels():
    """The hot path's cached series are the registry's own children, so /metrics shows what they count."""
    from prometheus_client import generate_latest

    from modelpress.serving.metrics import Metrics

    metrics = Metrics(process=False, gpu=False)
    series = metrics.series("digits", "3")
    assert series.queue_duration is metrics.queue_duration.labels("digits", "3")
    series.request_done("v2", "success", 0.002, rows=4)
    series.request_done("v2", "success", 0.004, rows=0)
    series.request_done("v1", "client_error", 0.001, rows=1)
    series.inflight.inc()
    found = samples(generate_latest(metrics.registry).decode())
    labels = {"model": "digits", "version": "3"}
    assert value(found, "modelpress_requests_total", protocol="v2", outcome="success", **labels) == 2
    assert value(found, "modelpress_request_duration_seconds_sum", protocol="v2", **labels) == pytest.approx(0.006)
    assert value(found, "modelpress_inferences_total", outcome="success", **labels) == 4
    assert value(found, "modelpress_inferences_total", outcome="client_error", **labels) == 1
    assert value(found, "modelpress_inflight_requests", **labels) == 1
