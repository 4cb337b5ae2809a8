"""The samples export needs: training inputs to calibrate on, held-out inputs and labels to check against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelpress.export.errors import ExportError

if TYPE_CHECKING:
    from modelpress.training.checkpoint import CheckpointMeta


@dataclass(frozen=True)
class EvalData:
    """Preprocessed float32 inputs ``[n, *input_shape]``; ``test_y`` is int64 for classification."""

    calibration: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    # A graph with several inputs calibrates on one array per input name (an imported model's NPZ);
    # ``calibration`` then holds the first of them, for what counts samples.
    calibration_by_input: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if len(self.calibration) == 0 or len(self.test_x) == 0:
            raise ExportError("export needs at least one calibration and one test sample")
        if len(self.test_x) != len(self.test_y):
            raise ExportError(f"test split has {len(self.test_x)} inputs but {len(self.test_y)} labels")

    @classmethod
    def from_splits(cls, splits: Any) -> EvalData:
        """Build from ``modelpress.training.data.Splits`` (X_train calibrates; X_test/y_test check)."""
        return cls(
            calibration=np.ascontiguousarray(splits.X_train, dtype=np.float32),
            test_x=np.ascontiguousarray(splits.X_test, dtype=np.float32),
            test_y=np.asarray(splits.y_test),
        )


def eval_data_for_checkpoint(meta: CheckpointMeta) -> EvalData:
    """Recreate the checkpoint's splits (same data source, seed and preprocessing) through the training stage."""
    try:
        from modelpress.training.data import splits_for_checkpoint
    except ImportError as e:
        raise ExportError(f"the training stage's data module is not available ({e}); pass the data explicitly") from e
    try:
        splits = splits_for_checkpoint(meta)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise ExportError(f"cannot rebuild the checkpoint's data splits: {e}") from e
    return EvalData.from_splits(splits)
