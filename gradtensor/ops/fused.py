"""linear: activation(x @ weight.T + bias) as one op, so a fused kernel can stand behind it.

Forward and backward run on plain arrays: through `gradtensor.kernels` when it is enabled and the
inputs qualify, otherwise through the array-module sequence below (the reference the kernels are
checked against). The op declares its composite (matmul, bias, activation), which the registry
differentiates for gradients of gradients, so higher orders keep working through a fused layer.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from .. import backend
from .. import kernels as _kernels
from ..tensor import Tensor
from .elementwise import erf, relu, sigmoid, tanh
from .registry import Sample, composite, primitive

ACTIVATIONS = ("identity", "relu", "gelu", "gelu_tanh", "sigmoid", "tanh")

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


# -- the array-module path --------------------------------------------------------------------


def _act_forward(xp: Any, z: Any, act: str) -> tuple[Any, Any]:
    """act(z) in place where possible; returns (y, aux) with aux what the derivative needs."""
    if act == "identity":
        return z, None
    if act == "relu":
        xp.maximum(z, 0, out=z)
        return z, z
    if act == "sigmoid":
        e = xp.exp(-xp.abs(z))
        y = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return y, y
    if act == "tanh":
        xp.tanh(z, out=z)
        return z, z
    if act == "gelu":
        return z * (0.5 * (1 + backend.erf(z * _INV_SQRT_2))), z
    if act == "gelu_tanh":
        return 0.5 * z * (1 + xp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3))), z
    raise ValueError(f"linear: unknown activation {act!r}; expected one of {ACTIVATIONS}")


def _act_backward(xp: Any, g: Any, aux: Any, act: str) -> Any:
    """g * act'(z), from the aux that _act_forward kept."""
    if act == "identity":
        return g
    if act == "relu":
        return xp.where(aux > 0, g, 0)  # select: an infinite g at a dead unit gives 0
    if act == "sigmoid":
        return g * aux * (1 - aux)
    if act == "tanh":
        return g * (1 - aux * aux)
    z = aux
    if act == "gelu":
        cdf = 0.5 * (1 + backend.erf(z * _INV_SQRT_2))
        return g * (cdf + z * _INV_SQRT_2PI * xp.exp(-0.5 * z * z))
    t = xp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3))
    du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * z * z)
    return g * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * du)


def linear_forward_arrays(xp: Any, x: Any, w: Any, b: Any, act: str) -> tuple[Any, Any]:
    z = xp.matmul(x, w.T)
    if b is not None:
        z += b
    return _act_forward(xp, z, act)


def linear_backward_arrays(
    xp: Any, g: Any, x: Any, w: Any, aux: Any, act: str, bias: bool, input_grad: bool = True
) -> tuple[Any, Any, Any]:
    gz = _act_backward(xp, g, aux, act)
    gx = gz @ w if input_grad else None
    return gx, gz.T @ x, (gz.sum(axis=0) if bias else None)


# -- kernel dispatch --------------------------------------------------------------------------


class _KernelSwitch(threading.local):
    """Whether the kernels are on, per thread, like grad mode: `use_kernels(False)` in one thread
    leaves every other thread as it was."""

    enabled = os.environ.get("GRADTENSOR_KERNELS", "1").strip().lower() not in ("0", "false", "no")


_switch = _KernelSwitch()


def active_kernels() -> Any:
    """gradtensor's kernels (`gradtensor.kernels`), or None where they are off in this thread."""
    return _kernels if _switch.enabled else None


class use_kernels:
    """Turn fused kernels on or off in the calling thread: `gt.use_kernels(False)`, or
    `with gt.use_kernels(False):` to restore the previous setting on exit."""

    def __init__(self, enabled: bool = True):
        self.prev = _switch.enabled
        _switch.enabled = bool(enabled)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        _switch.enabled = self.prev


def kernels_enabled() -> bool:
    return active_kernels() is not None


