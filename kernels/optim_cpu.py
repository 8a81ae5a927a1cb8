"""CPU optimizer updates: one Numba pass per parameter instead of four to eleven array ops.

An update is memory-bound: written as NumPy ufuncs with `out=`, SGD with momentum reads and
writes the parameter-sized arrays four times and Adam eleven times. Here each element is loaded
once, updated in registers and stored once; for SGD with momentum it was measured faster than
both the ufuncs and torch.optim.SGD (benchmarks/results/kernel-decisions.md).

Every kernel does its float arithmetic in the arrays' dtype, in the same order as the array-op
update in `gradtensor.optim` (which follows PyTorch's), so the two paths agree bit for bit: no
fastmath here, since contracting a*b+c into an FMA would change the rounding.

Each array argument of an update is one array or a list of arrays, one per parameter (as the
CUDA updates take them, in one launch); every parameter is checked before any is updated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from ._numba_cache import ensure_cache

ensure_cache(__file__)  # before any cache=True function is defined

__all__ = ["adam_update", "rmsprop_update", "sgd_update"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# error_model="numpy": no division-by-zero branch, so the division in Adam and RMSprop vectorizes.
_OPTS = dict(cache=True, error_model="numpy")


# Scalars come in already in the arrays' dtype, with every derived coefficient (1 - beta, -lr)
# worked out in float64 first: that is what the array-op update gets when NumPy casts a Python
# float operand to a float32 array's dtype.


# -- The per-element maths, written once: plain Python on scalars (arithmetic and math.sqrt),
# compiled here with njit and by kernels.optim_cuda as device functions. The order of operations
# is the array-op update's (PyTorch's), so these loops agree with it bit for bit. It lives in this
# file because Numba's cache of the loops below is keyed on this file alone.


def sgd(p, g, b, neg_lr, wd, mom, one_minus_damp, damp, nesterov, first, has_buf):
    """New (param, momentum_buffer); `first` starts the buffer at the gradient (PyTorch)."""
    if wd != 0:
        g = g + p * wd
    if has_buf:
        if first:
            b = g
        elif damp == 0:
            b = b * mom + g
        else:
            b = b * mom + g * one_minus_damp
        g = g + b * mom if nesterov else b
    return p + g * neg_lr, b


def adam(p, g, m, v, vmax, wd, decay, c1, b2, c2, eps, neg_step, bc2_sqrt, decoupled, amsgrad):
    """New (param, exp_avg, exp_avg_sq, max_exp_avg_sq); AdamW decays p when `decoupled`."""
    if wd != 0:
        if decoupled:
            p = p * decay
        else:
            g = g + p * wd
    m = m + (g - m) * c1
    v = v * b2 + g * c2 * g
    most = v
    if amsgrad:
        if v < vmax or vmax != vmax:  # np.maximum: a NaN on either side wins
            most = vmax
    return p + m * neg_step / (math.sqrt(most) / bc2_sqrt + eps), m, v, most


def rmsprop(p, g, sq, ga, b, neg_lr, alpha, c, eps, wd, mom, centered, has_buf):
    """New (param, square_avg, grad_avg, momentum_buffer); c is 1 - alpha."""
    if wd != 0:
        g = g + p * wd
    sq = sq * alpha + g * c * g
    if centered:
        ga = ga + (g - ga) * c
        denom = math.sqrt(sq - ga * ga) + eps
    else:
        denom = math.sqrt(sq) + eps
    if has_buf:
        b = b * mom + g / denom
        p = p + b * neg_lr
    else:
        p = p + g * neg_lr / denom
    return p, sq, ga, b


# Inlined into each loop, so the loop vectorizes as if written out.
_sgd_step = njit(inline="always", **_OPTS)(sgd)
_adam_step = njit(inline="always", **_OPTS)(adam)
_rmsprop_step = njit(inline="always", **_OPTS)(rmsprop)


# Each loop takes its scalars as one array `c` in the arrays' dtype: the step's scalars (from
# `*_scalars` below), then 1 or 0 for each state array in use or not (an unused one is passed as
# the parameter, never written). One array argument instead of a dozen scalars is what keeps a
# call of a small parameter's update cheap.


@njit(**_OPTS)
def _sgd(p, g, buf, c):
    neg_lr, wd, mom, one_minus_damp, damp = c[0], c[1], c[2], c[3], c[4]
    nesterov, first, has_buf = c[5] != 0, c[6] != 0, c[7] != 0
    for i in range(p.size):
        pi, b = _sgd_step(
            p[i], g[i], buf[i], neg_lr, wd, mom, one_minus_damp, damp, nesterov, first, has_buf
        )
        if has_buf:
            buf[i] = b
        p[i] = pi


@njit(**_OPTS)
def _adam(p, g, m, v, vmax, c):
    wd, decay, c1, b2, c2, eps, neg_step, bc2_sqrt = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    decoupled, amsgrad = c[8] != 0, c[11] != 0
    for i in range(p.size):
        pi, mi, vi, most = _adam_step(
            p[i], g[i], m[i], v[i], vmax[i], wd, decay, c1, b2, c2, eps, neg_step, bc2_sqrt,
            decoupled, amsgrad,
        )  # fmt: skip
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vmax[i] = most
        p[i] = pi


@njit(**_OPTS)
def _rmsprop(p, g, sq, ga, buf, c):
    neg_lr, alpha, one_minus_alpha, eps, wd, mom = c[0], c[1], c[2], c[3], c[4], c[5]
    centered, has_buf = c[7] != 0, c[8] != 0
    for i in range(p.size):
        pi, s, a, b = _rmsprop_step(
            p[i], g[i], sq[i], ga[i], buf[i], neg_lr, alpha, one_minus_alpha, eps, wd, mom,
            centered, has_buf,
        )  # fmt: skip
        sq[i] = s
        if centered:
            ga[i] = a
        if has_buf:
            buf[i] = b
        p[i] = pi


def _flat(fn: str, named: dict[str, Any], at: str) -> list[np.ndarray | None]:
    """One tensor's arrays as 1-D views (None stays None), after checking they can be updated in
    place; `at` is the tensor's place in the lists ("[2]"), or "" for single arrays."""
    first_name, first = next(iter(named.items()))
    if not isinstance(first, np.ndarray) or first.dtype not in DTYPES:
        raise ValueError(
            f"{fn}: {first_name + at} must be a float32 or float64 NumPy array, got "
            f"{getattr(first, 'dtype', type(first).__name__)}"
        )
    dtype, shape = first.dtype, first.shape
    out = []
    for base, a in named.items():
        if a is None:
            out.append(None)
        elif (
            isinstance(a, np.ndarray)
            and a.dtype == dtype
            and a.shape == shape
            and a.flags.c_contiguous
            and (base == "grad" or a.flags.writeable)
        ):
            out.append(a.reshape(-1))
        else:
            _refuse(fn, base + at, a, first_name + at, first)
    return out


