"""The activation ops, each made from its entry in the activation table (kernels.activations).

The table's formulas run here over two maths namespaces: NumPy's or CuPy's functions for the
forward and for a plain backward (arrays in, arrays out, nothing recorded), and gradtensor's ops
for the derivative under create_graph, which is then recorded like any other computation, so
gradients of gradients come from differentiating the table's derivative. Fused `linear` takes
the same formulas for its array path and its composite.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import backend
from ..kernels.activations import ACTIVATIONS as ACTIVATIONS
from ..kernels.activations import TABLE
from ..tensor import Tensor
from .elementwise import UNARY, _as_float, erf, exp, maximum, where
from .registry import Sample, primitive

_INV_SQRT_2 = 1 / math.sqrt(2)

# Each activation op's record: the samples it is gradchecked on (to second order) and its twins.
RECORDS: dict[str, dict[str, Any]] = {
    "relu": dict(samples=UNARY, torch="relu", numpy=lambda np, x: np.maximum(x, 0)),
    "sigmoid": dict(samples=UNARY + [Sample((5,), domain=(-30.0, 30.0))], torch="sigmoid"),
    "tanh": dict(samples=UNARY, torch="tanh", numpy="tanh"),
    "gelu": dict(
        samples=[Sample((3, 4)), Sample((5,), domain=(-3, 3.0)), Sample((4,), approximate="tanh")],
        torch="nn.functional.gelu",
    ),
    "gelu_tanh": dict(
        samples=[Sample((3, 4)), Sample((5,), domain=(-3, 3.0))],
        torch=lambda t, x: t.nn.functional.gelu(x, approximate="tanh"),
    ),
    "silu": dict(
        samples=[Sample((3, 4)), Sample((5,), domain=(-6.0, 6.0))], torch="nn.functional.silu"
    ),
}
_KEEPS_INTEGERS = {"relu"}  # as PyTorch's: relu of an int tensor is an int tensor


def _const(v: float) -> Any:
    # A Python number, which NumPy and CuPy take in the array's own dtype (an int stays an int).
    return int(v) if float(v).is_integer() else v


def _sigmoid_arrays(xp: Any) -> Any:
    def sigmoid(z):
        # exp of a non-positive number only, so that no input overflows (z = -1e4 included).
        e = xp.exp(-xp.abs(z))
        return backend.where(xp, z >= 0, 1 / (1 + e), e / (1 + e))

    return sigmoid


def array_maths(xp: Any, dtype: Any = None) -> Any:
    """The table's maths namespace over the arrays of `xp` (NumPy or CuPy); given the host
    arrays' float dtype, its numbers are 0-d arrays of it (backend.number_as: the same results,
    for less)."""
    ns = _ARRAY_MATHS.get((xp, dtype))
    if ns is None:
        const = _const if dtype is None else lambda v: backend.number_as(_const(v), dtype)
        ns = _ARRAY_MATHS[xp, dtype] = SimpleNamespace(
            const=const,
            where=lambda c, a, b: backend.where(xp, c, a, b),
            maximum=xp.maximum,
            exp=xp.exp,
            tanh=xp.tanh,
            sigmoid=_sigmoid_arrays(xp),
            ncdf=lambda z: 0.5 * (1 + backend.erf(z * _INV_SQRT_2)),
        )
    return ns


_ARRAY_MATHS: dict[Any, Any] = {}
_FORMULAS: dict[tuple, tuple[Any, Any]] = {}  # (activation, xp or Tensor, dtype) -> fns


def formulas(name: str, on: Any, dtype: Any = None) -> tuple[Any, Any]:
    """(value, grad) of activation `name` over arrays of module `on` (of float `dtype`, if
    given, on the host), or over Tensors when `on` is Tensor (grad only: Tensors' forward always
    runs on arrays)."""
    key = (name, on, dtype)
    fns = _FORMULAS.get(key)
    if fns is None:
        maths = _TENSOR_MATHS if on is Tensor else array_maths(on, dtype)
        fns = _FORMULAS[key] = TABLE[name].maths(maths)
    return fns


def _make_op(name: str) -> Any:
    saves = TABLE[name].saves
    keeps_integers = name in _KEEPS_INTEGERS
    values: dict[Any, Any] = {}  # xp -> value
    grads: dict[Any, Any] = {}  # a host gradient's dtype, or another gradient's type -> grad

    def forward(xp, x):
        value = values.get(xp) or values.setdefault(xp, formulas(name, xp)[0])
        if x.dtype.kind in "biu" and not keeps_integers:
            x = _as_float(x)
        return value(x)

    forward.__name__ = name
    forward.__doc__ = f"The {name} activation, elementwise (gradtensor.kernels.activations)."
    op = primitive(name, save={"output": "y", "input": "x"}[saves], **RECORDS[name])(forward)

    def vjp(g, y, x):
        host = type(g) is np.ndarray
        key = g.dtype if host else type(g)
        grad = grads.get(key)
        if grad is None:
            if host:
                grad = formulas(name, np, g.dtype if g.dtype.kind == "f" else None)[1]
            else:
                on = Tensor if isinstance(g, Tensor) else backend.array_module(g)
                grad = formulas(name, on)[1]
            grads[key] = grad
        return grad(g, y if saves == "output" else x)

    return op.defvjp(vjp)


OPS = {name: _make_op(name) for name in TABLE if name != "identity"}
relu, sigmoid, tanh, silu = OPS["relu"], OPS["sigmoid"], OPS["tanh"], OPS["silu"]

_TENSOR_MATHS = SimpleNamespace(
    const=float,
    where=where,
    maximum=maximum,
    exp=exp,
    tanh=tanh,
    sigmoid=sigmoid,
    ncdf=lambda z: 0.5 * (1 + erf(z * _INV_SQRT_2)),
)


@OPS["gelu"].api
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: x * Phi(x) exactly, or its tanh approximation."""
    if approximate in ("none", "tanh"):
        return OPS["gelu" if approximate == "none" else "gelu_tanh"](x)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


@primitive(
    save="x", samples=UNARY + [Sample((5,), domain=(-40.0, 40.0))], torch="nn.functional.softplus"
)
def softplus(xp, x):
    """log(1 + exp(x)), with no overflow: max(x, 0) + log1p(exp(-|x|))."""
    x = _as_float(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


softplus.defvjp(lambda g, y, x: g * sigmoid(x))  # one derivative, so softplus'(0) is 1/2


def activation_function(name: str) -> Any:
    """The differentiable function of a fused activation's name."""
    return (lambda z: z) if name == "identity" else OPS[name]
