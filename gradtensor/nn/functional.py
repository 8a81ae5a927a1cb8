"""Neural-network functions built from primitives: activations, softmax, losses, dropout.

They are composites: their gradients come from the primitives they call. Two are single ops
instead: `linear`, because a fused kernel stands behind it, and `cross_entropy`, whose composite
(nll_loss of log_softmax) cost some thirty array calls a step (gradtensor.ops.loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import public
from ..ops import (
    ACTIVATIONS,
    clamp,
    exp,
    expm1,
    linear,
    log,
    maximum,
    minimum,
    sigmoid,
    tanh,
    where,
)
from ..ops import abs as _abs
from ..ops import relu as _relu
from ..ops import softplus as _softplus
from ..ops.activations import gelu
from ..ops.activations import silu as _silu
from ..ops.attention import scaled_dot_product_attention
from ..ops.conv import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    fold,
    max_pool1d,
    max_pool2d,
    unfold,
)
from ..ops.indexing import one_hot, pad  # noqa: F401  (PyTorch has them here too)
from ..ops.loss import (
    _pick,
    check_reduction,
    class_rows,
    constant,
    cross_entropy_op,
    log_softmax,
    nll_loss,
    softmax,
)
from ..ops.loss import dropout as _dropout
from ..ops.registry import Bad, Sample, composite
from ..tensor import Tensor
from .normalization import batch_norm, embedding, group_norm, layer_norm

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "fold",
    "max_pool1d",
    "max_pool2d",
    "unfold",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "celu",
    "elu",
    "glu",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "logsigmoid",
    "mish",
    "prelu",
    "relu6",
    "selu",
    "smooth_l1_loss",
    "softsign",
    "cross_entropy",
    "dropout",
    "gelu",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
    "batch_norm",
    "embedding",
    "group_norm",
    "layer_norm",
    "scaled_dot_product_attention",
    "ACTIVATIONS",
]

_ACT = [Sample((3, 4)), Sample((5,), domain=(-3.0, 3.0))]


def _in_place(x: Tensor, name: str, fn: Any) -> Tensor:
    """PyTorch's inplace=True: fn(x) written into x, which is returned (its version goes up, and
    in a graph it takes the op's node, as after x.relu_())."""
    return x._inplace(lambda t, _: fn(t), None, name)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0)."""
    return _in_place(input, "relu_", _relu) if inplace else _relu(input)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _in_place(input, "silu_", _silu) if inplace else _silu(input)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability p, scale the rest by 1/(1-p); identity when not training."""
    if inplace and training and p:
        return _in_place(input, "dropout_", lambda t: _dropout(t, p, training))
    return _dropout(input, p, training)


@composite(samples=_ACT + [Sample((3,), negative_slope=0.2)], torch="nn.functional.leaky_relu")
def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    if inplace:
        return _in_place(x, "leaky_relu_", lambda t: leaky_relu(t, negative_slope))
    return where(x > 0, x, x * negative_slope)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (as PyTorch)."""
    bx = x if beta == 1 else x * beta
    y = _softplus(bx) if beta == 1 else _softplus(bx) / beta
    return where(bx > threshold, x, y)


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
    target = constant(target, input)
    if target.shape != input.shape:
        raise ValueError(
            f"mse_loss: input shape {input.shape} and target shape {target.shape} differ"
        )
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


# -- activations PyTorch has as functions (composites: held to PyTorch's twins) -----------------
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@composite(samples=_ACT + [Sample((4,), alpha=0.5)], torch="nn.functional.elu")
def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    if inplace:
        return _in_place(input, "elu_", lambda t: elu(t, alpha))
    # expm1 of min(x, 0): the branch where() drops never overflows, so its gradient is 0, not nan.
    return where(input > 0, input, expm1(minimum(input, 0)) * alpha)


@composite(samples=_ACT, torch="nn.functional.selu")
def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants."""
    if inplace:
        return _in_place(input, "selu_", selu)
    return elu(input, _SELU_ALPHA) * _SELU_SCALE


