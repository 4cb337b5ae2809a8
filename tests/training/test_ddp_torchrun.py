import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_processes_under_torchrun(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun ships with torch"
    out = tmp_path / "ddp"
    cmd = [
        torchrun,
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "modelpress",
        "train",
        "--recipe",
        str(REPO / "recipes" / "digits.yaml"),
        "--out",
        str(out),
        "--set",
        "training.epochs=2",
        "--set",
        "model.config.channels=[8]",
        "--set",
        "model.config.hidden=16",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["training"]["world_size"] == 2
    assert meta["training"]["epochs_run"] == 2
    # the distributed sampler gave each process half of the 1,257 training samples
    assert meta["training"]["samples_per_process"] == 629
    assert meta["metrics"]["test"]["accuracy"] > 0.5
    # rank 0 alone wrote: one checkpoint, no temporary siblings, one summary printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert run.stdout.count("checkpoint: ") == 1
