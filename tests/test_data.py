"""data: DataLoader coverage and reproducibility, load_digits, and load_mnist on IDX files
written here (good ones, gzipped and raw, and broken ones)."""

import builtins
import gzip
import struct
import tracemalloc

import numpy as np
import pytest

import gradtensor as gt
from gradtensor.data import DataLoader, load_digits, load_mnist, stratified_split

# -- DataLoader -----------------------------------------------------------------------------------


def _dataset(n=23):
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return X, y


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_per_epoch(shuffle):
    X, y = _dataset()
    loader = DataLoader(X, y, batch_size=5, shuffle=shuffle, seed=1)
    assert len(loader) == 5
    for _ in range(3):
        seen = []
        sizes = []
        for xb, yb in loader:
            assert isinstance(xb, gt.Tensor) and isinstance(yb, gt.Tensor)
            assert xb.dtype == gt.float32 and yb.dtype == gt.int64
            np.testing.assert_array_equal(xb.data[:, 0], 2 * yb.data)  # rows stay paired
            seen += yb.tolist()
            sizes.append(len(yb))
        assert sorted(seen) == list(range(23))
        assert sizes == [5, 5, 5, 5, 3]
        assert (seen != list(range(23))) == shuffle


def test_drop_last():
    X, y = _dataset()
    loader = DataLoader(X, y, batch_size=5, drop_last=True, shuffle=True, seed=0)
    assert len(loader) == 4
    batches = [yb.tolist() for _, yb in loader]
    assert len(batches) == 4 and all(len(b) == 5 for b in batches)
    assert len(set(sum(batches, []))) == 20
    assert len(DataLoader(X, y, batch_size=30, drop_last=True)) == 0
    assert list(DataLoader(X, y, batch_size=30, drop_last=True)) == []


def test_seed_reproducibility():
    X, y = _dataset()

    def epochs(loader, n=2):
        return [[yb.tolist() for _, yb in loader] for _ in range(n)]

    a = epochs(DataLoader(X, y, batch_size=4, shuffle=True, seed=7))
    b = epochs(DataLoader(X, y, batch_size=4, shuffle=True, seed=7))
    c = epochs(DataLoader(X, y, batch_size=4, shuffle=True, seed=8))
    assert a == b and a != c
    assert a[0] != a[1]  # a new order every epoch
    # Without a seed, gt.manual_seed makes the order repeatable.
    gt.manual_seed(3)
    d = epochs(DataLoader(X, y, batch_size=4, shuffle=True))
    gt.manual_seed(3)
    e = epochs(DataLoader(X, y, batch_size=4, shuffle=True))
    assert d == e


def test_batches_do_not_alias_the_data():
    X, y = _dataset()
    xb, _ = next(iter(DataLoader(X, y, batch_size=4)))
    xb.data[...] = -1
    assert X.min() >= 0


def test_tensor_inputs_and_errors():
    X, y = _dataset(6)
    loader = DataLoader(gt.tensor(X), gt.tensor(y), batch_size=4, device="cpu")
    assert [len(yb) for _, yb in loader] == [4, 2]
    with pytest.raises(ValueError, match="X has 6 samples but y has 5"):
        DataLoader(X, y[:5], batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(X, y, batch_size=0)


# -- load_digits ----------------------------------------------------------------------------------


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(3), [50, 30, 20])
    tr, te = stratified_split(y, test_size=0.2, seed=0)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(100))
    assert np.bincount(y[te]).tolist() == [10, 6, 4]
    tr2, te2 = stratified_split(y, test_size=0.2, seed=0)
    np.testing.assert_array_equal(te, te2)
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(y, test_size=1.5)


def test_load_digits():
    pytest.importorskip("sklearn", reason="scikit-learn ships the digits data set")
    X_train, y_train, X_test, y_test = load_digits()
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0 and X_train.max() == 1
    assert np.bincount(y_test).min() >= 35  # stratified: about 36 of each digit
    again = load_digits()
    np.testing.assert_array_equal(again[3], y_test)
    assert not np.array_equal(load_digits(seed=1)[3], y_test)


