"""Small trained checkpoints on the real digits data (scikit-learn's bundled copy), built in fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modelpress.export.data import EvalData
from modelpress.training.checkpoint import CheckpointMeta, InputSpec, PreprocessingSpec, save_checkpoint
from modelpress.training.models import build_model

# Small configs so export and quantization run in seconds; the cnn is the recipe's shape, narrower.
TINY_CONFIGS = {
    "mlp": {"hidden": [32], "dropout": 0.0},
    "cnn": {"channels": [8, 16], "convs_per_block": 1, "hidden": 32, "dropout": 0.0},
    "rnn": {"hidden_size": 16, "dropout": 0.0},
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.0},
}


def digits_data(seed: int = 0) -> tuple[EvalData, np.ndarray, list[float], list[float]]:
    """Standardised digits: export's data, the training labels, and the mean/std the checkpoint records."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order].astype(np.float32), y[order].astype(np.int64)
    train, test = slice(0, 1400), slice(1400, None)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0) + 1e-3
    X = (X - mean) / std
    data = EvalData(calibration=X[train], test_x=X[test], test_y=y[test])
    return data, y[train], mean.tolist(), std.tolist()


def train_checkpoint(architecture: str, out_dir: Path, *, epochs: int = 6, seed: int = 0) -> tuple[Path, EvalData]:
    data, train_y, mean, std = digits_data()
    torch.manual_seed(seed)
    config = TINY_CONFIGS[architecture]
    model = build_model(architecture, config, input_shape=[64], num_outputs=10, task="classification")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, y = torch.from_numpy(data.calibration), torch.from_numpy(train_y)
    model.train()
    threads = torch.get_num_threads()
    # One thread: on a shared 2-core machine, tiny batches with 2 threads were 70x slower (oversubscription).
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(X)).split(64):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    meta = CheckpointMeta(
        architecture=architecture,
        arch_config=config,
        input_spec=InputSpec(shape=[64]),
        num_outputs=10,
        labels=[str(i) for i in range(10)],
        preprocessing=PreprocessingSpec(type="standardize", mean=mean, std=std),
        data={"source": "digits"},
    )
    return save_checkpoint(model, meta, out_dir), data
