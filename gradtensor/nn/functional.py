"""Neural-network functions built from primitives: activations, softmax, losses, dropout.

They are composites: their gradients come from the primitives they call. Two are single ops
instead: `linear`, because a fused kernel stands behind it, and `cross_entropy`, whose composite
(nll_loss of log_softmax) cost some thirty array calls a step (gradtensor.ops.loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..ops import ACTIVATIONS, exp, linear, relu, sigmoid, tanh, where
from ..ops import softplus as _softplus
from ..ops.activations import gelu, silu
from ..ops.loss import check_reduction, class_targets, cross_entropy_op, log_softmax, nll_loss
from ..ops.registry import Sample, _to_tensor, composite
from ..tensor import Tensor

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


@composite(samples=_ACT + [Sample((3,), negative_slope=0.2)], torch="nn.functional.leaky_relu")
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return where(x > 0, x, x * negative_slope)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (as PyTorch)."""
    bx = x if beta == 1 else x * beta
    y = _softplus(bx) if beta == 1 else _softplus(bx) / beta
    return where(bx > threshold, x, y)


@composite(
    samples=[Sample((3, 4)), Sample((2, 3, 4), axis=0)],
    torch=lambda t, x, axis=-1: t.softmax(x, dim=axis),
)
def softmax(x: Tensor, axis: int = -1, *, dim: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed as exp(log_softmax(x))."""
    return exp(log_softmax(x, axis, dim=dim))


def _reduce(op: str, loss: Tensor, reduction: str) -> Tensor:
    check_reduction(op, reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


@composite(
    samples=[Sample((3, 4), (3, 4)), Sample((5,), (5,), reduction="sum")],
    torch="nn.functional.mse_loss",
)
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error."""
    target = _as_operand(target, input)
    if target.shape != input.shape:
        raise ValueError(
            f"mse_loss: input shape {input.shape} and target shape {target.shape} differ"
        )
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def cross_entropy(
    input: Tensor, target: Any, reduction: str = "mean", ignore_index: int = -100
) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer class targets (N,).

    One op (gradtensor.ops.loss) with the value and derivative of
    nll_loss(log_softmax(input, axis=1), target, reduction, ignore_index).
    """
    check_reduction("cross_entropy", reduction)
    t = class_targets("cross_entropy", input, target)
    return cross_entropy_op(input, t, reduction, ignore_index)


@composite(
    samples=[
        Sample((3, 4), np.array([[0.0, 1, 1, 0], [1, 0, 0.5, 1], [0, 0, 1, 1]])),
        Sample((5,), np.array([0.0, 1, 1, 0, 1]), reduction="sum"),
    ],
    torch="nn.functional.binary_cross_entropy_with_logits",
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