@composite(samples=_ACT + [Sample((4,), alpha=2.0)], torch="nn.functional.celu")
def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x / alpha) - 1)."""
    if inplace:
        return _in_place(input, "celu_", lambda t: celu(t, alpha))
    return where(input > 0, input, expm1(minimum(input, 0) / alpha) * alpha)


@composite(samples=_ACT, torch="nn.functional.mish")
def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    if inplace:
        return _in_place(input, "mish_", mish)
    return input * tanh(_softplus(input))


_HARD = [Sample((3, 4), domain=(-5.0, 5.0)), Sample((5,))]


@composite(samples=_HARD, torch="nn.functional.hardswish")
def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    if inplace:
        return _in_place(input, "hardswish_", hardswish)
    return input * clamp(input + 3, 0, 6) / 6


# PyTorch's hardsigmoid derivative multiplies by 1/6 rounded to float32 (3e-8 off in float64): the
# twin is its relu6 formula, and tests/test_module_kit.py holds F.hardsigmoid to 1e-7 of it.
@composite(samples=_HARD, torch=lambda t, x: t.nn.functional.relu6(x + 3) / 6)
def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    if inplace:
        return _in_place(input, "hardsigmoid_", hardsigmoid)
    return clamp(input + 3, 0, 6) / 6


@composite(
    samples=_ACT + [Sample((6,), min_val=-0.5, max_val=2.0)],
    torch="nn.functional.hardtanh",
    errors=[Bad((3,), min_val=1.0, max_val=0.0, match="min_val cannot be greater than max_val")],
)
def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """x clamped to [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError("hardtanh: min_val cannot be greater than max_val")
    if inplace:
        return _in_place(input, "hardtanh_", lambda t: hardtanh(t, min_val, max_val))
    return clamp(input, min_val, max_val)


@composite(samples=[Sample((3, 4), domain=(-3.0, 9.0))], torch="nn.functional.relu6")
def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6)."""
    if inplace:
        return _in_place(input, "relu6_", relu6)
    return clamp(input, 0, 6)


@composite(samples=_ACT, torch="nn.functional.softsign")
def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return input / (abs(input) + 1)


@composite(samples=_ACT + [Sample((4,), domain=(-60.0, 60.0))], torch="nn.functional.logsigmoid")
def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), which neither overflows nor loses digits."""
    return -_softplus(-input)


@composite(
    samples=[Sample((3, 4)), Sample((2, 6, 3), dim=1)],
    torch="nn.functional.glu",
    errors=[Bad((3, 5), match="halving dimension must be even")],
)
def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), where a and b are the two halves of the input along dim."""
    if input.ndim == 0:
        raise ValueError("glu: a 0-d tensor has no dimension to halve")
    n = input.size(dim)
    if n % 2:
        raise ValueError(f"glu: halving dimension must be even, but dimension {dim} has size {n}")
    a, b = input.chunk(2, dim)
    return a * sigmoid(b)


@composite(
    samples=[Sample((3, 4), (4,)), Sample((2, 3, 5), (3,)), Sample((5,), (1,))],
    torch="nn.functional.prelu",
    errors=[Bad((2, 3), (2,), match="weight has 2 elements")],
)
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else weight * x, one weight per channel (dimension 1) or one for all."""
    w = constant(weight, input)
    if w.numel() == 1:
        w = w.reshape(())
    else:
        c = input.shape[1] if input.ndim >= 2 else 1
        if w.ndim != 1 or w.numel() != c:
            raise ValueError(
                f"prelu: weight has {w.numel()} elements, but the input has {c} channels "
                "(dimension 1); give one weight per channel or a single one"
            )
        w = w.reshape((c,) + (1,) * (input.ndim - 2))
    return where(input > 0, input, w * input)


# -- losses -------------------------------------------------------------------------------------
_W3 = np.array([0.2, 1.0, 3.0])


def _tw(t: Any, w: Any, x: Any) -> Any:
    """A torch twin's weight in the input's dtype (the sample's weights are float64 arrays)."""
    return None if w is None else w.to(x.dtype)


def _weight(op: str, weight: Any, x: Tensor, shape: tuple) -> Tensor:
    w = constant(weight, x)
    if w.shape != shape:
        raise ValueError(f"{op}: weight must have shape {shape}, not {w.shape}")
    return w


