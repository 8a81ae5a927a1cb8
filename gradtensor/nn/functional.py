"""Neural-network functions built from primitives: activations, softmax, losses, dropout.

They are composites: their gradients come from the primitives they call. Two are single ops
instead: `linear`, because a fused kernel stands behind it, and `cross_entropy`, whose composite
(nll_loss of log_softmax) cost some thirty array calls a step (gradtensor.ops.loss).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..ops import (
    ACTIVATIONS,
    erf,
    exp,
    isfinite,
    linear,
    logsumexp,
    relu,
    sigmoid,
    tanh,
    where,
)
from ..ops import softplus as _softplus
from ..ops.loss import cross_entropy_op
from ..ops.registry import Sample, composite
from ..tensor import Tensor, _to_tensor

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "gelu",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
    "ACTIVATIONS",
]

_ACT = [Sample((3, 4)), Sample((5,), domain=(-3.0, 3.0))]


@composite(samples=_ACT + [Sample((3,), negative_slope=0.2)])
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return where(x > 0, x, x * negative_slope)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


@composite(samples=_ACT + [Sample((4,), approximate="tanh")])
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: x * Phi(x) exactly, or its tanh approximation."""
    if approximate == "none":
        return x * (0.5 * (1 + erf(x * (1 / math.sqrt(2)))))
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (as PyTorch)."""
    bx = x if beta == 1 else x * beta
    y = _softplus(bx) if beta == 1 else _softplus(bx) / beta
    return where(bx > threshold, x, y)


@composite(samples=_ACT)
def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return x * sigmoid(x)


@composite(samples=[Sample((3, 4)), Sample((2, 3, 4), axis=1), Sample((5,), domain=(-50, 50))])
def log_softmax(x: Tensor, axis: int = -1, *, dim: Any = None) -> Tensor:
    """x - logsumexp(x): log-probabilities, stable and precise for any magnitude of x."""
    axis = dim if dim is not None else axis
    if x.size:
        # x - max(x) first, exactly: x - logsumexp(x) would round at the scale of x (a float32
        # logit of 1e4 carries an error of 1e-3). A constant shift changes no derivative.
        m = x.detach().max(axis=axis, keepdims=True)
        x = x - where(isfinite(m), m, 0)
    return x - logsumexp(x, axis=axis, keepdims=True)


@composite(samples=[Sample((3, 4)), Sample((2, 3, 4), axis=0)])
def softmax(x: Tensor, axis: int = -1, *, dim: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed as exp(log_softmax(x))."""
    return exp(log_softmax(x, axis, dim=dim))


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def _reduce(op: str, loss: Tensor, reduction: str) -> Tensor:
    _check_reduction(op, reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


@composite(samples=[Sample((3, 4), (3, 4)), Sample((5,), (5,), reduction="sum")])
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error."""
    target = _as_operand(target, input)
    if target.shape != input.shape:
        raise ValueError(
            f"mse_loss: input shape {input.shape} and target shape {target.shape} differ"
        )
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def _class_targets(op: str, logits: Tensor, target: Any) -> Any:
    if isinstance(target, Tensor):
        t = target.data
    else:
        t = target if backend.is_cuda_array(target) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, not {t.dtype}")
    if logits.ndim != 2 or t.ndim != 1 or t.shape[0] != logits.shape[0]:
        raise ValueError(
            f"{op}: expected input (N, C) and target (N,), got {logits.shape} and {tuple(t.shape)}"
        )
    return backend.to_device(t, logits.device)


@composite(
    samples=[
        Sample((4, 3), np.array([0, 2, 1, 2])),
        Sample((4, 3), np.array([0, 2, -100, 1]), reduction="sum"),
    ]
)
def nll_loss(
    input: Tensor, target: Any, reduction: str = "mean", ignore_index: int = -100
) -> Tensor:
    """Negative log-likelihood of integer class targets, given log-probabilities (N, C)."""
    _check_reduction("nll_loss", reduction)  # before any work
    t = _class_targets("nll_loss", input, target)
    xp = backend.array_module(t)
    keep = t != ignore_index
    n, c = input.shape
    valid = t[keep]
    if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= c):
        raise IndexError(
            f"nll_loss: target classes must lie in [0, {c}); got "
            f"{int(valid.min())}..{int(valid.max())}"
        )
    rows = xp.arange(n)
    loss = -input[rows[keep], t[keep]]
    if reduction == "none":
        return loss if bool(keep.all()) else _scatter_rows(loss, keep, n)
    if reduction == "mean":
        # The mean is over the targets that count (ignored ones contribute nothing).
        return loss.sum() / max(int(keep.sum()), 1)
    return loss.sum()


def _scatter_rows(values: Tensor, keep: Any, n: int) -> Tensor:
    from ..ops.shape import _scatter

    return _scatter(values, shape=(n,), index=(backend.array_module(keep).nonzero(keep)[0],))


def cross_entropy(
    input: Tensor, target: Any, reduction: str = "mean", ignore_index: int = -100
) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer class targets (N,).

    One op (gradtensor.ops.loss) with the value and derivative of
    nll_loss(log_softmax(input, axis=1), target, reduction, ignore_index).
    """
    _check_reduction("cross_entropy", reduction)
    t = _class_targets("cross_entropy", input, target)
    return cross_entropy_op(input, t, reduction, ignore_index)


@composite(
    samples=[
        Sample((3, 4), np.array([[0.0, 1, 1, 0], [1, 0, 0.5, 1], [0, 0, 1, 1]])),
        Sample((5,), np.array([0.0, 1, 1, 0, 1]), reduction="sum"),
    ]
)
def binary_cross_entropy_with_logits(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula: softplus(x) - x * t."""
    target = _as_operand(target, input)
    if target.shape != input.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: input shape {input.shape} and target "
            f"shape {target.shape} differ"
        )
    loss = _softplus(input) - input * target
    return _reduce("binary_cross_entropy_with_logits", loss, reduction)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero elements with probability p, scale the rest by 1/(1-p); identity when not training."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = backend.random_uniform(x.shape, np.float32, x.device) >= p
    return x * Tensor._make(keep.astype(x.dtype) * (1 / (1 - p)))


def _as_operand(t: Any, like: Tensor) -> Tensor:
    if isinstance(t, Tensor):
        return t
    return _to_tensor(t, "loss", like.device).astype(like.dtype)


def linear_composite(x: Tensor, w: Tensor, b: Any, activation: str) -> Tensor:
    """`linear` from primitives: what its derivative is when gradients of gradients are wanted."""
    z = x @ w.swapaxes(-1, -2)
    if b is not None:
        z = z + b
    return _TENSOR_ACTS[activation](z)


_TENSOR_ACTS = {
    "identity": lambda z: z,
    "relu": relu,
    "gelu": gelu,
    "gelu_tanh": lambda z: gelu(z, approximate="tanh"),
    "sigmoid": sigmoid,
    "tanh": tanh,
}
assert set(_TENSOR_ACTS) == set(ACTIVATIONS)
