"""Which thread pools a session runs on: the process's shared ones or its own (serving/runtime/thread_pools.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelpress.serving.runtime import thread_pools
from modelpress.serving.runtime.thread_pools import choose_pool


@pytest.fixture
def fresh_process_state(monkeypatch):
    """This process's record of the shared pools, as in a process that has not made them yet."""
    monkeypatch.setattr(thread_pools, "_sizes", None)
    monkeypatch.setattr(thread_pools, "_failure", None)


class FakeOrt:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail = fail

    def __call__(self, intra: int, inter: int) -> None:
        self.calls.append((intra, inter))
        if self.fail:
            raise RuntimeError(self.fail)


def test_the_first_shared_ask_creates_the_pools_once(fresh_process_state):
    ort = FakeOrt()
    assert choose_pool(True, 2, 1, create=ort) == thread_pools.PoolChoice(True)
    assert choose_pool(True, 2, 1, create=ort) == thread_pools.PoolChoice(True)
    assert ort.calls == [(2, 1)]
    assert thread_pools.shared_pool_sizes() == (2, 1)


def test_other_sizes_or_an_own_pool_get_the_shared_pools_with_a_warning(fresh_process_state):
    ort = FakeOrt()
    choose_pool(True, 2, 1, create=ort)
    other = choose_pool(True, 1, 2, create=ort)
    assert other.shared
    assert "2 intra-op / 1 inter-op threads, not the 1 / 2 asked for" in other.warning
    own = choose_pool(False, 2, 1, create=ort)
    assert own.shared
    assert "refuses a pool of its own" in own.warning
    assert ort.calls == [(2, 1)]


def test_own_pools_leave_the_process_alone(fresh_process_state):
    ort = FakeOrt()
    assert choose_pool(False, 2, 1, create=ort) == thread_pools.PoolChoice(False)
    assert ort.calls == []
    assert thread_pools.shared_pool_sizes() is None


def test_pools_someone_else_created_are_used_whatever_was_asked(fresh_process_state):
    """ORT refuses a pool of its own to every session once global pools exist, so they are used, with a warning."""
    ort = FakeOrt(fail="[ONNXRuntimeError] : 1 : FAIL : Global thread pools have already been created, cannot ...")
    first = choose_pool(True, 2, 1, create=ort)
    assert first.shared
    assert "of sizes it did not choose" in first.warning
    assert choose_pool(False, 1, 1, create=ort).shared
    assert ort.calls == [(2, 1)]  # asked once: the answer is remembered


def test_when_ort_cannot_make_the_pools_sessions_get_their_own_and_say_why(fresh_process_state):
    ort = FakeOrt(fail="out of threads")
    first = choose_pool(True, 2, 1, create=ort)
    assert not first.shared
    assert "could not create its shared thread pools (out of threads)" in first.warning
    assert choose_pool(False, 2, 1, create=ort) == thread_pools.PoolChoice(False)


def test_the_server_settings_reach_the_runtime(repo, monkeypatch, thread_settings_unset):
    from modelpress.serving.app import onnx_runtime_factory
    from modelpress.serving.manifest import read_manifest
    from modelpress.serving.settings import Settings

    version_dir = repo / "digits" / "1"
    cases = [
        (Settings(repository=repo), None, (True, True)),
        (Settings(repository=repo, allow_spinning=False), None, (False, False)),
        (Settings(repository=repo), 1.0, (False, False)),  # a CPU quota: spinning would be throttled
        (Settings(repository=repo, allow_spinning=True), 1.0, (True, True)),  # asked for: given
    ]
    for settings, quota, want in cases:
        monkeypatch.setattr("modelpress.serving.app.cpu_quota", lambda quota=quota: quota)
        model = onnx_runtime_factory(settings)(read_manifest(version_dir), version_dir)  # built, not loaded
        assert (model.options.shared_thread_pool, model.options.allow_spinning) == want, (settings, quota)


THREADS_PROCESS = """
import json, os, sys
from pathlib import Path
import numpy as np
from modelpress.serving.manifest import read_manifest
from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions

def threads():
    return len(os.listdir("/proc/self/task"))

folder, shared = Path(sys.argv[1]), sys.argv[2] == "shared"
options = RuntimeOptions(shared_thread_pool=shared, allow_spinning=shared, intra_op_threads=2, inter_op_threads=1)
counts, options_seen, outputs = [threads()], [], []
models = []  # kept alive: a freed session takes its own pool's threads with it
for _ in range(4):
    model = OnnxModel(read_manifest(folder), folder, options)
    model.load()
    models.append(model)
    counts.append(threads())
    options_seen.append(model.session_options())
    outputs.append(model.predict({"input": np.full((1, 64), 0.5, np.float32)}, ["logits"])["logits"].tolist())
if shared:  # a later ask for a pool of its own gets the shared one (ORT allows nothing else)
    own = OnnxModel(read_manifest(folder), folder, RuntimeOptions(intra_op_threads=1))
    own.load()
    options_seen.append(own.session_options())
print(json.dumps({"threads": counts, "options": options_seen, "outputs": outputs}))
"""


def _threads_in_a_fresh_process(repo: Path, kind: str) -> tuple[dict, str]:
    run = subprocess.run([sys.executable, "-c", THREADS_PROCESS, str(repo / "digits" / "1"), kind],
                         capture_output=True, text=True, timeout=120, cwd=Path.cwd(), check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stderr


def test_sessions_on_the_shared_pools_add_no_threads_and_answer_alike(repo):
    """Fresh processes (the pools are process-wide): four sessions with pools of their own add a thread each
    (ORT's intra-op worker); on the shared pools they add none after the first."""
    own, _ = _threads_in_a_fresh_process(repo, "own")
    shared, stderr = _threads_in_a_fresh_process(repo, "shared")
    assert own["threads"][4] - own["threads"][1] >= 3  # three more sessions, three more pools
    assert shared["threads"][1:] == [shared["threads"][1]] * 4  # one pool for the four
    assert [o["thread_pool"] for o in own["options"]] == ["own"] * 4
    assert [o["thread_pool"] for o in shared["options"]] == ["shared"] * 5
    assert shared["options"][0]["intra_op_threads"] == "2"
    assert all(out == own["outputs"][0] for out in own["outputs"] + shared["outputs"])
    assert "refuses a pool of its own" in stderr