def _qualifies(x: Any, w: Any, b: Any, activation: str) -> bool:
    dt = x.dtype
    if w.dtype != dt or (b is not None and b.dtype != dt):
        return False
    # dtype.char, not dtype.name: name is built anew on each access (~4 us, per call of F.linear).
    if backend.is_cuda_array(x):
        return dt.char in "efd"  # float16, float32, float64
    # On the CPU the kernels win for every activation and size measured, relu and identity
    # included (MLP step, kernels vs the array path, 1 thread, NumPy's BLAS for both:
    # 784-1024-1024-10 b256 and 784-256-256-10 b128 1.00 and 0.98; with MKL behind the kernels,
    # see kernels.blas, 0.85 and 0.85).
    return dt.char in "fd"


# -- the op -----------------------------------------------------------------------------------

_SAMPLES = [Sample((5, 3), (4, 3), (4,), activation=act) for act in ACTIVATIONS] + [
    Sample((2, 5, 3), (4, 3), None, activation="tanh"),
    Sample((3,), (2, 3), (2,)),
]


@primitive("linear", save="x", aux=True, samples=_SAMPLES)
def _linear(xp, x, w, b, *, activation):
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} and weight of shape {w.shape} (out, in) do not "
            "match: the input's last axis must equal the weight's second"
        )
    if b is not None and (b.ndim != 1 or b.shape[0] != w.shape[0]):
        raise ValueError(f"linear: bias of shape {b.shape} does not match weight {w.shape}")
    lead = x.shape[:-1]
    x2 = x.reshape(math.prod(lead), x.shape[-1])  # not -1: an axis may be empty
    k = active_kernels()
    if k is not None and _qualifies(x2, w, b, activation):
        y, aux = k.linear_act_forward(x2, w, b, activation)
        aux = ("kernel", aux)
    else:
        y, aux = linear_forward_arrays(xp, x2, w, b, activation)
        aux = ("arrays", aux)
    return y.reshape(lead + (w.shape[0],)), aux


def _linear_grad(g, y, x, w, b, *, needs, activation, aux):
    """On arrays: the kernel's backward where the forward ran the kernel, else the array path."""
    rows = math.prod(x.shape[:-1])
    g2 = g.reshape(rows, w.shape[0])
    x2 = x.reshape(rows, x.shape[-1])
    path, a = aux
    # A layer's input often needs no gradient (the first layer's data): skip that GEMM.
    if path == "kernel":
        gx, gw, gb = active_kernels().linear_act_backward(
            g2, x2, w, a, activation, bias=b is not None, input_grad=needs[0]
        )
    else:
        xp = backend.array_module(g)
        gx, gw, gb = linear_backward_arrays(xp, g2, x2, w, a, activation, b is not None, needs[0])
    # A reshaped view would make the engine copy gx before adopting it as x.grad.
    return (
        (gx if gx.shape == x.shape else gx.reshape(x.shape)) if needs[0] else None,
        gw if needs[1] else None,
        gb if b is not None and needs[2] else None,
    )


_linear.defvjp_joint(_linear_grad)


@_linear.defcomposite
def _linear_composite(x, w, b, *, activation):
    z = x @ w.swapaxes(-1, -2)
    return activation_function(activation)(z if b is None else z + b)


@composite(
    samples=[Sample((3, 4)), Sample((5,), domain=(-3, 3.0)), Sample((4,), approximate="tanh")]
)
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: x * Phi(x) exactly, or its tanh approximation."""
    if approximate == "none":
        return x * (0.5 * (1 + erf(x * _INV_SQRT_2)))
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


def activation_function(name: str) -> Any:
    """The differentiable function of a fused activation's name."""
    return {
        "identity": lambda z: z,
        "relu": relu,
        "gelu": gelu,
        "gelu_tanh": lambda z: gelu(z, approximate="tanh"),
        "sigmoid": sigmoid,
        "tanh": tanh,
    }[name]


@_linear.api
def linear(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None
) -> Tensor:
    """activation(x @ weight.T + bias), weight shaped (out, in); one fused op.

    >>> F.linear(x, w, b, activation="relu")
    """
    act = "identity" if activation is None else activation
    if act not in ACTIVATIONS:
        raise ValueError(
            f"linear: unknown activation {activation!r}; expected one of {ACTIVATIONS} or None"
        )
    return _linear(x, weight, bias, activation=act)
