import numpy as np
import pytest

from modelpress.training.data import DataError, cv_splits, load_splits, splits_for_checkpoint
from modelpress.training.recipe import DataConfig


def test_digits_splits_are_deterministic_disjoint_and_stratified():
    a = load_splits({}, seed=3)
    b = load_splits({}, seed=3)
    c = load_splits({}, seed=4)
    assert np.array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert a.X_train.dtype == np.float32
    assert a.y_train.dtype == np.int64
    assert a.input_shape == [64]
    assert a.labels == [str(i) for i in range(10)]
    # stratified: every class is in every split, in near-equal proportion
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 26
    assert counts.max() <= 28
    rows = {r.tobytes() for r in a.X_train}
    assert not any(r.tobytes() in rows for r in a.X_test)


def test_standardisation_uses_the_training_split_only():
    s = load_splits({}, seed=0)
    assert np.allclose(s.X_train.mean(axis=0), 0, atol=1e-4)
    assert not np.allclose(s.X_val.mean(axis=0), 0, atol=1e-3)
    assert s.preprocessing.type == "standardize"
    assert len(s.preprocessing.mean) == 64
    # always-blank pixels have std 0 on train: kept at 1 so nothing is divided by zero
    assert s.preprocessing.mean[0] == 0.0
    assert s.preprocessing.std[0] == 1.0
    raw = load_splits({"standardize": False}, seed=0)
    assert raw.preprocessing.type == "none"
    assert raw.X_train.max() == 16.0


def test_csv_with_text_labels(digits_csv):
    s = load_splits(DataConfig(source="csv", path=str(digits_csv), label="digit"), seed=0)
    assert s.input_shape == [64]
    assert s.num_outputs == 10
    assert sorted(s.labels) == sorted(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 300
    assert s.meta["sha256"]
    assert s.meta["path"].endswith("digits.csv")


def test_npz_keeps_sample_shape(tmp_path, digits_arrays):
    X, y = digits_arrays
    path = tmp_path / "img.npz"
    np.savez(path, X=X[:200].reshape(200, 8, 8), y=y[:200])
    s = load_splits(DataConfig(source="npz", path=str(path)), seed=0)
    assert s.input_shape == [8, 8]
    assert s.X_train.shape[1:] == (8, 8)
    assert s.labels == [str(i) for i in range(10)]


def test_npz_regression(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = X @ np.arange(5, dtype=np.float32)
    path = tmp_path / "reg.npz"
    np.savez(path, X=X, y=y)
    s = load_splits(DataConfig(source="npz", path=str(path)), seed=0, task="regression")
    assert s.y_train.dtype == np.float32
    assert s.num_outputs == 1
    assert s.labels is None


def _csv(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    return DataConfig(source="csv", path=str(path), label="y")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "label column 'y' not found"),
        ("a,y\n1,0\nx,1\n", r"line 3, column 'a': 'x' is not a number"),
        ("a,y\n1,0\nnan,1\n", r"line 3, column 'a': 'nan' is NaN"),
        ("a,y\n1,0\n,1\n", r"line 3, column 'a': '' is not a number"),
        ("a,y\n1,0\n2\n", "line 3 has 1 cells"),
        ("", "empty CSV"),
        ("a,y\n", "no data rows"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_splits(_csv(tmp_path, text), seed=0)


def test_bad_npz_and_missing_file(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, X=np.zeros((10, 3)), target=np.zeros(10))
    with pytest.raises(DataError, match="missing array 'y'"):
        load_splits(DataConfig(source="npz", path=str(path)), seed=0)
    np.savez(path, X=np.array([[1.0, np.nan]] * 30), y=np.arange(30) % 2)
    with pytest.raises(DataError, match="NaN or infinite"):
        load_splits(DataConfig(source="npz", path=str(path)), seed=0)
    with pytest.raises(DataError, match="does not exist"):
        load_splits(DataConfig(source="npz", path=str(tmp_path / "nope.npz")), seed=0)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable NPZ"):
        load_splits(DataConfig(source="npz", path=str(path)), seed=0)


def test_too_few_samples_per_class(tmp_path):
    cfg = _csv(tmp_path, "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)) + "5,2\n")
    with pytest.raises(DataError, match="only 1 samples"):
        load_splits(cfg, seed=0)


def test_cv_folds_cover_the_pool_without_test():
    folds = cv_splits(DataConfig(), seed=0, folds=3)
    assert len(folds) == 3
    test = folds[0].X_test
    sizes = [len(f.y_val) for f in folds]
    assert sum(sizes) == 1797 - len(test)
    # per-fold statistics from that fold's training part
    assert folds[0].preprocessing.mean != folds[1].preprocessing.mean


def test_splits_for_checkpoint_reproduce_and_detect_changes(trained_ckpt, tmp_path, digits_csv):
    from modelpress.training.checkpoint import read_meta

    meta = read_meta(trained_ckpt)
    again = splits_for_checkpoint(meta)
    fresh = load_splits(DataConfig(), seed=meta.data["seed"])
    assert np.array_equal(again.X_test, fresh.X_test)
    assert np.array_equal(again.y_val, fresh.y_val)

    copy = tmp_path / "d.csv"
    copy.write_text(digits_csv.read_text())
    s = load_splits(DataConfig(source="csv", path=str(copy), label="digit"), seed=0)
    edited = meta.model_copy(update={"data": s.meta, "preprocessing": s.preprocessing})
    assert np.array_equal(splits_for_checkpoint(edited).X_test, s.X_test)
    copy.write_text(copy.read_text() + ",".join(["0"] * 64 + ["one"]) + "\n")
    with pytest.raises(DataError, match="changed since training"):
        splits_for_checkpoint(edited)
