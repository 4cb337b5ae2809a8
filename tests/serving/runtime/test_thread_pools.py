"""Which thread pools a session runs on: the process's shared ones or its own (serving/runtime/thread_pools.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.runtime import thread_pools
from serving.runtime.thread_pools import choose_pool


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


def test_when_ort_refuses_the_shared_pools_sessions_get_their_own_and_say_why(fresh_process_state):
    ort = FakeOrt(fail="Global thread pools have already been created")
    first = choose_pool(True, 2, 1, create=ort)
    assert not first.shared
    assert "already been created" in first.warning
    assert choose_pool(True, 2, 1, create=ort) == first  # asked once: the answer is remembered
    assert ort.calls == [(2, 1)]


SHARED_PROCESS = """
import json, os, sys
from pathlib import Path
import numpy as np
from serving.manifest import read_manifest
from serving.runtime.onnx import OnnxModel, RuntimeOptions

def threads():
    return len(os.listdir("/proc/self/task"))

folder = Path(sys.argv[1])
shared = RuntimeOptions(shared_thread_pool=True, allow_spinning=True, intra_op_threads=2, inter_op_threads=1)
counts, options, outputs = [threads()], [], []
for _ in range(4):
    model = OnnxModel(read_manifest(folder), folder, shared)
    model.load()
    counts.append(threads())
    options.append(model.session_options())
    outputs.append(model.predict({"input": np.full((1, 64), 0.5, np.float32)}, ["logits"])["logits"].tolist())
own = OnnxModel(read_manifest(folder), folder, RuntimeOptions(intra_op_threads=1))
own.load()
options.append(own.session_options())
print(json.dumps({"threads": counts, "options": options, "outputs": outputs}))
"""


def test_sessions_on_the_shared_pools_add_no_threads_and_answer_alike(repo):
    """In a fresh process (the pools are process-wide): four sessions, one pool; a later own-pool ask shares it."""
    run = subprocess.run([sys.executable, "-c", SHARED_PROCESS, str(repo / "digits" / "1")], capture_output=True,
                         text=True, timeout=120, cwd=Path.cwd(), check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    counts = found["threads"]
    assert counts[1] > counts[0]  # the first session made the pools (an intra-op worker thread)
    assert counts[1:] == [counts[1]] * 4  # later sessions added none
    for options in found["options"]:
        assert (options["thread_pool"], options["intra_op_threads"], options["inter_op_threads"]) == (
            "shared",
            "2",
            "1",
        )
        assert options["intra_op_spinning"] == "1"
    assert all(out == found["outputs"][0] for out in found["outputs"])
    assert "refuses a pool of its own" in run.stderr
