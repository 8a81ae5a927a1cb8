"""Softmax, log-softmax, dropout, and cross_entropy: log-softmax and the negative
log-likelihood of class targets as one op.

Its meaning is the composite nll_loss(log_softmax(x)), declared next to it, which the registry
differentiates for gradients of gradients. As a composite it made some thirty array calls and
tape nodes each way; as one op its forward is a handful of array calls and its derivative one
expression, softmax(x) minus the one-hot targets, scaled per row (the measurement:
benchmarks/results/kernel-decisions.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from .. import kernels as _kernels
from ..autograd.graph import no_grad
from ..tensor import Tensor, rand
from .elementwise import exp, isfinite, maximum, where
from .reduce import logsumexp
from .registry import Sample, _to_tensor, composite, primitive

_SAMPLES = [
    Sample((4, 3), backend.np.array([0, 2, 1, 2])),
    Sample((4, 3), backend.np.array([0, 2, -100, 1]), reduction="sum"),
    Sample((3, 5), backend.np.array([4, 0, 1]), reduction="none"),
    Sample((3, 5), backend.np.array([4, 7, 1]), reduction="none", ignore_index=7),
    Sample((2, 4), backend.np.array([3, 0]), domain=(-50.0, 50.0)),
]


@primitive(
    "cross_entropy", save="x", aux=True, samples=_SAMPLES, torch="nn.functional.cross_entropy"
)
def _cross_entropy(xp, x, target, *, reduction="mean", ignore_index=-100):
    n, c = x.shape
    keep = target != ignore_index
    cls = target
    bad = None
    if xp is not backend.np:
        # Checked on the device: reading the verdict would stall the GPU every step. A class out
        # of range makes its row's loss and gradient NaN (PyTorch's GPU kernels assert instead).
        cls = xp.where(keep, target, 0)  # ignored rows read class 0, then count for nothing
        bad = (cls < 0) | (cls >= c)
        cls = xp.where(bad, 0, cls)
    else:
        if keep.all():
            keep = None  # the common case: every row counts, with no masks to apply
        else:
            cls = xp.where(keep, target, 0)
        if n and (int(cls.min()) < 0 or int(cls.max()) >= c):
            valid = target if keep is None else target[keep]
            got = f"{int(valid.min())}..{int(valid.max())}" if valid.size else "no class at all"
            raise IndexError(f"target classes must lie in [0, {c}); got {got}")
    # Shift each row by its maximum so exp never overflows; an all -inf row keeps a shift of 0.
    m = x.max(axis=1, keepdims=True)
    finite = xp.isfinite(m)
    if bad is not None or not finite.all():
        m[~finite] = 0
    shifted = x - m
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(n)
    losses = -logp[rows, cls]
    if keep is not None:
        losses = xp.where(keep, losses, x.dtype.type(0))
    if bad is not None:
        losses = xp.where(bad, x.dtype.type("nan"), losses)
    # the mean over the targets that count; ignored ones contribute nothing
    count = n if keep is None else lambda: xp.maximum(keep.sum(), 1).astype(x.dtype)
    y, count = _reduced(losses, reduction, count)
    return y, (logp, keep, rows, cls, count, bad)


def _reduced(losses: Any, reduction: str, count: Any, out: Any = None) -> tuple:
    """(the rows' losses reduced as asked, the mean's divisor or None). `count`: the rows that
    count, or a function that gives the divisor as an array. `out`: a 0-d array for the result."""
    if reduction == "none":
        return losses, None
    total = losses.sum()
    n = None
    if reduction != "sum":
        n = losses.dtype.type(max(count, 1)) if isinstance(count, int) else count()
        total = total / n
    if out is None:
        return total, n
    out[()] = total  # a NumPy scalar in the losses' dtype, as a call with out= would write
    return out, n


def _cross_entropy_grad(g, y, x, target, *, needs, aux, reduction="mean", ignore_index=-100):
    """On arrays: softmax(x) minus the one-hot targets, scaled per row by g (and the count)."""
    if not needs[0]:
        return None, None
    logp, keep, rows, cls, count, bad = aux
    xp = backend.array_module(logp)
    gx = xp.exp(logp)
    gx[rows, cls] -= 1
    scale = g if count is None else g / count  # g: a scalar, or one per row (reduction="none")
    if keep is not None:
        scale = xp.where(keep, scale, 0)
    if bad is not None:
        scale = xp.where(bad, xp.nan, scale)
    if scale.dtype != gx.dtype:
        scale = scale.astype(gx.dtype)
    gx *= scale[:, None] if scale.ndim else scale
    return gx, None


_cross_entropy.defvjp_joint(_cross_entropy_grad)


def _plan_kernel(xp, x, target, *, reduction="mean", ignore_index=-100, keep=False):
    """The kernel forward for logits like these: run(x, target) -> (loss, aux). A call runs it
    at once, a replay of gt.compile many times (keep: see kernels.plan_linear_act_forward)."""
    run = _kernels.plan_cross_entropy_forward(x, ignore_index, keep)
    alloc = _kernels.results(keep) if keep and reduction != "none" else None

    def forward(x, target):
        losses, shift, logs, count = run(x, target)
        out = alloc and alloc("loss", (), x.dtype)
        y, count = _reduced(losses, reduction, count, out)
        return y, (shift, logs, count)

    return forward


def _plan_kernel_grad(g, y, x, target, *, needs, aux, reduction="mean", ignore_index=-100,
                      keep=False):  # fmt: skip
    """The kernel derivative for operands like these: rule(g, x, target, aux) -> (gx, None)."""
    run = _kernels.plan_cross_entropy_backward(x, ignore_index, g.shape, keep)

    def rule(g, x, target, aux):
        if not needs[0]:
            return None, None
        shift, logs, count = aux
        return run(x, target, shift, logs, g if count is None else g / count), None

    return rule


def _cross_entropy_kernel_grad(g, y, x, target, *, needs, aux, reduction="mean", ignore_index=-100):
    rule = _plan_kernel_grad(g, y, x, target, needs=needs, aux=aux, reduction=reduction,
                             ignore_index=ignore_index)  # fmt: skip
    return rule(g, x, target, aux)


@_cross_entropy.implementation(
    "kernel",
    accepts=lambda x, target, **params: _kernels.cross_entropy_accepts(x, target),
    backward=_cross_entropy_kernel_grad,
    plan=_plan_kernel,
    plan_backward=_plan_kernel_grad,
)
def _cross_entropy_kernel(xp, x, target, *, reduction="mean", ignore_index=-100):
    """The loss from the kernels' one pass a row; the reductions as the array path's."""
    return _plan_kernel(xp, x, target, reduction=reduction, ignore_index=ignore_index)(x, target)


_cross_entropy.defcomposite(
    lambda x, target, *, reduction="mean", ignore_index=-100: nll_loss(
        log_softmax(x, axis=1), target, reduction=reduction, ignore_index=ignore_index
    )
)


def cross_entropy_op(x: Tensor, target: Any, reduction: str, ignore_index: int) -> Tensor:
    """The op itself: x (N, C) logits, target (N,) integer classes already on x's device."""
    return _cross_entropy(x, target, reduction=reduction, ignore_index=ignore_index)


