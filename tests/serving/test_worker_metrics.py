"""One metrics view across workers: `modelpress serve --workers 2` counts every request in every scrape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from modelpress.serving.worker_metrics import pid_alive, prepare_dir, reap_dead
from tests.serving.models import FEATURES, publish_classifier
from tests.serving.server_process import server_process

BODY = {"instances": [[0.5] * FEATURES]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workers-repo")
    publish_classifier(root)
    return root


def requests_per_worker(metrics_dir: Path) -> dict[int, float]:
    """Successful digits requests counted in each worker's own counter file (pid → count)."""
    counts = {}
    for f in metrics_dir.glob("counter_*.db"):
        pid = int(f.stem.rsplit("_", 1)[1])
        counts[pid] = sum(
            value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(f))
            if '"modelpress_requests_total"' in key and '"outcome": "success"' in key
        )
    return counts


def worker_pids(metrics_dir: Path) -> set[int]:
    """Every worker that has loaded the model (each writes its histograms at load)."""
    return {int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("histogram_*.db")}


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to uvicorn's supervisor, which stops its workers (a SIGKILL would leave them running)."""
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)


def scrape(url: str) -> dict[str, float]:
    """``name{labels}`` → value of the digits samples in one fresh-connection scrape."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model") == "digits":
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("model", "version"))
                out[f"{s.name}{{{labels}}}"] = s.value
    return out


def send(url: str, count: int) -> None:
    def one(_: int) -> None:  # a new connection per request, so the kernel hands them to either worker
        assert httpx.post(f"{url}/v1/models/digits:predict", json=BODY, timeout=30).status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


@pytest.mark.slow
def test_two_workers_one_view(repo, tmp_path):
    metrics_dir = tmp_path / "metrics"
    command = [sys.executable, "-m", "modelpress", "serve", "--workers", "2"]
    with server_process(command, repo, ready_s=90, MODELPRESS_METRICS_DIR=str(metrics_dir)) as server:
        try:
            check_one_view(server.url, metrics_dir)
        finally:
            stop(server.proc)


def check_one_view(url: str, metrics_dir: Path) -> None:
    """Requests until both workers served some; every scrape and stats call sees them all; a worker killed."""
    sent = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until both workers have served some (bounded: 60 s)
        send(url, 20)
        sent += 20
        per_worker = requests_per_worker(metrics_dir)
        if len([n for n in per_worker.values() if n > 0]) >= 2:
            break
    assert len([n for n in per_worker.values() if n > 0]) == 2, f"one worker took every request: {per_worker}"
    assert sum(per_worker.values()) == sent
    success = "modelpress_requests_total{outcome=success,protocol=v1}"
    for _ in range(6):  # whichever worker answers the scrape, it shows the whole server
        seen = scrape(url)
        assert seen[success] == sent
        assert seen["modelpress_request_duration_seconds_count{outcome=success,protocol=v1}"] == sent
        assert seen["modelpress_batch_size_rows_sum{}"] == sent
        assert seen["modelpress_inflight_requests{}"] == 0
        stats = httpx.get(f"{url}/v2/models/digits/stats", timeout=10).json()["model_stats"][0]
        assert stats["inference_count"] == sent
        assert stats["inference_stats"]["success"]["count"] == sent
        assert stats["last_inference"] > 0

    # A worker killed: uvicorn starts another; its live gauges go, its counts stay in the sums.
    victim = max(per_worker, key=per_worker.get)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(worker_pids(metrics_dir)) < 3:
        time.sleep(0.2)  # the replacement writes its histogram file once it has loaded the model
    assert len(worker_pids(metrics_dir)) == 3, "no replacement worker came up"
    seen = scrape(url)
    assert seen[success] == sent
    assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
    send(url, 10)
    assert scrape(url)[success] == sent + 10


def test_reap_dead_removes_only_dead_live_gauges(tmp_path):
    prepare_dir(tmp_path)
    gone = 2**22 + 12345  # above the default pid_max of 4194304: no such process
    assert not pid_alive(gone)
    for name in (f"gauge_livesum_{gone}.db", f"gauge_livesum_{os.getpid()}.db", f"counter_{gone}.db"):
        (tmp_path / name).write_bytes(b"")
    assert reap_dead(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{gone}.db", f"gauge_livesum_{os.getpid()}.db"]
    prepare_dir(tmp_path)  # a new run starts from an empty folder
    assert list(tmp_path.iterdir()) == []
