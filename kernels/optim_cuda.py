"""CUDA optimizer updates: one Numba-CUDA launch per parameter instead of four to eleven array ops.

The per-element maths is that of kernels.optim_cpu (`sgd`, `adam`, `rmsprop`), the same functions,
compiled as device functions; each kernel is a grid-stride loop that loads an element of every
array once, calls it and stores the results. Launches go to CuPy's current stream (when CuPy is
importable) without a host synchronisation. Signatures and checks are those of kernels.optim_cpu.

Under NUMBA_ENABLE_CUDASIM=1 the same kernels run in Numba's simulator on NumPy arrays, which is
how CI tests them. Importing this module compiles nothing and touches no GPU.
"""

from __future__ import annotations

import warnings
from typing import Any

import numba
import numpy as np
from numba import cuda

from .optim_cpu import adam, rmsprop, sgd

__all__ = ["SIMULATOR", "adam_update", "rmsprop_update", "sgd_update"]

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# A grid-stride loop covers any size with a capped grid, far below CUDA's 2**31 - 1 blocks. The
# simulator runs each thread as a Python thread: a small grid there still strides several times.
_THREADS, _MAX_BLOCKS = (32, 4) if SIMULATOR else (256, 4096)

_sgd_step = cuda.jit(device=True)(sgd)
_adam_step = cuda.jit(device=True)(adam)
_rmsprop_step = cuda.jit(device=True)(rmsprop)


# State a configuration does not use is an alias of g (never written here) and is not loaded.


@cuda.jit
def _sgd(p, g, buf, neg_lr, wd, mom, one_minus_damp, damp, nesterov, first, has_buf):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        pi, b = _sgd_step(
            p[i], gi, buf[i] if has_buf else gi, neg_lr, wd, mom, one_minus_damp, damp,
            nesterov, first, has_buf,
        )  # fmt: skip
        if has_buf:
            buf[i] = b
        p[i] = pi


@cuda.jit
def _adam(p, g, m, v, vmax, wd, decay, c1, b2, c2, eps, neg_step, bc2_sqrt, decoupled, amsgrad):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        vi = v[i]
        pi, mi, vi, most = _adam_step(
            p[i], g[i], m[i], vi, vmax[i] if amsgrad else vi, wd, decay, c1, b2, c2, eps,
            neg_step, bc2_sqrt, decoupled, amsgrad,
        )  # fmt: skip
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vmax[i] = most
        p[i] = pi


@cuda.jit
def _rmsprop(p, g, sq, ga, buf, neg_lr, alpha, c, eps, wd, mom, centered, has_buf):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        pi, s, a, b = _rmsprop_step(
            p[i], gi, sq[i], ga[i] if centered else gi, buf[i] if has_buf else gi, neg_lr,
            alpha, c, eps, wd, mom, centered, has_buf,
        )  # fmt: skip
        sq[i] = s
        if centered:
            ga[i] = a
        if has_buf:
            buf[i] = b
        p[i] = pi


# --- host side -------------------------------------------------------------------------------


def _interface(a: Any) -> dict[str, Any] | None:
    """The array's (CUDA) array interface: typestr, shape, strides, data; None if it has none."""
    # The class attribute first, not the instance's: reading the interface can mean a stream query.
    if hasattr(type(a), "__cuda_array_interface__"):
        return a.__cuda_array_interface__
    if SIMULATOR and isinstance(a, np.ndarray):
        return a.__array_interface__
    return None


def _c_contiguous(shape: tuple[int, ...], strides: Any, itemsize: int) -> bool:
    if strides is None:
        return True
    expect = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != expect:
            return False
        expect *= n
    return True


