"""Fused kernels for gradtensor: plain arrays in, plain arrays out.

`linear_act_forward` / `linear_act_backward` (linear + activation) dispatch on the array type:
NumPy arrays go to `kernels.cpu` (BLAS + Numba), CuPy arrays and other `__cuda_array_interface__`
objects to `kernels.cuda` (cuBLAS + Numba-CUDA). `plan_linear_act_forward` / `_backward` make
their checks and choices once, for operands of given shapes, dtypes and layouts, and return the
call that runs them (what gt.compile replays; with keep=True a plan writes each run's results
into the arrays of the run before, once nothing else holds them: `results`).
`cross_entropy_forward` / `_backward` (the loss and its derivative, one pass a row; planned
likewise), `im2col` / `col2im` (conv2d's blocks) and `max_pool2d_forward` / `_backward` take
NumPy arrays, to `kernels.loss_cpu` and `kernels.conv_cpu`. `sgd_update`, `adam_update` and
`rmsprop_update` (one-pass optimizer updates, in place, on one parameter or a list of them)
dispatch the same way, to `kernels.optim_cpu` (Numba) or `kernels.optim_cuda` (one Numba-CUDA
launch for a list of parameters); `plan_update` checks once, as the linear plans do.
Backends are imported on first use, so importing `kernels` costs no Numba compilation, imports
no CuPy and touches no GPU.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from ._api import ACTIVATIONS, AUX_KIND, results

__all__ = [
    "ACTIVATIONS",
    "AUX_KIND",
    "adam_update",
    "col2im",
    "conv_accepts",
    "cross_entropy_accepts",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "im2col",
    "launch_update",
    "linear_act_accepts",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "linear_act_backward",
    "linear_act_forward",
    "plan_cross_entropy_backward",
    "plan_cross_entropy_forward",
    "plan_linear_act_backward",
    "plan_linear_act_forward",
    "plan_update",
    "results",
    "rmsprop_update",
    "sgd_update",
    "update_accepts",
    "update_scalars",
]


_loaded: dict[str, ModuleType] = {}


def _module(name: str) -> ModuleType:
    # Looked up on every call: a dict hit, where import_module would take a few microseconds.
    module = _loaded.get(name)
    if module is None:
        module = _loaded[name] = importlib.import_module(f".{name}", __name__)
    return module


def _backend(fn: str, x: Any) -> ModuleType:
    if isinstance(x, np.ndarray):
        return _module("cpu")
    # The class attribute, not the instance's: reading the interface can mean a stream query.
    if hasattr(type(x), "__cuda_array_interface__"):
        return _module("cuda")
    raise ValueError(
        f"{fn}: x must be a NumPy array or a CUDA array (CuPy), got "
        f"{type(x).__module__}.{type(x).__qualname__}"
    )


def linear_act_accepts(x: Any, weight: Any, bias: Any | None, activation: str) -> bool:
    """Whether the linear + activation kernels take these operands: one float dtype that the
    device's kernels have (float32 or float64 on the CPU, float16 too on a GPU), any shapes."""
    dt = getattr(x, "dtype", None)
    if (
        dt is None
        or getattr(weight, "dtype", None) != dt
        or (bias is not None and getattr(bias, "dtype", None) != dt)
        or activation not in AUX_KIND
    ):
        return False
    # dtype.char, not dtype.name: name is built anew on each access (a few us per layer call).
    if isinstance(x, np.ndarray):
        return dt.char in "fd" and isinstance(weight, np.ndarray)
    return hasattr(type(x), "__cuda_array_interface__") and dt.char in "efd"


def update_accepts(arrays: list[Any]) -> bool:
    """Whether the optimizer updates take these arrays (param, grad, state...; None for unused
    state): float32 or float64 of one dtype and shape, C-contiguous, all host or all CUDA arrays."""
    d = arrays[0]
    if d.dtype.char not in "fd":
        return False
    if type(d) is np.ndarray:  # host arrays, the common case, checked without the generic walk
        dtype, shape = d.dtype, d.shape
        for a in arrays:
            if a is not None and not (
                type(a) is np.ndarray
                and a.dtype == dtype
                and a.shape == shape
                and a.flags.c_contiguous
            ):
                return False
        return True
    # The class attribute: reading the instance's interface can query a stream.
    gpu = hasattr(type(d), "__cuda_array_interface__")
    return all(
        a is None
        or (
            hasattr(type(a), "__cuda_array_interface__") == gpu
            and a.dtype == d.dtype
            and a.shape == d.shape
            and a.flags.c_contiguous
        )
        for a in arrays
    )


