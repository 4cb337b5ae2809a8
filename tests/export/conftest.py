import pytest
import torch

from tests.export.tiny_checkpoints import train_checkpoint

# Enough epochs for the tiny nets to be clearly better than chance, few enough to stay in budget.
EPOCHS = {"mlp": 6, "cnn": 3, "rnn": 4, "transformer": 2}


@pytest.fixture(scope="session")
def checkpoint_for(tmp_path_factory):
    """Train each tiny architecture once per session: ``checkpoint_for("cnn") -> (path, EvalData)``."""
    cache = {}

    def get(architecture):
        if architecture not in cache:
            out = tmp_path_factory.mktemp(f"ckpt-{architecture}") / "checkpoint"
            cache[architecture] = train_checkpoint(architecture, out, epochs=EPOCHS[architecture])
        return cache[architecture]

    return get


@pytest.fixture
def one_torch_thread():
    """Small batches on a shared 2-core machine train far faster on one thread than on two that contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
