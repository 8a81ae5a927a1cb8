"""cross_entropy on the CPU: log-softmax, the picked class and its derivative, one pass a row.

As array ops the loss takes some fifteen calls each way (row maxima, shift, exp, sums, log, the
pick, the masks for ignored targets), each a fresh array; here the forward reads the logits
twice and keeps two numbers a row (the shift and the log of the sum), and the derivative writes
softmax minus the one-hot target, scaled, in one pass. The arithmetic is the array path's
(`gradtensor.ops.loss`), step for step, in the logits' dtype: a row's maximum that is not finite
shifts by 0, an ignored row counts nothing and its gradient is 0 times its softmax.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from ._api import results
from ._numba_cache import ensure_cache

ensure_cache(__file__)  # before any cache=True function is defined

__all__ = ["cross_entropy_backward", "cross_entropy_forward", "warmup"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_OPTS = dict(cache=True, error_model="numpy")


@njit(**_OPTS)
def _forward(x, target, ignore_index, zero, shift, logs, losses):
    """Fill each row's shift, log-sum and loss; return (first bad row or -1, rows counted).
    `zero` is 0 in x's dtype, so that every number here stays in that dtype."""
    n, c = x.shape
    count = 0
    for i in range(n):
        t = target[i]
        keep = t != ignore_index
        cls = t if keep else 0
        if cls < 0 or cls >= c:
            return i, count
        m = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > m or v != v:  # the maximum, NaN if any (as NumPy's max)
                m = v
                if v != v:
                    break
        if not math.isfinite(m):
            m = zero  # an all -inf row (or inf, NaN) shifts by 0
        s = math.exp(x[i, 0] - m)
        for j in range(1, c):
            s += math.exp(x[i, j] - m)
        ls = math.log(s)
        shift[i] = m
        logs[i] = ls
        if keep:
            losses[i] = -((x[i, cls] - m) - ls)
            count += 1
        else:
            losses[i] = zero
    return -1, count


@njit(**_OPTS)
def _backward(x, target, ignore_index, zero, shift, logs, scale, per_row, gx):
    """gx = (softmax(x) - one_hot(target)) * scale (per row, or scale[0] for all); 0 times the
    softmax on ignored rows."""
    n, c = x.shape
    for i in range(n):
        t = target[i]
        keep = t != ignore_index
        cls = t if keep else 0
        si = (scale[i] if per_row else scale[0]) if keep else zero
        m, ls = shift[i], logs[i]
        for j in range(c):
            v = math.exp((x[i, j] - m) - ls)
            if j == cls:
                v -= 1
            gx[i, j] = v * si


def cross_entropy_forward(x: np.ndarray, target: np.ndarray, ignore_index: int) -> tuple:
    """(losses per row, shift per row, log-sum per row, rows counted): the loss of each row is
    -log softmax(x)[target], 0 where target == ignore_index; e.g. cross_entropy_forward(x, t, -100).
    A target outside [0, C) that is not ignored raises IndexError."""
    return plan_forward(x, ignore_index)(x, target)


def plan_forward(x: np.ndarray, ignore_index: int, keep: bool = False) -> Any:
    """cross_entropy_forward for logits shaped and typed as x: run(x, target). keep=True: each
    run writes its results into the arrays of the run before, once nothing else holds them
    (see `_api.results`)."""
    (n, c), dtype = x.shape, x.dtype
    zero = dtype.type(0)
    alloc = results(keep)

    def run(x: np.ndarray, target: np.ndarray) -> tuple:
        shift, logs, losses = (
            alloc("shift", n, dtype),
            alloc("logs", n, dtype),
            alloc("l", n, dtype),
        )
        bad, count = _forward(x, target, ignore_index, zero, shift, logs, losses)
        if bad >= 0:
            valid = target[target != ignore_index]
            raise IndexError(
                f"target classes must lie in [0, {c}); got {int(valid.min())}..{int(valid.max())}"
            )
        return losses, shift, logs, count

    return run


def cross_entropy_backward(
    x: np.ndarray, target: np.ndarray, ignore_index: int, shift: np.ndarray, logs: np.ndarray,
    scale: Any,
) -> np.ndarray:  # fmt: skip
    """d loss / d x: (softmax(x) - one_hot(target)) times `scale` (a number, or one per row),
    0 on ignored rows; shift and logs are cross_entropy_forward's."""
    return plan_backward(x, ignore_index, np.shape(scale))(x, target, shift, logs, scale)


def plan_backward(x: np.ndarray, ignore_index: int, scale_shape: tuple, keep: bool = False) -> Any:
    """cross_entropy_backward for logits shaped and typed as x and a scale of that shape:
    run(x, target, shift, logs, scale) (keep: as plan_forward)."""
    dtype = x.dtype
    zero = dtype.type(0)
    per_row = len(scale_shape) == 1
    alloc = results(keep)

    def run(x, target, shift, logs, scale) -> np.ndarray:
        s = alloc("scale", scale_shape, dtype)
        s[...] = scale
        gx = alloc("gx", x.shape, dtype)
        _backward(x, target, ignore_index, zero, shift, logs, s.reshape(-1), per_row, gx)
        return gx

    return run


def warmup() -> None:
    """Compile (or load from the on-disk cache) both loops for float32 and float64 logits."""
    for dtype in DTYPES:
        x, t = np.zeros((2, 3), dtype), np.array([0, 2])
        losses, shift, logs, _ = cross_entropy_forward(x, t, -100)
        cross_entropy_backward(x, t, -100, shift, logs, 1.0)