def conv_accepts(x: Any, weight: Any) -> bool:
    """Whether im2col / col2im take conv2d's operands: float32 or float64 NumPy arrays."""
    return (
        type(x) is np.ndarray
        and type(weight) is np.ndarray
        and x.dtype.char in "fd"
        and weight.dtype == x.dtype
    )


def im2col(
    x: Any, kernel_size: Any, stride: Any, dilation: Any, padding: Any, out_size: Any
) -> Any:
    """conv2d's blocks, (N, C * KH * KW, OH * OW); see `kernels.conv_cpu.im2col`."""
    return _module("conv_cpu").im2col(x, kernel_size, stride, dilation, padding, out_size)


def col2im(cols: Any, shape: Any, kernel_size: Any, stride: Any, dilation: Any, padding: Any,
           out_size: Any) -> Any:  # fmt: skip
    """im2col's transpose; see `kernels.conv_cpu.col2im`."""
    conv = _module("conv_cpu")
    return conv.col2im(cols, shape, kernel_size, stride, dilation, padding, out_size)


def max_pool2d_forward(
    x: Any, kernel_size: Any, stride: Any, dilation: Any, padding: Any, out_size: Any
) -> tuple:
    """(window maxima, their places); see `kernels.conv_cpu.max_pool2d_forward`. Takes what
    `conv_accepts(x, x)` does."""
    conv = _module("conv_cpu")
    return conv.max_pool2d_forward(x, kernel_size, stride, dilation, padding, out_size)


def max_pool2d_backward(g: Any, at: Any, shape: Any, kernel_size: Any, stride: Any,
                        dilation: Any, padding: Any) -> Any:  # fmt: skip
    """max_pool2d's input gradient; see `kernels.conv_cpu.max_pool2d_backward`."""
    conv = _module("conv_cpu")
    return conv.max_pool2d_backward(g, at, shape, kernel_size, stride, dilation, padding)


def cross_entropy_accepts(x: Any, target: Any) -> bool:
    """Whether the cross-entropy loops take the operands: C-ordered float32 or float64 NumPy
    logits (N, C) with N, C > 0, and N integer targets."""
    return (
        type(x) is np.ndarray
        and type(target) is np.ndarray
        and x.ndim == 2
        and x.dtype.char in "fd"
        and x.flags.c_contiguous
        and x.shape[0] > 0
        and x.shape[1] > 0
        and target.shape == x.shape[:1]
        and target.dtype.kind in "iu"
    )


def cross_entropy_forward(x: Any, target: Any, ignore_index: int) -> tuple:
    """(losses, shift, logs, rows counted); see `kernels.loss_cpu.cross_entropy_forward`."""
    return _module("loss_cpu").cross_entropy_forward(x, target, ignore_index)


def plan_cross_entropy_forward(x: Any, ignore_index: int, keep: bool = False) -> Callable:
    """run(x, target) -> cross_entropy_forward's results, for logits shaped and typed as x
    (keep: as plan_linear_act_forward)."""
    return _module("loss_cpu").plan_forward(x, ignore_index, keep)


def plan_cross_entropy_backward(
    x: Any, ignore_index: int, scale_shape: tuple, keep: bool = False
) -> Callable:
    """run(x, target, shift, logs, scale) -> cross_entropy_backward's result, for logits shaped
    and typed as x and a scale shaped scale_shape (keep: as plan_linear_act_forward)."""
    return _module("loss_cpu").plan_backward(x, ignore_index, scale_shape, keep)


def cross_entropy_backward(
    x: Any, target: Any, ignore_index: int, shift: Any, logs: Any, scale: Any
) -> Any:
    """d loss / d x; see `kernels.loss_cpu.cross_entropy_backward`."""
    return _module("loss_cpu").cross_entropy_backward(x, target, ignore_index, shift, logs, scale)


def plan_update(fn: str, *arrays: Any, **hyper: Any) -> Callable:
    """run(grads, hyper): the update `fn` ("sgd_update", ...) of these parameters and state
    (the same lists; a caller plans again when one is replaced), given gradients shaped, typed
    and laid out as `arrays[1]` and the hyperparameters as a dict, its checks made now."""
    module = _optim_module(fn, arrays[0])
    plan = getattr(module, "plan_update", None)
    if plan is not None:
        return plan(fn, *arrays, **hyper)
    update, params, state = getattr(module, fn), arrays[0], arrays[2:]
    return lambda grads, hyper: update(params, grads, *state, **hyper)


def update_scalars(fn: str, dtype: Any, in_use: tuple, **hyper: Any) -> tuple:
    """The scalars of update `fn` ("sgd_update", ...) for these hyperparameters, in dtype's
    type, then 1 or 0 for each state array in use: what `launch_update` reads from a GPU array."""
    return _module("optim_cpu").update_scalars(fn, dtype, in_use, **hyper)


