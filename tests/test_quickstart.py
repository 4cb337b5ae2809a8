"""The README's path end to end, as a new user runs it: pipeline → compare → serve → V2, V1 and /metrics.

Every verb runs in its own subprocess through the installed ``modelpress`` entry point, on the project's own
default recipe narrowed to a tiny training budget.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.serving.server_process import server_process

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "training.epochs=10", "--set", "model.config.channels=[8, 16]", "--set",
        "model.config.convs_per_block=1", "--set", "model.config.hidden=32"]  # fmt: skip


def modelpress(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    return subprocess.run([sys.executable, "-m", "modelpress", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    work = tmp_path_factory.mktemp("quickstart")
    result = modelpress("pipeline", "--recipe", "recipes/digits.yaml", "--repository", str(work / "repo"),
                        "--workdir", str(work / "work"), "--quiet", *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained cnn" in result.stdout  # the training metrics table, split by split
    assert "test" in result.stdout
    return work / "repo"


@pytest.mark.slow
def test_compare_reports_every_variant_against_pytorch(repository, tmp_path):
    result = modelpress("compare", str(repository), "--quick", "--json", str(tmp_path / "r.json"),
                        "--plot", str(tmp_path / "r.png"), "--html", str(tmp_path / "r.html"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    rows = {row["model"]: row for row in report["rows"]}
    assert set(rows) == {"digits", "digits-fp16", "digits-int8"}
    assert rows["digits"]["is_baseline"]
    assert rows["digits-int8"]["size_ratio"] > 1  # graph overhead weighs on a model this tiny
    assert all(row["status"] == "ok" and row["accuracy"] > 0.5 for row in rows.values())
    assert report["baselines"]["digits"]["latency_p50_ms"] > 0  # PyTorch eager, measured in the same run
    assert all(row["speedup_vs_torch"] > 0 for row in rows.values())
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert '"model":"digits-int8"' in (tmp_path / "r.html").read_text()  # the interactive report, data inline


@pytest.mark.slow
def test_serve_answers_v2_v1_and_metrics_then_drains(repository):
    # 90 s, not the default 60, for the pipeline's variants to load and warm up (this test's budget before the helper).
    with server_process([sys.executable, "-m", "modelpress", "serve"], repository, ready_s=90) as server:
        proc, url = server.proc, server.url
        digits = load_digits()
        raw = digits.data[:3]
        v1 = httpx.post(f"{url}/v1/models/digits-int8:predict", json={"instances": raw.tolist()}, timeout=30)
        assert v1.status_code == 200, v1.text
        labels = [p["label"] for p in v1.json()["predictions"]]
        assert labels == [str(t) for t in digits.target[:3]]  # the first three digits are easy: 0, 1, 2
        # V2 takes the standardised features, as the manifest documents; the server's V1 did that step above.
        manifest = json.loads(next((repository / "digits").glob("*/manifest.json")).read_text())
        mean, std = np.array(manifest["preprocessing"]["mean"]), np.array(manifest["preprocessing"]["std"])
        x = ((raw - mean) / std).astype(np.float32)
        body = {"id": "q1", "inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32",
                                        "data": x.ravel().tolist()}]}  # fmt: skip
        v2 = httpx.post(f"{url}/v2/models/digits/infer", json=body, timeout=30)
        assert v2.status_code == 200, v2.text
        assert v2.json()["id"] == "q1"
        logits = np.array(v2.json()["outputs"][0]["data"]).reshape(3, 10)
        assert logits.argmax(1).tolist() == digits.target[:3].tolist()
        bad = httpx.post(f"{url}/v2/models/digits/infer", json={"inputs": [{**body["inputs"][0], "shape": [3, 63]}]})
        assert bad.status_code == 400
        assert "input" in bad.json()["error"]
        explained = httpx.post(f"{url}/v1/models/digits-int8:explain", json={"instances": raw[:1].tolist()}, timeout=30)
        assert explained.status_code == 200, explained.text
        assert len(explained.json()["explanations"][0]["attributions"]) == 64  # one per pixel
        page = httpx.get(f"{url}/", follow_redirects=True, timeout=10)
        assert page.status_code == 200
        assert "/ui/static/app.js" in page.text
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'modelpress_requests_total{model="digits",outcome="success",protocol="v2",version="1"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal it caught once the drain is done, so the exit status says SIGTERM.
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
