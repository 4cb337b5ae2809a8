"""Several `modelpress tune` processes on one study, as a Kubernetes indexed Job runs them: started together on a
fresh database, one killed mid-trial, and the bad storage inputs a user meets first."""

import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from tests.training.conftest import REPO

RECIPE = {
    "name": "workers",
    "model": {"architecture": "mlp", "config": {"hidden": [16]}},
    "training": {"epochs": 1, "batch_size": 128},
    "tune": {
        "sampler": "random",
        "pruner": "none",
        "epochs": 1,
        "heartbeat_interval": 1,
        "grace_period": 6,  # seconds; generous: a starved test machine delays heartbeats
        "space": {"training.optimizer.lr": {"low": 0.001, "high": 0.05, "log": True}},
    },
}
DEADLINE_S = 180


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


def _start(recipe, out, storage, trials, *extra):
    args = ["tune", "--recipe", str(recipe), "--out", str(out), "--storage", storage, "--trials", str(trials)]
    return subprocess.Popen(
        [sys.executable, "-m", "modelpress", *args, "--threads", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _finish(proc):
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"worker {proc.pid} still running after {DEADLINE_S} s: {err[-2000:]}")
    return proc.returncode, out, err


def _wait_for(condition, what, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def watch(fresh_database):
    """Load the study as the test sees it, through one storage: a new one per poll would open a connection each."""
    storage = optuna.storages.RDBStorage(fresh_database)
    yield lambda: optuna.load_study(study_name="workers", storage=storage)
    storage.engine.dispose()


@pytest.mark.slow
def test_three_workers_started_together_fill_the_study_once(fresh_database, watch, recipe_file, tmp_path):
    storage = fresh_database
    out = tmp_path / "out"  # one --out for all, as the Job's pods share the models volume
    workers = [_start(recipe_file, out, storage, 7, "--no-progress") for _ in range(3)]
    runs = [_finish(w) for w in workers]
    for code, _, err in runs:
        assert code == 0, err[-2000:]
    study = watch()
    assert len(study.trials) == 7  # --trials is the whole study's size, not each worker's
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    writers = [o for _, o, _ in runs if "best recipe:" in o]
    assert len(writers) == 1, [o[-500:] for _, o, _ in runs]
    assert sum("results written by worker" in o for _, o, _ in runs) == 2
    assert (out / "checkpoint" / "model.safetensors").is_file()
    assert len((out / "trials.csv").read_text().splitlines()) == 8


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_a_failed_trial_and_the_others_finish(
    fresh_database, watch, recipe_file, tmp_path
):
    storage = fresh_database
    out = tmp_path / "out"
    # the victim's trials train for many epochs, so it is surely inside one when it is killed
    long_trials = ["--set", "tune.epochs=2000", "--set", "training.early_stopping.enabled=false"]
    victim = _start(recipe_file, out, storage, 6, "--no-progress", "--no-train-best", *long_trials)
    victim_id = f"{socket.gethostname()}:{victim.pid}"

    def victim_trial():
        try:
            trials = watch().get_trials(deepcopy=False)
        except KeyError:  # the study does not exist yet
            return None
        mine = [t for t in trials if t.user_attrs.get("worker") == victim_id]
        return mine[0] if mine else None

    _wait_for(lambda: victim_trial() is not None, "the victim's first trial")
    others = [_start(recipe_file, out, storage, 6, "--no-progress", "--no-train-best") for _ in range(2)]
    # killed as the others start: waiting for their first trial too would let the victim's endless trial hog one
    # of the 2 cores meanwhile (37 s measured); on a starved machine its heartbeat would even go stale first
    assert victim_trial().state == optuna.trial.TrialState.RUNNING
    victim.send_signal(signal.SIGKILL)
    assert _finish(victim)[0] == -signal.SIGKILL
    runs = [_finish(w) for w in others]
    for code, _, err in runs:
        assert code == 0, err[-2000:]
    study = watch()
    assert len(study.trials) == 6
    assert victim_trial().state == optuna.trial.TrialState.FAIL  # failed by the survivors, once its heartbeat stopped
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 5 + ["FAIL"]
    assert sum("best recipe:" in o for _, o, _ in runs) == 1
    assert (out / "best_recipe.yaml").is_file()


@pytest.mark.slow
def test_wrong_credentials_are_one_line_and_exit_2(fresh_database, recipe_file, tmp_path):
    """The CLI's face of the storage errors (each kind is checked in-process in test_study.py)."""
    storage = fresh_database.replace(":tune-secret@", ":wrong@")
    code, _, err = _finish(_start(recipe_file, tmp_path / "out", storage, 2, "--storage-wait", "30"))
    assert code == 2
    assert err.startswith("error: storage postgresql+psycopg2://modelpress:***@127.0.0.1:"), err
    assert "wrong credentials" in err
    assert len(err.strip().splitlines()) == 1
    assert "wrong@" not in err
    assert not (tmp_path / "out").exists()