def _refuse(fn: str, name: str, a: Any, first_name: str, first: np.ndarray) -> None:
    """The error for an array `_flat` cannot update in place."""
    if not isinstance(a, np.ndarray) or a.dtype != first.dtype or a.shape != first.shape:
        raise ValueError(
            f"{fn}: {name} must be a NumPy array like {first_name} ({first.dtype}, shape "
            f"{first.shape}), got {getattr(a, 'dtype', type(a).__name__)} "
            f"{getattr(a, 'shape', '')}"
        )
    raise ValueError(f"{fn}: {name} must be C-contiguous and writeable to update in place")


def tensor_rows(fn: str, named: dict[str, Any], flat: Any) -> list[list[Any]]:
    """Each tensor's arrays, checked by `flat`, for every tensor before any update.

    An argument is one array, a list of arrays (one per tensor, as many as the first argument
    has), or None (state the configuration does not use).
    """
    first_name, first = next(iter(named.items()))
    many = isinstance(first, (list, tuple))
    count = len(first) if many else 1
    columns = {}
    for name, value in named.items():
        if value is not None and (
            isinstance(value, (list, tuple)) != many or (many and len(value) != count)
        ):
            for k, a in enumerate(first if many else [first]):  # a list of non-arrays, first
                flat(fn, {first_name: a}, f"[{k}]" * many)
            want = f"a list of {count} arrays" if many else "one array"
            raise ValueError(f"{fn}: {name} must be {want}, as {first_name} is")
        columns[name] = None if value is None else list(value) if many else [value]
    return [
        flat(fn, {n: None if c is None else c[k] for n, c in columns.items()}, f"[{k}]" * many)
        for k in range(count)
    ]


