"""CUDA optimizer updates: one Numba-CUDA launch for a whole list of parameters, where array ops
take four to eleven launches per parameter.

The per-element maths is that of kernels.optim_cpu (`sgd`, `adam`, `rmsprop`), the same functions,
compiled as device functions; each kernel walks every tensor of its lists with a grid-stride loop
that loads an element of every array once, calls it and stores the results. A launch takes up to
`per_launch(...)` tensors (8 or 16: CUDA's 4 KB of kernel arguments), so a longer list takes a few.
The operations and their order are the CPU's, but NVVM contracts a*b+c into fused multiply-adds
(Numba offers no switch for it), so a GPU update may differ from the CPU's in the last bit.
Launches go to CuPy's current stream (when CuPy is importable) without a host synchronisation.
Signatures and checks are those of kernels.optim_cpu; each array argument is one array or a list.

Under NUMBA_ENABLE_CUDASIM=1 the same kernels run in Numba's simulator on NumPy arrays, which is
how CI tests them. Importing this module compiles nothing and touches no GPU.
"""

from __future__ import annotations

import warnings
from typing import Any

import numba
import numpy as np
from numba import cuda

from .optim_cpu import _UPDATES, adam, rmsprop, sgd, tensor_rows, update_scalars

__all__ = [
    "SIMULATOR", "adam_update", "launch_update", "per_launch", "rmsprop_update", "sgd_update",
    "update_scalars",
]  # fmt: skip

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# A grid-stride loop covers any size with a capped grid, far below CUDA's 2**31 - 1 blocks. The
# simulator runs each thread as a Python thread: a small grid there still strides several times.
_THREADS, _MAX_BLOCKS = (32, 4) if SIMULATOR else (256, 4096)

_sgd_step = cuda.jit(device=True)(sgd)
_adam_step = cuda.jit(device=True)(adam)
_rmsprop_step = cuda.jit(device=True)(rmsprop)


# One launch updates n tensors: lists[t] is tensor t's array, and each thread walks every tensor
# with a grid stride. State a configuration does not use is an alias of g (never written here) and
# is not loaded. The scalars `c` are laid out as the CPU loops take them (optim_cpu.update_scalars)
# and come as a tuple, passed with the launch, or as a GPU array, read at each launch (the form a
# CUDA graph captures: the values written there before a launch are the ones it uses).


@cuda.jit
def _sgd(n, ps, gs, bufs, c):
    neg_lr, wd, mom, one_minus_damp, damp = c[0], c[1], c[2], c[3], c[4]
    nesterov, first, has_buf = c[5] != 0, c[6] != 0, c[7] != 0
    for t in range(n):
        p, g, buf = ps[t], gs[t], bufs[t]
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
def _adam(n, ps, gs, ms, vs, vmaxs, c):
    wd, decay, c1, b2, c2, eps, neg_step, bc2_sqrt = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    decoupled, amsgrad = c[8] != 0, c[11] != 0
    for t in range(n):
        p, g, m, v, vmax = ps[t], gs[t], ms[t], vs[t], vmaxs[t]
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
def _rmsprop(n, ps, gs, sqs, gas, bufs, c):
    neg_lr, alpha, one_minus_alpha, eps, wd, mom = c[0], c[1], c[2], c[3], c[4], c[5]
    centered, has_buf = c[7] != 0, c[8] != 0
    for t in range(n):
        p, g, sq, ga, buf = ps[t], gs[t], sqs[t], gas[t], bufs[t]
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            gi = g[i]
            pi, s, a, b = _rmsprop_step(
                p[i], gi, sq[i], ga[i] if centered else gi, buf[i] if has_buf else gi, neg_lr,
                alpha, one_minus_alpha, eps, wd, mom, centered, has_buf,
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


def _flat(fn: str, named: dict[str, Any], at: str) -> list[Any]:
    """One tensor's arrays as 1-D device arrays (None stays None), after the checks; `at` is
    the tensor's place in the lists ("[2]"), or "" for single arrays."""
    kind = "NumPy (CUDA simulator)" if SIMULATOR else "CUDA (CuPy)"
    first_name, first = next(iter(named.items()))
    first_name += at
    info = _interface(first)
    dtype = np.dtype(info["typestr"]) if info is not None else None
    if dtype is None or dtype not in DTYPES:
        got = dtype if dtype is not None else getattr(first, "dtype", type(first).__name__)
        raise ValueError(f"{fn}: {first_name} must be a float32 or float64 {kind} array, got {got}")
    shape = tuple(info["shape"])
    size = int(np.prod(shape, dtype=np.int64))
    for base, a in named.items():
        if a is None:
            continue
        name = base + at
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
            base != "grad" and readonly
        ):
            raise ValueError(f"{fn}: {name} must be C-contiguous and writeable to update in place")
    if SIMULATOR:
        return [None if a is None else a.reshape(-1) for a in named.values()]
    # sync=False: Numba would otherwise wait on each array's stream from the host; the launch is
    # ordered on CuPy's current stream, like the ops that made the arrays.
    flat = [None if a is None else cuda.as_cuda_array(a, sync=False) for a in named.values()]
    return [None if a is None else a.reshape(size) for a in flat]


def _lists(fn: str, named: dict[str, Any]) -> list[list[Any] | None]:
    """Each argument as a list of 1-D device arrays, one per tensor (None stays None), every
    tensor checked before anything is launched."""
    rows = tensor_rows(fn, named, _flat)
    return [None if a is None else [row[j] for row in rows] for j, a in enumerate(named.values())]


