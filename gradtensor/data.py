"""Datasets and batching: the bundled handwritten digits, MNIST's IDX files, and a DataLoader.

The loaders return NumPy arrays (X float32 in [0, 1], one flattened image per row; y int64);
`DataLoader` turns them into Tensor batches on the device you ask for.

>>> X_train, y_train, X_test, y_test = gt.data.load_digits()
>>> for x, y in gt.data.DataLoader(X_train, y_train, batch_size=32, shuffle=True, seed=0):
...     loss = F.cross_entropy(model(x), y)
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["DataLoader", "DistributedSampler", "load_digits", "load_mnist", "stratified_split"]

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def stratified_split(
    y: np.ndarray, test_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_indices, test_indices), with each class split in the same proportion."""
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, numbers.Real)
        or not 0 < test_size < 1
    ):
        raise ValueError(f"stratified_split: test_size must be in (0, 1), got {test_size!r}")
    y = np.asarray(y)  # a list compared with `==` below would give one bool, not a mask
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(
            f"stratified_split: y must be a non-empty 1-D array of labels, got shape {y.shape}"
        )
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    # Each class gives floor(count * test_size) samples, and the few left to reach
    # ceil(n * test_size) in all go to the classes with the largest remainders.
    share = counts * test_size
    n_test = np.floor(share).astype(np.int64)
    extra = int(np.ceil(len(y) * test_size)) - int(n_test.sum())
    n_test[np.argsort(-(share - n_test), kind="stable")[:extra]] += 1
    train, test = [], []
    for c, k in zip(classes, n_test, strict=True):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:k])
        train.append(idx[k:])
    # Shuffle across classes too, so that unshuffled batches are not sorted by label.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_digits(test_size: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images) as
    (X_train, y_train, X_test, y_test): X float32 (n, 64) in [0, 1], y int64; the split is
    stratified by class and fixed by `seed`."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError(
            "load_digits needs scikit-learn, which ships the digits data set; install it with "
            "`pip install gradtensor[data]` (or `pip install scikit-learn`)"
        ) from None
    bunch = _sk_load_digits()
    X = (bunch.data / 16.0).astype(np.float32)  # pixel intensities are 0..16
    y = bunch.target.astype(np.int64)
    tr, te = stratified_split(y, test_size, seed)
    return X[tr], y[tr], X[te], y[te]


# -- MNIST ------------------------------------------------------------------------------------

_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dims / 1 dim


def _find(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"load_mnist: neither {stem} nor {stem}.gz is in {folder!r}")


def _read_idx(path: str, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file of unsigned bytes whose items (images, or scalar labels) have `item_shape`."""
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    what = "images" if magic == _IMAGES_MAGIC else "labels"
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            head = f.read(header)
            if len(head) < header:
                raise ValueError(
                    f"load_mnist: {path!r} is too short ({len(head)} bytes) to be an IDX file"
                )
            got = struct.unpack(">i", head[:4])[0]
            if got != magic:
                raise ValueError(
                    f"load_mnist: {path!r} has magic number {got}, expected {magic} ({what})"
                )
            dims = struct.unpack(f">{ndim}i", head[4:])
            if any(d < 0 for d in dims):
                raise ValueError(f"load_mnist: {path!r} declares negative dimensions {dims}")
            if dims[1:] != item_shape:
                raise ValueError(
                    f"load_mnist: {path!r} holds {what} of shape {dims[1:]}; "
                    f"MNIST's are {item_shape}"
                )
            expected = math.prod(dims)
            # At most one byte more than the header declares: a wrong header, or a gzip bomb,
            # costs no more memory than a right one.
            body = _read_at_most(f, expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"load_mnist: cannot read {path!r}: {exc}") from None
    if len(body) != expected:
        size = f"more than {header + expected}" if len(body) > expected else header + len(body)
        raise ValueError(
            f"load_mnist: {path!r} holds {size} bytes, but its header (dimensions {dims}) says "
            f"{header + expected}: the file is truncated or corrupt"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _read_at_most(f: Any, n: int) -> bytearray:
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(n - len(out), 1 << 20))
        if not chunk:
            break
        out += chunk
    return out


def _load_mnist_part(folder: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    images = _read_idx(img_path, _IMAGES_MAGIC, (28, 28))
    labels = _read_idx(lbl_path, _LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise ValueError(
            f"load_mnist: {img_path!r} has {len(images)} images but {lbl_path!r} "
            f"has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"load_mnist: {lbl_path!r} has label {labels.max()}; digits are 0..9")
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return X, labels.astype(np.int64)


def load_mnist(path: str | os.PathLike) -> Split:
    """MNIST from the four standard IDX files in a folder (gzipped or not) as
    (X_train, y_train, X_test, y_test): X float32 (n, 784) in [0, 1], y int64.

    Files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
    t10k-labels-idx1-ubyte, each optionally with .gz.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_mnist: path must be a folder path, got a {type(path).__name__}")
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"load_mnist: {folder!r} is not a folder (it should hold the four MNIST IDX files)"
        )
    X_train, y_train = _load_mnist_part(folder, "train")
    X_test, y_test = _load_mnist_part(folder, "t10k")
    return X_train, y_train, X_test, y_test


# -- batching ---------------------------------------------------------------------------------