# The loops' scalar arguments, in the arrays' float type `ft`, worked out in one place for the
# CPU loops and the CUDA kernels alike.


def sgd_scalars(ft, lr, weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False,
                first=False):  # fmt: skip
    return (
        ft(-lr), ft(weight_decay), ft(momentum), ft(1 - dampening), ft(dampening),
        bool(nesterov), bool(first),
    )  # fmt: skip


def adam_scalars(ft, lr, beta1, beta2, eps, weight_decay, decoupled, step_size,
                 bias_correction2_sqrt):  # fmt: skip
    return (
        ft(weight_decay), ft(1 - lr * weight_decay), ft(1 - beta1), ft(beta2), ft(1 - beta2),
        ft(eps), ft(-step_size), ft(bias_correction2_sqrt), bool(decoupled),
    )  # fmt: skip


def rmsprop_scalars(ft, lr, alpha, eps, weight_decay, momentum):
    return ft(-lr), ft(alpha), ft(1 - alpha), ft(eps), ft(weight_decay), ft(momentum)


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    first: bool = False,
) -> None:
    """SGD in place: param (and momentum_buffer, which `first` fills with the gradient)."""
    rows = _rows("sgd_update", param, grad, momentum_buffer)
    _run("sgd_update", rows, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                  dampening=dampening, nesterov=nesterov, first=first))  # fmt: skip


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    step_size: float,
    bias_correction2_sqrt: float,
) -> None:
    """Adam/AdamW in place: param, exp_avg, exp_avg_sq (and max_exp_avg_sq for amsgrad)."""
    rows = _rows("adam_update", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    _run("adam_update", rows, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                   weight_decay=weight_decay, decoupled=decoupled,
                                   step_size=step_size,
                                   bias_correction2_sqrt=bias_correction2_sqrt))  # fmt: skip


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    grad_avg: np.ndarray | None,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
) -> None:
    """RMSprop in place: param, square_avg (grad_avg when centered, momentum_buffer if any)."""
    rows = _rows("rmsprop_update", param, grad, square_avg, grad_avg, momentum_buffer)
    _run("rmsprop_update", rows, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum))  # fmt: skip


# Each update's arrays by name, its scalars, and its loop.
_UPDATES: dict[str, tuple[tuple[str, ...], Any, Any]] = {
    "sgd_update": (("param", "grad", "momentum_buffer"), sgd_scalars, _sgd),
    "adam_update": (
        ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), adam_scalars, _adam
    ),
    "rmsprop_update": (
        ("param", "grad", "square_avg", "grad_avg", "momentum_buffer"), rmsprop_scalars, _rmsprop
    ),
}  # fmt: skip


def _rows(fn: str, *arrays: Any) -> list[Any]:
    """Each tensor's arrays as 1-D views, checked, the parameter standing in for state not in
    use (the loops never write it then)."""
    names = _UPDATES[fn][0]
    return [[row[0] if a is None else a for a in row]
            for row in tensor_rows(fn, dict(zip(names, arrays)), _flat)]  # fmt: skip


