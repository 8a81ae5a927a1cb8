"""linear: activation(x @ weight.T + bias) as one op, so a fused kernel can stand behind it.

Forward and backward run on plain arrays: the array-module sequence below (the reference the
kernels are checked against), or the kernels, registered as the op's "kernel" implementation,
where `gradtensor.kernels` accepts the operands and kernels are on. The op declares its composite
(matmul, bias, activation), which the registry differentiates for gradients of gradients, so
higher orders keep working through a fused layer.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from .. import kernels as _kernels
from ..kernels.activations import ACTIVATIONS, TABLE
from ..tensor import Tensor
from .activations import activation_function, formulas
from .registry import Sample, primitive

# -- the array-module path --------------------------------------------------------------------


def linear_forward_arrays(xp: Any, x: Any, w: Any, b: Any, act: str) -> tuple[Any, Any]:
    """y, aux: act(x @ w.T + b) and what its derivative reads (as the kernels return them)."""
    z = xp.matmul(x, w.T)
    if b is not None:
        z += b
    saves = TABLE[act].saves
    y = formulas(act, xp)[0](z)
    return y, (y if saves == "output" else z if saves == "input" else None)


def linear_backward_arrays(
    xp: Any, g: Any, x: Any, w: Any, aux: Any, act: str, bias: bool, input_grad: bool = True
) -> tuple[Any, Any, Any]:
    gz = g if aux is None else formulas(act, xp)[1](g, aux)
    gx = gz @ w if input_grad else None
    return gx, gz.T @ x, (gz.sum(axis=0) if bias else None)


# -- the op -----------------------------------------------------------------------------------

_SAMPLES = [Sample((5, 3), (4, 3), (4,), activation=act) for act in ACTIVATIONS] + [
    Sample((2, 5, 3), (4, 3), None, activation="tanh"),
    Sample((3,), (2, 3), (2,)),
]


def _torch_linear(t: Any, x: Any, w: Any, b: Any = None, activation: Any = None) -> Any:
    z = t.nn.functional.linear(x, w, b)
    if activation in (None, "identity"):
        return z
    f = t.nn.functional
    return f.gelu(z, approximate="tanh") if activation == "gelu_tanh" else getattr(f, activation)(z)


@primitive("linear", save="x", aux=True, samples=_SAMPLES, torch=_torch_linear)
def _linear(xp, x, w, b, *, activation):
    _check_shapes(x, w, b)
    y, aux = linear_forward_arrays(xp, _rows(x), w, b, activation)
    return y.reshape(x.shape[:-1] + (w.shape[0],)), aux


def _check_shapes(x: Any, w: Any, b: Any) -> None:
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} and weight of shape {w.shape} (out, in) do not "
            "match: the input's last axis must equal the weight's second"
        )
    if b is not None and (b.ndim != 1 or b.shape[0] != w.shape[0]):
        raise ValueError(f"linear: bias of shape {b.shape} does not match weight {w.shape}")


def _rows(a: Any) -> Any:
    """A batch of any rank as the 2-D (rows, features) the GEMMs take."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])  # not -1: an axis may be empty


def _linear_grad(g, y, x, w, b, *, needs, activation, aux=None):
    """On arrays: the array path's GEMMs and act'."""
    xp = backend.array_module(g)
    # A layer's input often needs no gradient (the first layer's data): skip that GEMM.
    gx, gw, gb = linear_backward_arrays(
        xp, _rows(g), _rows(x), w, aux, activation, b is not None, needs[0]
    )
    # A reshaped view would make the engine copy gx before adopting it as x.grad.
    return (
        (gx if gx.shape == x.shape else gx.reshape(x.shape)) if needs[0] else None,
        gw if needs[1] else None,
        gb if b is not None and needs[2] else None,
    )


def _plan_kernel(xp, x, w, b, *, activation, keep=False):
    """The kernel forward for operands like these, its checks made now: run(x, w, b) -> (y,
    aux). A call runs it at once, a replay of gt.compile many times (keep: see
    kernels.plan_linear_act_forward)."""
    _check_shapes(x, w, b)
    run = _kernels.plan_linear_act_forward(_rows(x), w, b, activation, keep)
    if x.ndim == 2:
        return run
    shape = x.shape[:-1] + (w.shape[0],)

    def forward(x, w, b):
        y, aux = run(_rows(x), w, b)
        return y.reshape(shape), aux

    return forward


def _plan_kernel_grad(g, y, x, w, b, *, needs, activation, aux=None, keep=False):
    """The kernel derivative for operands like these, its checks made now (as _plan_kernel):
    rule(g, x, w, b, aux) -> (gx, gw, gb), each None where not needed."""
    bias = b is not None
    rows = _rows(g), _rows(x)
    run = _kernels.plan_linear_act_backward(*rows, w, aux, activation, bias, needs[0], keep)
    keep_w, keep_b = needs[1], bias and needs[2]
    if x.ndim == 2:

        def rule(g, x, w, b, aux):
            gx, gw, gb = run(g, x, w, aux)
            return gx, gw if keep_w else None, gb if keep_b else None

        return rule

    def rule_nd(g, x, w, b, aux):
        gx, gw, gb = run(_rows(g), _rows(x), w, aux)
        gx = gx.reshape(x.shape) if needs[0] else None
        return gx, gw if keep_w else None, gb if keep_b else None

    return rule_nd


def _linear_kernel_grad(g, y, x, w, b, *, needs, activation, aux=None):
    rule = _plan_kernel_grad(g, y, x, w, b, needs=needs, activation=activation, aux=aux)
    return rule(g, x, w, b, aux)


@_linear.implementation(
    "kernel",
    accepts=lambda x, w, b, *, activation: _kernels.linear_act_accepts(x, w, b, activation),
    backward=_linear_kernel_grad,
    plan=_plan_kernel,
    plan_backward=_plan_kernel_grad,
)
def _linear_kernel(xp, x, w, b, *, activation):
    return _plan_kernel(xp, x, w, b, activation=activation)(x, w, b)


_linear.defvjp_joint(_linear_grad)


@_linear.defcomposite
def _linear_composite(x, w, b, *, activation):
    z = x @ w.swapaxes(-1, -2)
    return activation_function(activation)(z if b is None else z + b)


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