class DataLoader:
    """Mini-batches (x, y) of Tensors from arrays (or Tensors) X and y of equal length.

    shuffle=True draws a new order every epoch, from `seed` when given (the same sequence of
    epochs on every run), else from the generator `gt.manual_seed` seeds. A `sampler` (an
    iterable of sample indices, such as DistributedSampler) chooses the samples and their order
    instead; it is iterated afresh every epoch.

    >>> loader = DataLoader(X, y, batch_size=64, shuffle=True, seed=0)
    >>> len(loader)              # batches per epoch
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        device: Any = None,
        sampler: Iterable[int] | None = None,
    ):
        self.X, self.y = self._array(X, "X"), self._array(y, "y")
        if len(self.X) != len(self.y):
            raise ValueError(f"DataLoader: X has {len(self.X)} samples but y has {len(self.y)}")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"DataLoader: seed must be an int or None, got {seed!r}")
        if sampler is not None:
            if shuffle:
                raise ValueError(
                    "DataLoader: sampler and shuffle=True cannot be used together; the sampler "
                    "chooses the order (DistributedSampler(..., shuffle=True) shuffles)"
                )
            if not isinstance(sampler, Iterable):
                raise TypeError(
                    f"DataLoader: sampler must be an iterable of sample indices, got a "
                    f"{type(sampler).__name__}"
                )
        self.sampler = sampler
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.device = backend.device(device)
        self._rng = np.random.default_rng(seed) if seed is not None else None

    @staticmethod
    def _array(a: Any, name: str) -> Any:
        arr = a.data if isinstance(a, Tensor) else a
        if not (hasattr(arr, "shape") and hasattr(arr, "dtype")):
            try:
                arr = np.asarray(arr)
            except (ValueError, TypeError) as exc:  # ragged nested lists, say
                raise ValueError(
                    f"DataLoader: {name} cannot be made into an array: {exc}"
                ) from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"DataLoader: {name} has dtype {arr.dtype}; batches become tensors, which hold "
                "bool, integer or floating-point numbers"
            )
        if arr.ndim == 0:
            raise ValueError(f"DataLoader: {name} must have a first (sample) axis, got a scalar")
        return arr

    def __len__(self) -> int:
        n = len(self.X) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batch(self, arr: Any, idx: Any) -> Tensor:
        part = arr[idx]
        if isinstance(idx, slice):
            part = part.copy()  # a slice is a view: the batch must not alias the data set
        return Tensor._make(backend.to_device(part, self.device))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.X)
        ox = oy = None
        order = None
        if self.sampler is not None:
            order = self._sampled(n)
            n = len(order)
        elif self.shuffle:
            rng = self._rng if self._rng is not None else backend.rng(backend.CPU)
            order = rng.permutation(n)
        if order is not None:
            # The order on each array's own device: X and y may live apart.
            ox = backend.to_device(order, backend.device_of_array(self.X))
            oy = backend.to_device(order, backend.device_of_array(self.y))
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        for start in range(0, batches * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            if ox is None:
                ix = iy = slice(start, stop)
            else:
                ix, iy = ox[start:stop], oy[start:stop]
            yield self._batch(self.X, ix), self._batch(self.y, iy)

    def _sampled(self, n: int) -> np.ndarray:
        order = np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        if order.size and (order.min() < -n or order.max() >= n):
            bad = order[(order < -n) | (order >= n)][0]
            raise IndexError(
                f"DataLoader: the sampler gave index {bad}, but the data set has {n} samples"
            )
        return order


class DistributedSampler:
    """The sample indices of one rank's shard of a data set, for DataLoader(sampler=...).

    Each epoch, the ranks' shards are disjoint and together cover the data set once; when its
    size is not a multiple of the number of ranks, the first indices are repeated to even the
    shards out (or, with drop_last, the last few are left out), as in PyTorch. With shuffle, the
    order is drawn from seed + epoch: call `set_epoch(epoch)` at the start of every epoch for a
    new order that every rank agrees on. `dataset` is a data set or its length; num_replicas and
    rank default to the process group's world size and rank.

    >>> sampler = DistributedSampler(len(X_train))
    >>> loader = DataLoader(X_train, y_train, batch_size=32, sampler=sampler)
    >>> for epoch in range(epochs):
    ...     sampler.set_epoch(epoch)
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        fn = "DistributedSampler"
        if isinstance(dataset, numbers.Integral) and not isinstance(dataset, bool):
            size = int(dataset)
        else:
            try:
                size = len(dataset)
            except TypeError:
                raise TypeError(
                    f"{fn}: dataset must have a length (or be one), got a {type(dataset).__name__}"
                ) from None
        if size < 0:
            raise ValueError(f"{fn}: the data set size must be >= 0, got {size}")
        if num_replicas is None or rank is None:
            from . import distributed

            if not distributed.is_initialized():
                raise RuntimeError(
                    f"{fn}: pass num_replicas and rank, or call "
                    "gradtensor.distributed.init_process_group() first"
                )
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, numbers.Integral):
            raise TypeError(f"{fn}: num_replicas must be an int, got {num_replicas!r}")
        if num_replicas < 1:
            raise ValueError(f"{fn}: num_replicas must be >= 1, got {num_replicas}")
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
            raise TypeError(f"{fn}: rank must be an int, got {rank!r}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"{fn}: rank must be in 0 .. {num_replicas - 1}, got {rank}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"{fn}: seed must be an int, got {seed!r}")
        self.size, self.num_replicas, self.rank = size, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        if drop_last and size % self.num_replicas:
            self.num_samples = size // self.num_replicas  # the uneven tail is left out
        else:
            self.num_samples = -(-size // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Which epoch comes next: with shuffle, its order is drawn from seed + epoch."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
            raise TypeError(f"DistributedSampler.set_epoch: epoch must be an int, got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(self.size)
        else:
            indices = np.arange(self.size)
        if self.total_size > self.size and self.size:  # pad by repeating from the start
            indices = np.resize(indices, self.total_size)
        indices = indices[: self.total_size]
        return iter(indices[self.rank :: self.num_replicas].tolist())