def _cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of logits (C,), (N, C) or (N, C, d1, ...) against integer classes
    ((), (N,), (N, d1, ...)) or class probabilities (the input's shape), as PyTorch's.

    Class targets without weight or smoothing take one fused op (gradtensor.ops.loss), the value
    and derivative of nll_loss(log_softmax(input, 1), target); the rest is that composite.
    """
    check_reduction("cross_entropy", reduction)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(
            f"cross_entropy: label_smoothing must lie in [0, 1], not {label_smoothing}"
        )
    cdim = 0 if input.ndim == 1 else 1
    t = target.data if isinstance(target, Tensor) else target
    if getattr(t, "dtype", np.dtype(int)).kind == "f" and tuple(t.shape) == input.shape:
        # Class probabilities: -sum(target * log_softmax(input)) over the classes.
        c = input.shape[cdim]
        p = constant(target, input)
        if label_smoothing:
            p = p * (1 - label_smoothing) + label_smoothing / c
        loss = log_softmax(input, cdim) * p
        if weight is not None:
            loss = loss * _weight("cross_entropy", weight, input, (c,)).reshape(
                (c,) + (1,) * (input.ndim - 2)
            )
        return _reduce("cross_entropy", -loss.sum(axis=cdim), reduction)
    x, t, shape = class_rows("cross_entropy", input, target)
    if weight is None and not label_smoothing:
        y = cross_entropy_op(x, t, reduction, ignore_index)
        return y.reshape(shape) if reduction == "none" else y
    logp = log_softmax(x, 1)
    nll = nll_loss(logp, t, weight, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll.reshape(shape) if reduction == "none" else nll
    # Smoothing: each row also pays ls / C times -sum(weight * logp) over all classes.
    c = x.shape[1]
    w = None if weight is None else _weight("cross_entropy", weight, x, (c,))
    keep = t != ignore_index
    smooth = where(keep, -(logp if w is None else logp * w).sum(axis=1), 0)
    if reduction == "none":
        smooth = smooth.reshape(shape)
    elif reduction == "sum":
        smooth = smooth.sum()
    else:  # over the same total as the nll's mean: the targets' weights, or their count
        if w is None:
            smooth = smooth.sum() / maximum(keep.sum(), 1)
        else:
            picked = where(keep, _pick(w.reshape(1, c).expand(x.shape[0], c), where(keep, t, 0)), 0)
            smooth = smooth.sum() / where(keep.any(), picked.sum(), 1)
    return nll.reshape(smooth.shape) * (1 - label_smoothing) + smooth * (label_smoothing / c)


_PROBS = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.0, 0.0, 1.0], [0.3, 0.3, 0.4]])
_PROBS3 = np.array([[[0.2, 0.5], [0.3, 0.1], [0.5, 0.4]], [[1.0, 0.0], [0.0, 0.5], [0.0, 0.5]]])
composite(
    "cross_entropy_options",
    samples=[
        Sample((2, 3, 2, 2), np.array([[[0, 2], [1, 1]], [[2, -100], [0, 1]]])),
        Sample((2, 3, 4), np.array([[0, 2, 1, 1], [2, 0, 0, 1]]), reduction="none"),
        Sample((3,), np.array(2)),
        Sample((4, 3), np.array([0, 2, 1, 1]), weight=_W3),
        Sample((4, 3), np.array([0, 2, -100, 1]), weight=_W3, reduction="sum"),
        Sample((4, 3), np.array([0, 2, 1, 7]), label_smoothing=0.2, ignore_index=7),
        Sample((2, 3, 3), np.array([[0, 2, 1], [1, 1, 0]]), label_smoothing=0.1, reduction="none"),
        Sample((4, 3), np.array([0, 2, -100, 1]), weight=_W3, label_smoothing=0.3),
        Sample((4, 3), _PROBS),
        Sample((4, 3), _PROBS, weight=_W3, label_smoothing=0.2, reduction="sum"),
        Sample((2, 3, 2), _PROBS3, reduction="none"),
    ],
    torch=lambda t, x, y, weight=None, **kw: t.nn.functional.cross_entropy(
        x, y, _tw(t, weight, x), **kw
    ),
    errors=[
        Bad((4, 3), np.array([0, 1, 2]), match=r"expected input \(N, C\) and target \(N,\)"),
        Bad((4, 3), np.array([0, 1, 2, 1]), label_smoothing=2.0, match="label_smoothing"),
        Bad((4, 3), np.array([0, 1, 2, 1]), weight=np.ones(2), match="weight must have shape"),
    ],
)(_cross_entropy)
cross_entropy = public("cross_entropy", _cross_entropy)


def _same_shape(op: str, input: Tensor, target: Any) -> Tensor:
    target = constant(target, input)
    if target.shape != input.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} differ")
    return target


_PAIRS = [
    Sample((3, 4), (3, 4)),
    Sample((5,), (5,), reduction="sum"),
    Sample((2, 3), (2, 3), reduction="none"),
]


@composite(samples=_PAIRS, torch="nn.functional.l1_loss")
def l1_loss(input: Tensor, target: Any, *, reduction: str = "mean") -> Tensor:
    """Mean absolute error."""
    return _reduce("l1_loss", _abs(input - _same_shape("l1_loss", input, target)), reduction)


@composite(
    samples=_PAIRS + [Sample((3, 4), (3, 4), beta=0.5), Sample((4,), (4,), beta=0.0)],
    torch="nn.functional.smooth_l1_loss",
    errors=[Bad((3,), (3,), beta=-1.0, match="beta must not be negative")],
)
def smooth_l1_loss(
    input: Tensor, target: Any, *, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, for d = input - target."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must not be negative, got {beta}")
    d = _abs(input - _same_shape("smooth_l1_loss", input, target))
    loss = d if beta == 0 else where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce("smooth_l1_loss", loss, reduction)


@composite(
    samples=_PAIRS + [Sample((3, 4), (3, 4), delta=0.5)],
    torch="nn.functional.huber_loss",
    errors=[Bad((3,), (3,), delta=0.0, match="delta must be positive")],
)
def huber_loss(
    input: Tensor, target: Any, *, reduction: str = "mean", delta: float = 1.0
) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta * (|d| - 0.5 delta), for d = input - target."""
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    d = _abs(input - _same_shape("huber_loss", input, target))
    loss = where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce("huber_loss", loss, reduction)


def _log_clamped(p: Tensor) -> Tensor:
    # PyTorch's bound: log(0) is -100, so a confident mistake costs 100, not inf. The inner clamp
    # keeps log's derivative finite there (its gradient is then 0).
    return clamp(log(clamp(p, min=_EXP_M100)), min=-100)


_EXP_M100 = float(np.exp(-100))
_UNIT = dict(domain=(0.05, 0.95))


@composite(
    samples=[
        Sample((3, 4), (3, 4), **_UNIT),
        Sample((5,), (5,), weight=np.linspace(0.5, 2, 5), reduction="sum", **_UNIT),
        Sample((2, 3), (2, 3), weight=np.array([1.0, 0.0, 2.0]), reduction="none", **_UNIT),
    ],
    torch=lambda t, x, y, weight=None, **kw: t.nn.functional.binary_cross_entropy(
        x, y, _tw(t, weight, x), **kw
    ),
    errors=[Bad((3,), (3,), domain=(1.5, 2.0), match=r"input values must lie in \[0, 1\]")],
)
def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, *, reduction: str = "mean"
) -> Tensor:
    """-(t log(p) + (1 - t) log(1 - p)) of probabilities p, each log at least -100 (PyTorch's)."""
    target = _same_shape("binary_cross_entropy", input, target)
    if input.numel() and not bool(((input >= 0) & (input <= 1)).all()):
        raise ValueError("binary_cross_entropy: input values must lie in [0, 1]")
    loss = -(target * _log_clamped(input) + (1 - target) * _log_clamped(1 - input))
    if weight is not None:
        loss = loss * constant(weight, input)
    return _reduce("binary_cross_entropy", loss, reduction)


