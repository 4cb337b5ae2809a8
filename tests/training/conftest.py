import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

# Tiny budgets: a handful of epochs of small models, so the whole file set stays within its time share.
TINY = [
    "training.epochs=2",
    "training.batch_size=128",
    "model.architecture=mlp",
    "model.config.hidden=[16]",
]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Other suites run beside ours on 2 cores; one thread avoids oversubscription and keeps results exact.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_recipe():
    from modelpress.training.recipe import recipe_from_dict

    def make(*overrides: str):
        return recipe_from_dict({}, [*TINY, *overrides])

    return make


@pytest.fixture(scope="session")
def digits_arrays():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target


@pytest.fixture(scope="session")
def digits_csv(tmp_path_factory, digits_arrays):
    """The first 300 digits as CSV with textual class names in a 'digit' column."""
    X, y = digits_arrays
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    path = tmp_path_factory.mktemp("csv") / "digits.csv"
    header = ",".join([f"p{i}" for i in range(64)] + ["digit"])
    lines = [header] + [",".join([*(f"{v:g}" for v in row), names[t]]) for row, t in zip(X[:300], y[:300], strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory, digits_arrays):
    X, y = digits_arrays
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    np.savez(path, X=X[:300], y=y[:300])
    return path


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory):
    """A tiny MLP checkpoint on digits, trained once for the tests that only read one."""
    from modelpress.training.api import train_recipe
    from modelpress.training.recipe import recipe_from_dict

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ckpt") / "mlp"
    train_recipe(recipe_from_dict({}, TINY), out, progress=False)
    torch.set_num_threads(before)
    return out


@pytest.fixture
def cli():
    """Run ``python -m modelpress ARGS`` in a subprocess, as a user would (one torch thread)."""

    def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "modelpress", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    return run


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for this session (skipped, with the reason, where none can start)."""
    from tests.training import postgres_server

    reason = postgres_server.why_not()
    if reason is not None:
        pytest.skip(reason)
    server = postgres_server.start()
    yield server
    postgres_server.stop(server)


@pytest.fixture
def fresh_database(postgres):
    """The URL of a new, empty database on the session's server."""
    import uuid

    return postgres.create_database(f"t_{uuid.uuid4().hex}")