def launch_update(fn: str, *arrays: Any, scalars: Any) -> None:
    """Update `fn` on CUDA arrays (as `sgd_update`, ...), its scalars read from the GPU array
    `scalars` (`update_scalars`'s, in the parameters' dtype) when the launch runs: a CUDA graph
    that captured it uses what was written there before each of its launches."""
    module = _optim_module(fn, arrays[0])
    if module is not _module("optim_cuda"):
        raise ValueError(f"{fn}: launch_update takes CUDA arrays (a CUDA graph's update)")
    module.launch_update(fn, *arrays, scalars=scalars)


def linear_act_forward(
    x: Any, weight: Any, bias: Any | None, activation: str
) -> tuple[Any, Any | None]:
    """y, aux = act(x @ weight.T + bias); e.g. y, aux = linear_act_forward(x, w, b, "gelu")."""
    return _backend("linear_act_forward", x).linear_act_forward(x, weight, bias, activation)


def linear_act_backward(
    gy: Any,
    x: Any,
    weight: Any,
    aux: Any | None,
    activation: str,
    bias: bool = True,
    input_grad: bool = True,
) -> tuple[Any | None, Any, Any | None]:
    """gx, gw, gb for linear_act_forward; e.g. linear_act_backward(gy, x, w, aux, "gelu").

    gx is None when input_grad=False (the GEMM for it is skipped).
    """
    module = _backend("linear_act_backward", x)
    return module.linear_act_backward(gy, x, weight, aux, activation, bias, input_grad)


def plan_linear_act_forward(
    x: Any, weight: Any, bias: Any | None, activation: str, keep: bool = False
) -> Callable:
    """run(x, weight, bias) -> (y, aux): linear_act_forward for operands shaped, typed and laid
    out as these, its checks made now; e.g. run = plan_linear_act_forward(x, w, b, "relu").
    keep=True: each run writes its results into the arrays of the run before, once nothing
    else holds them (see `_api.results`)."""
    module = _backend("linear_act_forward", x)
    plan = getattr(module, "plan_forward", None)
    if plan is not None:
        return plan(x, weight, bias, activation, keep)
    forward = module.linear_act_forward
    return lambda x, weight, bias: forward(x, weight, bias, activation)


def plan_linear_act_backward(
    gy: Any,
    x: Any,
    weight: Any,
    aux: Any | None,
    activation: str,
    bias: bool = True,
    input_grad: bool = True,
    keep: bool = False,
) -> Callable:
    """run(gy, x, weight, aux) -> (gx, gw, gb): linear_act_backward for operands shaped, typed
    and laid out as these, its checks made now (keep: as plan_linear_act_forward)."""
    module = _backend("linear_act_backward", x)
    plan = getattr(module, "plan_backward", None)
    if plan is not None:
        return plan(gy, x, weight, aux, activation, bias, input_grad, keep)
    backward = module.linear_act_backward
    return lambda gy, x, weight, aux: backward(gy, x, weight, aux, activation, bias, input_grad)


def _optim(fn: str, param: Any) -> Any:
    return getattr(_optim_module(fn, param), fn)


def _optim_module(fn: str, param: Any) -> ModuleType:
    if isinstance(param, (list, tuple)):  # a list of tensors: all of one kind, as checked later
        if not param:
            return _module("optim_cpu")  # nothing to update
        param = param[0]
    if isinstance(param, np.ndarray):
        return _module("optim_cpu")
    if hasattr(type(param), "__cuda_array_interface__"):
        return _module("optim_cuda")
    raise ValueError(
        f"{fn}: param must be a NumPy array or a CUDA array (CuPy), got "
        f"{type(param).__module__}.{type(param).__qualname__}"
    )


def sgd_update(param: Any, grad: Any, momentum_buffer: Any | None, **hyper: Any) -> None:
    """SGD step in place; e.g. sgd_update(p, g, buf, lr=0.1, momentum=0.9), or with lists of
    arrays (one per parameter) in place of p, g and buf."""
    _optim("sgd_update", param)(param, grad, momentum_buffer, **hyper)


def adam_update(
    param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any | None, **hyper: Any
) -> None:
    """Adam/AdamW step in place; the keywords are those of `kernels.optim_cpu.adam_update`."""
    _optim("adam_update", param)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, **hyper)


def rmsprop_update(
    param: Any, grad: Any, square_avg: Any, grad_avg: Any | None, momentum_buffer: Any | None,
    **hyper: Any,
) -> None:  # fmt: skip
    """RMSprop step in place; the keywords are those of `kernels.optim_cpu.rmsprop_update`."""
    _optim("rmsprop_update", param)(param, grad, square_avg, grad_avg, momentum_buffer, **hyper)