@composite(
    samples=[Sample((3, 4)), Sample((2, 3, 4), axis=1), Sample((5,), domain=(-50, 50))],
    torch=lambda t, x, axis=-1: t.log_softmax(x, dim=axis),
)
def log_softmax(x: Tensor, axis: int = -1, *, dim: Any = None) -> Tensor:
    """x - logsumexp(x): log-probabilities, stable and precise for any magnitude of x."""
    axis = dim if dim is not None else axis
    if x.numel():
        # x - max(x) first, exactly: x - logsumexp(x) would round at the scale of x (a float32
        # logit of 1e4 carries an error of 1e-3). A constant shift changes no derivative.
        m = x.detach().amax(axis=axis, keepdims=True)
        x = x - where(isfinite(m), m, 0)
    return x - logsumexp(x, axis=axis, keepdims=True)


def check_reduction(op: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def class_targets(op: str, logits: Tensor, target: Any) -> Any:
    """Integer class targets (N,) for logits (N, C), as an array on the logits' device."""
    if isinstance(target, Tensor):
        t = target.data
    else:
        t = target if backend.is_cuda_array(target) else backend.np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, not {t.dtype}")
    if logits.ndim != 2 or t.ndim != 1 or t.shape[0] != logits.shape[0]:
        raise ValueError(
            f"{op}: expected input (N, C) and target (N,), got {logits.shape} and {tuple(t.shape)}"
        )
    return backend.to_device(t, logits.device)


def constant(a: Any, like: Tensor, op: str = "loss") -> Tensor:
    """A non-Tensor operand (a loss's weights, a target) as a constant on like's device, in
    like's dtype when that is floating; a Tensor as it is. Host data next to a GPU tensor is
    refused, as every op refuses it."""
    if isinstance(a, Tensor):
        return a
    t = _to_tensor(a, op, like.device)
    return t.astype(like.dtype) if like.dtype.kind == "f" and t.dtype != like.dtype else t


def class_rows(op: str, x: Tensor, target: Any) -> tuple[Tensor, Any, tuple]:
    """Logits or log-probabilities (C,), (N, C) or (N, C, d1, ...) with integer targets (), (N,)
    or (N, d1, ...), as rows (M, C) and targets (M,) on x's device, and the targets' shape."""
    t = target.data if isinstance(target, Tensor) else target
    t = t if backend.is_cuda_array(t) else backend.np.asarray(t)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, not {t.dtype}")
    want = x.shape[:1] + x.shape[2:] if x.ndim != 1 else ()
    if x.ndim == 0 or tuple(t.shape) != want:
        raise ValueError(
            f"{op}: expected input (N, C) and target (N,), or (N, C, d1, ...) and (N, d1, ...), "
            f"got {x.shape} and {tuple(t.shape)}"
        )
    # A Tensor, reshaped by ops: a step gt.compile records reads each call's targets.
    t = target if isinstance(target, Tensor) else Tensor._make(backend.to_device(t, x.device))
    if t.device != x.device:
        raise RuntimeError(f"{op}: the input is on {x.device} but the targets on {t.device}")
    if x.ndim != 2:  # the class axis last, every other position a row
        x = x.reshape(1, -1) if x.ndim == 1 else x.permute(0, *range(2, x.ndim), 1)
        x, t = x.reshape(-1, x.shape[-1]), t.reshape(-1)
    return x, t, want


_PICK = [
    Sample((4, 3), backend.np.array([0, 2, 1, 2])),
    Sample((2, 5), backend.np.array([4, 4])),
    Sample((0, 3), backend.np.zeros(0, int)),
]


@primitive(
    "_pick",
    save="x",
    samples=_PICK,
    torch=lambda t, x, i: x.gather(1, i.reshape(-1, 1)).reshape(-1),
)
def _pick(xp, x, t):
    """x[i, t[i]] for each row i of an (M, C) array: t holds (M,) classes in [0, C)."""
    return xp.take_along_axis(x, t.reshape(-1, 1), axis=1).reshape(-1)


@primitive(
    "_unpick",
    save="x",
    samples=[Sample((4,), backend.np.array([0, 2, 1, 2]), classes=3)],
    torch=lambda t, g, i, classes: t.zeros(len(i), classes, dtype=g.dtype).scatter(
        1, i.reshape(-1, 1), g.reshape(-1, 1)
    ),
)
def _unpick(xp, g, t, *, classes):
    """(M, classes) zeros with g[i] at [i, t[i]]: _pick's adjoint."""
    out = xp.zeros((g.shape[0], classes), g.dtype)
    xp.put_along_axis(out, t.reshape(-1, 1), g.reshape(-1, 1), axis=1)
    return out


_pick.defvjp(lambda g, y, x, t: _unpick(g, t, classes=x.shape[1]), None)
_unpick.defvjp(lambda g, y, x, t, *, classes: _pick(g, t), None)


@composite(
    samples=[
        Sample((4, 3), backend.np.array([0, 2, 1, 2])),
        Sample((4, 3), backend.np.array([0, 2, -100, 1]), reduction="sum"),
        Sample((2, 3, 2, 2), backend.np.array([[[0, 2], [1, 1]], [[2, -100], [0, 1]]])),
        Sample((4, 3), backend.np.array([0, 2, 1, 1]), weight=backend.np.array([0.2, 1.0, 3.0])),
        Sample(
            (2, 3, 2),
            backend.np.array([[0, 2], [1, 5]]),
            weight=backend.np.array([0.2, 1.0, 3.0]),
            ignore_index=5,
            reduction="none",
        ),
        Sample((3,), backend.np.array(1), reduction="sum"),
    ],
    torch=lambda t, x, y, weight=None, **kw: t.nn.functional.nll_loss(
        x, y, None if weight is None else weight.to(x.dtype), **kw
    ),
)
def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of integer class targets t given log-probabilities (N, C) or
    (N, C, d1, ...): -weight[t] * input[t]; the mean is weighted by weight[t] over the targets
    that count."""
    check_reduction("nll_loss", reduction)  # before any work
    x, t, shape = class_rows("nll_loss", input, target)
    n, c = x.shape
    valid = t.data[t.data != ignore_index]
    if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= c):
        raise IndexError(
            f"nll_loss: target classes must lie in [0, {c}); got "
            f"{int(valid.min())}..{int(valid.max())}"
        )
    # Fixed shapes, whatever the targets' values: ignored rows pick class 0 and count for nothing.
    keep = t != ignore_index
    cls = where(keep, t, 0)
    loss = where(keep, -_pick(x, cls), 0)
    w = None
    if weight is not None:
        weight = constant(weight, x)
        if weight.shape != (c,):
            raise ValueError(
                f"nll_loss: weight must have shape ({c},), one per class, not {weight.shape}"
            )
        w = where(keep, _pick(weight.astype(x.dtype).reshape(1, c).expand(n, c), cls), 0)
        loss = loss * w
    if reduction == "none":
        return loss.reshape(shape)
    if reduction == "mean":
        # The mean is over the targets that count (ignored ones contribute nothing): weighted by
        # their classes' weights, and 0 when none counts.
        if w is None:
            return loss.sum() / maximum(keep.sum(), 1)
        return loss.sum() / where(keep.any(), w.sum(), 1)
    return loss.sum()


@composite(
    samples=[Sample((3, 4)), Sample((2, 3, 4), axis=0)],
    torch=lambda t, x, axis=-1: t.softmax(x, dim=axis),
)
def softmax(x: Tensor, axis: int = -1, *, dim: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed as exp(log_softmax(x))."""
    return exp(log_softmax(x, axis, dim=dim))


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero elements with probability p, scale the rest by 1/(1-p); identity when not training."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    with no_grad():  # Tensor ops, so that a step gt.compile records draws a new mask each time
        keep = (rand(x.shape, dtype=np.float32, device=x.device) >= p).astype(x.dtype)
        scale = keep * (1 / (1 - p))
    return x * scale