def _stream() -> Any:
    if SIMULATOR:
        return 0
    try:
        import cupy
    except ImportError:
        return 0  # no CuPy: the arrays come from elsewhere, and the default stream orders them
    return cuda.external_stream(cupy.cuda.get_current_stream().ptr)


# A launch's arguments must fit in 4 KB on every GPU CUDA supports, and Numba passes a 1-D array
# as seven 8-byte words. A launch takes as many tensors as fit (the scalars keep 256 bytes),
# rounded down to a power of two; shorter lists are padded to a power of two with repeats the
# kernel never reads, so a few compiled variants serve every group size.
_ARG_BYTES, _ARRAY_BYTES = 4096 - 256, 7 * 8


def per_launch(n_lists: int) -> int:
    """How many tensors one launch updates when each has `n_lists` arrays."""
    fit = _ARG_BYTES // (_ARRAY_BYTES * n_lists)
    return 1 << (fit.bit_length() - 1)


def _launch(kernel: Any, lists: list[list[Any]], *scalars: Any) -> None:
    """Run `kernel` over every tensor (lists[j][t] is tensor t's array j): one launch per
    `per_launch(len(lists))` tensors."""
    per = per_launch(len(lists))
    for start in range(0, len(lists[0]), per):
        chunk = [column[start : start + per] for column in lists]
        n = len(chunk[0])
        size = max(a.size for a in chunk[0])
        if size == 0:
            continue  # a launch needs at least one block, and there is nothing to update
        width = 1 << (n - 1).bit_length()
        args = [tuple(column + column[-1:] * (width - n)) for column in chunk]
        blocks = min(_MAX_BLOCKS, -(-size // _THREADS))
        config = kernel[blocks, _THREADS, _stream()]
        if SIMULATOR:
            config(n, *args, *scalars)
            continue
        # Small parameters (biases) make small grids on purpose; with warnings as errors (pytest)
        # Numba's under-utilization warning would fail the call. Matched by text, as in
        # kernels.cuda.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Grid size .* under-utilization")
            config(n, *args, *scalars)


_KERNELS = {"sgd_update": "_sgd", "adam_update": "_adam", "rmsprop_update": "_rmsprop"}


def _update(fn: str, arrays: tuple, hyper: dict | None = None, scalars: Any = None) -> None:
    """Update `fn` on its arrays (each one array or a list), its scalars worked out from the
    hyperparameters or read from the GPU array `scalars`."""
    lists = _lists(fn, dict(zip(_UPDATES[fn][0], arrays)))
    p, g, state = lists[0], lists[1], lists[2:]
    dtype = np.dtype(p[0].dtype) if p else np.dtype(np.float32)
    in_use = tuple(a is not None for a in state)
    if scalars is None:
        c = update_scalars(fn, dtype, in_use, **hyper)
    else:
        c = _scalars(fn, scalars, dtype, _COUNT[fn])
    _launch(globals()[_KERNELS[fn]], [p, g, *(g if a is None else a for a in state)], c)


# How many scalars each update's kernel reads (its `update_scalars`).
_COUNT = {"sgd_update": 8, "adam_update": 12, "rmsprop_update": 9}


def _scalars(fn: str, scalars: Any, dtype: np.dtype, n: int) -> Any:
    info = _interface(scalars)
    if info is None or np.dtype(info["typestr"]) != dtype or tuple(info["shape"]) != (n,):
        got = "" if info is None else f"{np.dtype(info['typestr'])} {tuple(info['shape'])}"
        raise ValueError(
            f"{fn}: scalars must be a {dtype} GPU array (the parameters' dtype) of shape "
            f"({n},), laid out as update_scalars gives them; got {got or type(scalars).__name__}"
        )
    # sync=False: a launch reads it in stream order (and a stream that captures cannot wait).
    return scalars if SIMULATOR else cuda.as_cuda_array(scalars, sync=False)


def launch_update(fn: str, *arrays: Any, scalars: Any) -> None:
    """Update `fn` ("sgd_update", ...) on its arrays, reading its scalars from the GPU array
    `scalars` (`update_scalars`'s values, in the parameters' dtype) when the launch runs: a
    CUDA graph that captures this launch uses whatever was written there before each of its
    launches. Each array argument is one array or a list of arrays, one per tensor."""
    _update(fn, arrays, scalars=scalars)


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
    """SGD in place: param (and momentum_buffer, which `first` fills with the gradient).

    Each array argument is one array or a list of arrays, one per tensor."""
    hyper = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, dampening=dampening,
                 nesterov=nesterov, first=first)  # fmt: skip
    _update("sgd_update", (param, grad, momentum_buffer), hyper)


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
    """Adam/AdamW in place: param, exp_avg, exp_avg_sq (and max_exp_avg_sq for amsgrad).

    Each array argument is one array or a list of arrays, one per tensor."""
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                 decoupled=decoupled, step_size=step_size,
                 bias_correction2_sqrt=bias_correction2_sqrt)  # fmt: skip
    _update("adam_update", (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq), hyper)


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
    """RMSprop in place: param, square_avg (grad_avg when centered, momentum_buffer if any).

    Each array argument is one array or a list of arrays, one per tensor."""
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
    _update("rmsprop_update", (param, grad, square_avg, grad_avg, momentum_buffer), hyper)