def update_scalars(fn: str, dtype: Any, in_use: tuple, **hyper: Any) -> tuple:
    """The scalars `c` of update `fn`'s loop, in dtype's type: this step's (from `*_scalars`),
    then 1 or 0 for each state array in use or not. The CPU loops and the CUDA kernels take
    them alike (the kernels also from a GPU array, which a CUDA graph reads at each launch)."""
    ft = np.dtype(dtype).type
    return tuple(ft(v) for v in (*_UPDATES[fn][1](ft, **hyper), *in_use))


_SCALARS: dict[tuple, np.ndarray] = {}  # (update, dtype, state in use, hyperparameters) -> c


def _run(fn: str, rows: list[Any], hyper: dict[str, Any]) -> None:
    """The update's loop over checked rows, its scalars as one array per dtype, worked out once
    for each set of hyperparameters. Every row uses the same state (one list per argument)."""
    if not rows:
        return
    loop = _UPDATES[fn][2]
    in_use = tuple(a is not rows[0][0] for a in rows[0][2:])
    items = tuple(hyper.items())
    dtype = c = None
    for row in rows:
        p = row[0]
        if p.dtype is not dtype:
            dtype = p.dtype
            key = (fn, dtype, in_use, items)
            c = _SCALARS.get(key)
            if c is None:
                if len(_SCALARS) > 8:  # Adam's scalars change every step: keep a few
                    _SCALARS.clear()
                c = _SCALARS[key] = np.array(update_scalars(fn, dtype, in_use, **hyper), dtype)
        loop(*row, c)


def plan_update(fn: str, *arrays: Any, **hyper: Any) -> Any:
    """run(grads, hyper): the update `fn` of these parameters and state, given gradients
    shaped, typed and laid out as these, checked now (an eager step's plan for the next one,
    and gt.compile's replays). The plan holds 1-D views of the parameters and state: a caller
    plans again when any of them is replaced. Given one array each (not lists), a run takes one
    gradient array."""
    one = not isinstance(arrays[0], (list, tuple))
    rows = _rows(fn, *arrays)  # [param, grad, *state]: each run sets the gradient, then unsets it
    for row in rows:
        row[1] = row[0]
    loop = _UPDATES[fn][2]
    dtypes = {row[0].dtype for row in rows}
    if len(dtypes) != 1:  # mixed dtypes: the scalars per dtype, as a call works them out
        step = lambda hyper: _run(fn, rows, hyper)
    else:
        (dtype,) = dtypes
        in_use = tuple(a is not rows[0][0] for a in rows[0][2:])
        memo: dict[tuple, np.ndarray] = {}  # the hyperparameters' values -> the scalars

        def step(hyper: dict) -> None:
            key = tuple(hyper.values())
            c = memo.get(key)
            if c is None:
                if len(memo) > 8:  # Adam's scalars change every step: keep a few
                    memo.clear()
                c = memo[key] = np.array(update_scalars(fn, dtype, in_use, **hyper), dtype)
            for row in rows:
                loop(*row, c)

    def run(grads: Any, hyper: dict) -> None:
        if one:
            grads = (grads,)
        if len(grads) != len(rows):  # else a row would take its parameter for its gradient
            raise ValueError(f"{fn}: {len(grads)} gradients for {len(rows)} planned parameters")
        try:
            for row, g in zip(rows, grads):
                row[1] = g.ravel()  # a view of a C-contiguous g
            step(hyper)
        finally:  # a gradient kept between runs would be an array nothing can reuse
            for row in rows:
                row[1] = row[0]

    return run


def warmup() -> None:
    """Compile (or load from the on-disk cache) every update for float32 and float64: one call
    each, since a missing buffer is passed as another array of the same type."""
    for dtype in (np.float32, np.float64):
        p, g, a, b = (np.zeros(2, dtype) for _ in range(4))
        sgd_update(p, g, None, lr=0.1)
        adam_update(p, g, a, b, None, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.0, decoupled=False, step_size=0.1,
                    bias_correction2_sqrt=1.0)  # fmt: skip
        rmsprop_update(p, g, a, None, None, lr=0.1, alpha=0.99, eps=1e-8, weight_decay=0.0,
                       momentum=0.0)  # fmt: skip