def test_load_digits_without_sklearn(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install gradtensor\[data\]"):
        load_digits()


# -- load_mnist -----------------------------------------------------------------------------------


def _idx_images(images):
    n, r, c = images.shape
    return struct.pack(">iiii", 2051, n, r, c) + images.astype(np.uint8).tobytes()


def _idx_labels(labels):
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_mnist(folder, gz, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        data[prefix] = (images, labels)
        for kind, raw in (
            ("images-idx3", _idx_images(images)),
            ("labels-idx1", _idx_labels(labels)),
        ):
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path, gz):
    data = _write_mnist(tmp_path, gz)
    X_train, y_train, X_test, y_test = load_mnist(tmp_path)
    assert X_train.shape == (12, 784) and X_test.shape == (5, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_allclose(X_train, data["train"][0].reshape(12, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(y_test, data["t10k"][1])
    assert 0 <= X_train.min() and X_train.max() <= 1


def test_load_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_mnist(tmp_path / "absent")
    _write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_magic(tmp_path):
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 1  # 2049 (labels) where 2051 (images) belongs
    path.write_bytes(bytes(raw))
    with pytest.raises(
        ValueError, match="train-images-idx3-ubyte.*magic number 2049, expected 2051"
    ):
        load_mnist(tmp_path)


def test_load_mnist_truncated(tmp_path):
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        load_mnist(tmp_path)


def test_load_mnist_corrupt_gzip(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch_and_bad_labels(tmp_path):
    _write_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_labels(np.zeros(11)))
    with pytest.raises(ValueError, match="12 images but .* 11 labels"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_labels(np.full(12, 10)))
    with pytest.raises(ValueError, match="label 10"):
        load_mnist(tmp_path)


# -- corner cases: clear errors naming the function and what was given ---------------------------


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.array(["a", "b", "c"]), TypeError, r"DataLoader: X has dtype <U1"),
        ([{"a": 1}, {"b": 2}, {"c": 3}], TypeError, r"DataLoader: X has dtype object"),
        (np.array([1, "a", None], dtype=object), TypeError, r"DataLoader: X has dtype object"),
        (np.array(["2024-01-01"] * 3, dtype="datetime64[D]"), TypeError, "datetime64"),
        ([[1.0, 2.0], [3.0], [4.0]], ValueError, r"DataLoader: X cannot be made into an array"),
        (5.0, ValueError, r"DataLoader: X must have a first \(sample\) axis"),
    ],
    ids=["str", "dicts", "object", "datetime", "ragged", "scalar"],
)
def test_dataloader_refuses_data_tensors_cannot_hold(X, error, message):
    with pytest.raises(error, match=message):
        DataLoader(X, np.arange(3), batch_size=2)


def test_dataloader_refuses_string_labels():
    with pytest.raises(TypeError, match=r"DataLoader: y has dtype <U3"):
        DataLoader(np.zeros((2, 3)), ["cat", "dog"], batch_size=2)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, 2.0, "4", None, True])
def test_dataloader_batch_size_must_be_a_positive_int(batch_size):
    X, y = _dataset(6)
    with pytest.raises(ValueError, match=r"DataLoader: batch_size must be a positive int, got "):
        DataLoader(X, y, batch_size=batch_size)


def test_dataloader_accepts_numpy_ints_and_checks_the_seed():
    X, y = _dataset(6)
    loader = DataLoader(X, y, batch_size=np.int64(4))
    assert loader.batch_size == 4 and type(loader.batch_size) is int
    assert [len(yb) for _, yb in loader] == [4, 2]
    assert len(DataLoader(X, y, batch_size=2, shuffle=True, seed=np.int32(3))) == 3
    with pytest.raises(TypeError, match="DataLoader: seed must be an int or None, got 'abc'"):
        DataLoader(X, y, batch_size=2, shuffle=True, seed="abc")
    with pytest.raises(ValueError, match="X has 6 samples but y has 4"):
        DataLoader(gt.tensor(X), y[:4], batch_size=2)


def test_stratified_split_takes_lists_and_refuses_what_it_cannot_split():
    labels = [0] * 50 + [1] * 30 + [2] * 20  # a plain list: split by class like an array
    tr, te = stratified_split(labels, test_size=0.2, seed=0)
    assert np.bincount(np.asarray(labels)[te]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(100))
    with pytest.raises(ValueError, match=r"stratified_split: y must be a non-empty 1-D .*\(0,\)"):
        stratified_split(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match=r"stratified_split: y must be .*\(2, 3\)"):
        stratified_split(np.zeros((2, 3)))
    for bad in ("0.2", None, True, float("nan")):
        with pytest.raises(ValueError, match="stratified_split: test_size must be in"):
            stratified_split(labels, test_size=bad)


def test_load_mnist_refuses_images_that_are_not_28_by_28(tmp_path):
    _write_mnist(tmp_path, gz=False)
    rng = np.random.default_rng(1)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        _idx_images(rng.integers(0, 256, size=(12, 32, 32)))
    )
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte.*images of shape \(32, 32\); MNIST's are \(28, 28\)",
    ):
        load_mnist(tmp_path)


def test_load_mnist_refuses_headers_that_disagree_with_the_data(tmp_path):
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    body = path.read_bytes()[16:]
    path.write_bytes(struct.pack(">iiii", 2051, 1000, 28, 28) + body)  # says 1000, holds 5
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte' holds 3936 bytes, .* 784016"):
        load_mnist(tmp_path)
    path.write_bytes(struct.pack(">iiii", 2051, 4, 28, 28) + body)  # says 4, holds 5
    with pytest.raises(ValueError, match=r"holds more than 3152 bytes, .* says 3152"):
        load_mnist(tmp_path)
    path.write_bytes(struct.pack(">iiii", 2051, -1, 28, -28) + body)
    with pytest.raises(ValueError, match=r"declares negative dimensions \(-1, 28, -28\)"):
        load_mnist(tmp_path)
    with pytest.raises(TypeError, match="load_mnist: path must be a folder path, got a int"):
        load_mnist(3)


def test_load_mnist_reads_no_more_than_the_header_declares(tmp_path):
    """A gzip member that inflates far beyond its header is refused without inflating it all."""
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    junk = bytes(64 << 20)
    path.write_bytes(gzip.compress(_idx_labels(np.zeros(12)) + junk, compresslevel=1))
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match="train-labels-idx1-ubyte.gz' holds more than 20 bytes"
        ):
            load_mnist(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