def _flat(fn: str, named: dict[str, Any]) -> tuple[list[Any], int]:
    """The arrays as 1-D device arrays (None stays None) and their size, after the checks."""
    kind = "NumPy (CUDA simulator)" if SIMULATOR else "CUDA (CuPy)"
    first_name, first = next(iter(named.items()))
    info = _interface(first)
    dtype = np.dtype(info["typestr"]) if info is not None else None
    if dtype is None or dtype not in DTYPES:
        got = dtype if dtype is not None else getattr(first, "dtype", type(first).__name__)
        raise ValueError(f"{fn}: {first_name} must be a float32 or float64 {kind} array, got {got}")
    shape = tuple(info["shape"])
    size = int(np.prod(shape, dtype=np.int64))
    for name, a in named.items():
        if a is None:
            continue
        ai = _interface(a)
        if ai is None or np.dtype(ai["typestr"]) != dtype or tuple(ai["shape"]) != shape:
            got = (
                f"{np.dtype(ai['typestr'])} {tuple(ai['shape'])}"
                if ai is not None
                else f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}"
            )
            raise ValueError(
                f"{fn}: {name} must be a {kind} array like {first_name} ({dtype}, shape "
                f"{shape}), got {got}"
            )
        readonly = ai["data"][1] if ai.get("data") else False
        if not _c_contiguous(shape, ai.get("strides"), dtype.itemsize) or (
            name != "grad" and readonly
        ):
            raise ValueError(f"{fn}: {name} must be C-contiguous and writeable to update in place")
    if SIMULATOR:
        return [None if a is None else a.reshape(-1) for a in named.values()], size
    # sync=False: Numba would otherwise wait on each array's stream from the host; the launch is
    # ordered on CuPy's current stream, like the ops that made the arrays.
    flat = [None if a is None else cuda.as_cuda_array(a, sync=False) for a in named.values()]
    return [None if a is None else a.reshape(size) for a in flat], size


def _stream() -> Any:
    if SIMULATOR:
        return 0
    try:
        import cupy
    except ImportError:
        return 0  # no CuPy: the arrays come from elsewhere, and the default stream orders them
    return cuda.external_stream(cupy.cuda.get_current_stream().ptr)


def _launch(kernel: Any, size: int, *args: Any) -> None:
    if size == 0:
        return  # a launch needs at least one block, and there is nothing to update
    blocks = min(_MAX_BLOCKS, -(-size // _THREADS))
    config = kernel[blocks, _THREADS, _stream()]
    if SIMULATOR:
        config(*args)
        return
    # Small parameters (biases) make small grids on purpose; with warnings as errors (pytest)
    # Numba's under-utilization warning would fail the call. Matched by text, as in kernels.cuda.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Grid size .* under-utilization")
        config(*args)


def sgd_update(
    param: Any,
    grad: Any,
    momentum_buffer: Any | None,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    first: bool = False,
) -> None:
    """SGD in place: param (and momentum_buffer, which `first` fills with the gradient)."""
    (p, g, b), n = _flat(
        "sgd_update", {"param": param, "grad": grad, "momentum_buffer": momentum_buffer}
    )
    ft = np.dtype(p.dtype).type
    _launch(
        _sgd, n, p, g, g if b is None else b, ft(-lr), ft(weight_decay), ft(momentum),
        ft(1 - dampening), ft(dampening), bool(nesterov), bool(first), b is not None,
    )  # fmt: skip


def adam_update(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any | None,
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
    (p, g, m, v, vmax), n = _flat(
        "adam_update",
        {
            "param": param,
            "grad": grad,
            "exp_avg": exp_avg,
            "exp_avg_sq": exp_avg_sq,
            "max_exp_avg_sq": max_exp_avg_sq,
        },
    )
    ft = np.dtype(p.dtype).type
    _launch(
        _adam, n, p, g, m, v, g if vmax is None else vmax, ft(weight_decay),
        ft(1 - lr * weight_decay), ft(1 - beta1), ft(beta2), ft(1 - beta2), ft(eps),
        ft(-step_size), ft(bias_correction2_sqrt), bool(decoupled), vmax is not None,
    )  # fmt: skip


def rmsprop_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    grad_avg: Any | None,
    momentum_buffer: Any | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
) -> None:
    """RMSprop in place: param, square_avg (grad_avg when centered, momentum_buffer if any)."""
    (p, g, sq, ga, b), n = _flat(
        "rmsprop_update",
        {
            "param": param,
            "grad": grad,
            "square_avg": square_avg,
            "grad_avg": grad_avg,
            "momentum_buffer": momentum_buffer,
        },
    )
    ft = np.dtype(p.dtype).type
    _launch(
        _rmsprop, n, p, g, sq, g if ga is None else ga, g if b is None else b, ft(-lr),
        ft(alpha), ft(1 - alpha), ft(eps), ft(weight_decay), ft(momentum), ga is not None,
        b is not None,
    )  # fmt: skip
