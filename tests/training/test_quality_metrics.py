import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from modelpress.training.metrics import classification_metrics, higher_is_better, regression_metrics


def test_classification_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: P=1/2 R=1/2, class 1: P=2/3 R=1, class 2: P=1 R=1/2
    assert m["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_absent_class_gets_a_row_when_labels_given():
    m = classification_metrics([0, 0], [0, 0], labels=[0, 1, 2])
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert m["accuracy"] == 1.0


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="equally long"):
        classification_metrics([0, 1], [0])


def test_regression_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + rng.normal(scale=0.3, size=50)
    m = regression_metrics(y, p)
    assert m["mse"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["mae"] == pytest.approx(np.mean(np.abs(p - y)))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert regression_metrics([1.0, 1.0], [1.0, 1.0])["r2"] == 1.0


def test_direction_of_metrics():
    assert higher_is_better("val_accuracy")
    assert higher_is_better("r2")
    assert not higher_is_better("val_loss")
    assert not higher_is_better("val_mse")