@composite(
    samples=[
        Sample((3, 4), np.array([[0.0, 1, 1, 0], [1, 0, 0.5, 1], [0, 0, 1, 1]])),
        Sample((5,), np.array([0.0, 1, 1, 0, 1]), reduction="sum"),
        Sample((3, 4), (3, 4), pos_weight=np.array([0.5, 1.0, 2.0, 3.0])),
        Sample((2, 3), (2, 3), weight=np.array([1.0, 0.5, 2.0]), pos_weight=np.array([3.0])),
        Sample((2, 3), (2, 3), weight=np.array([[2.0], [0.5]]), reduction="none"),
        Sample((4,), np.array([0.0, 1, 1, 0]), domain=(-60.0, 60.0), pos_weight=np.array([2.0])),
    ],
    torch=lambda t, x, y, weight=None, pos_weight=None, **kw: (
        t.nn.functional.binary_cross_entropy_with_logits(
            x, y, _tw(t, weight, x), pos_weight=_tw(t, pos_weight, x), **kw
        )
    ),
)
def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    *,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula: softplus(x) - x * t, with positive
    targets weighted by pos_weight (per class, the last dimension) and each element by weight."""
    target = _same_shape("binary_cross_entropy_with_logits", input, target)
    if pos_weight is None:
        loss = _softplus(input) - input * target
    else:  # (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), as PyTorch
        pw = constant(pos_weight, input)
        loss = (1 - target) * input + ((pw - 1) * target + 1) * _softplus(-input)
    if weight is not None:
        loss = loss * constant(weight, input)
    return _reduce("binary_cross_entropy_with_logits", loss, reduction)


@composite(
    samples=[
        Sample((3, 4), (3, 4), reduction="batchmean", domain=(0.1, 1.0)),
        Sample((5,), (5,), reduction="sum", domain=(0.1, 1.0)),
        Sample((2, 3), (2, 3), reduction="none", log_target=True),
        Sample((2, 3), (2, 3), reduction="batchmean", log_target=True),
    ],
    torch="nn.functional.kl_div",
    errors=[Bad((3,), (3,), reduction="avg", match="reduction must be")],
)
def kl_div(
    input: Tensor, target: Any, *, reduction: str = "mean", log_target: bool = False
) -> Tensor:
    """target * (log(target) - input) of log-probabilities input (log_target: target is a log
    too); reduction "batchmean" divides the sum by the batch size, the true KL divergence."""
    if reduction not in ("mean", "batchmean", "sum", "none"):
        raise ValueError(
            f"kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', not {reduction!r}"
        )
    target = _same_shape("kl_div", input, target)
    if log_target:
        loss = exp(target) * (target - input)
    else:  # target log(target) is 0 where target is 0
        pos = target > 0
        loss = where(pos, target * log(where(pos, target, 1)), 0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce("kl_div", loss, reduction)
