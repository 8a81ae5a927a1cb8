"""Reductions over axes: sum, amax, amin, logsumexp, prod (primitives); mean, var, std (composite);
max and min as PyTorch's (values and indices along a dim)."""

from __future__ import annotations

import builtins
import collections
import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .elementwise import exp, maximum, minimum, sqrt, where
from .registry import Sample, _to_tensor, composite, primitive
from .shape import _broadcast_to, _permute, normalize_axis, take_along_dim

REDUCE = [
    Sample((3, 4)),
    Sample((3, 4), axis=1),
    Sample((2, 3, 4), axis=(0, 2), keepdims=True),
    Sample((2, 3, 4), axis=-1),
    Sample((1, 3), axis=0),
    Sample(()),
]


def axis_args(op: str, x: Tensor, axis: Any, keepdims: bool, dim: Any, keepdim: Any) -> tuple:
    """Merge PyTorch's `dim`/`keepdim` spellings into NumPy's `axis`/`keepdims`."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: give axis or dim, not both")
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    return normalize_axis(op, x.ndim, axis), bool(keepdims)


def kept_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape a reduction with keepdims=True gives."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def expand_reduced(g: Tensor, x_shape: tuple, axis: Any, keepdims: bool) -> Tensor:
    """Put back the reduced axes of a reduction's gradient (as size-1 axes)."""
    return g if keepdims else g.reshape(kept_shape(x_shape, axis))


def _count(shape: tuple, axis: Any) -> int:
    return math.prod(shape) if axis is None else math.prod(shape[a] for a in axis)


def _reduction(prim: Any, doc: str) -> Any:
    """The public function of a reduction primitive: NumPy's axis/keepdims, PyTorch's aliases."""
    name = prim.name

    def api(
        x: Tensor,
        axis: Any = None,
        keepdims: bool = False,
        *,
        dim: Any = None,
        keepdim: Any = None,
    ) -> Tensor:
        x = _as_tensor(x, name)
        axis, keepdims = axis_args(name, x, axis, keepdims, dim, keepdim)
        return prim(x, axis=axis, keepdims=keepdims)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = doc
    return prim.api(api)


# -- sum --------------------------------------------------------------------------------------


@primitive("sum", save="", samples=REDUCE)
def _sum(xp, x, *, axis, keepdims):
    if x.dtype == np.float16:  # accumulate in float32, as NumPy's mean and PyTorch's sum do
        return xp.sum(x, axis=axis, keepdims=keepdims, dtype=np.float32).astype(np.float16)
    return xp.sum(x, axis=axis, keepdims=keepdims)


_sum.defvjp(
    lambda g, y, x, *, axis, keepdims: _broadcast_to(
        expand_reduced(g, x.shape, axis, keepdims), shape=x.shape
    )
)


sum = _reduction(
    _sum, "Sum over `axis` (int, tuple or None for all): `x.sum(axis=1, keepdims=True)`."
)


@composite(samples=REDUCE)
def mean(
    x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
) -> Tensor:
    """Arithmetic mean over `axis`."""
    x = _as_tensor(x, "mean")
    axis, keepdims = axis_args("mean", x, axis, keepdims, dim, keepdim)
    if x.dtype == np.float16:  # a float16 sum of 65,536 ones is already inf
        return mean(x.astype(np.float32), axis, keepdims).astype(np.float16)
    return _sum(x, axis=axis, keepdims=keepdims) / _count(x.shape, axis)


def _variance(op: str, x: Any, dim: Any, unbiased: Any, keepdim: Any, kw: dict) -> Tensor:
    """var's and std's arguments, PyTorch's with NumPy's spellings: (variance, ...)."""
    x = _as_tensor(x, op)
    if isinstance(dim, bool):  # var(x, False): PyTorch's older (input, unbiased) form
        dim, unbiased = None, dim
    axis, keepdims = axis_args(op, x, kw.pop("axis", None), keepdim, dim, kw.pop("keepdims", None))
    given = {"correction": kw.pop("correction", None), "ddof": kw.pop("ddof", None),
             "unbiased": None if unbiased is None else int(bool(unbiased))}  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}
    if kw:
        raise TypeError(f"{op}() got an unexpected keyword argument {next(iter(kw))!r}")
    if len(given) > 1:
        raise TypeError(f"{op}: give one of correction, ddof and unbiased, got {sorted(given)}")
    return _var(x, axis, keepdims, next(iter(given.values()), 1))


def _var(x: Tensor, axis: Any, keepdims: bool, ddof: Any) -> Tensor:
    if x.dtype == np.float16:  # squares and sums in float32, as for mean
        return _var(x.astype(np.float32), axis, keepdims, ddof).astype(np.float16)
    n = _count(x.shape, axis)
    d = x - _sum(x, axis=axis, keepdims=True) / n
    return _sum(d * d, axis=axis, keepdims=keepdims) / builtins.max(n - ddof, 0)


# One element over the reduced axes has no degree of freedom left with correction 1 (NaN, as in
# PyTorch): those samples take correction 0.
_VAR = REDUCE[:4] + [Sample((1, 3), axis=0, correction=0), Sample((), correction=0)]
_VAR += [Sample((3, 4), axis=1, correction=0), Sample((3, 4), 1, False)]


@composite(samples=_VAR + [Sample((4,), unbiased=False), Sample((3, 2), ddof=2, axis=0)])
def var(
    x: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, **kw: Any
) -> Tensor:
    """Variance over `dim`, dividing by n - correction: PyTorch's, correction=1 unless
    `correction`, `unbiased` or NumPy's `ddof` says otherwise; `axis`/`keepdims` are accepted."""
    return _variance("var", x, dim, unbiased, keepdim, kw)


@composite(samples=_VAR[:4] + _VAR[-2:] + [Sample((3, 4), axis=0, ddof=0)])
def std(
    x: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, **kw: Any
) -> Tensor:
    """Standard deviation over `dim` (correction as in `var`: 1 unless told otherwise)."""
    v = _variance("std", x, dim, unbiased, keepdim, kw)
    # sqrt'(0) is infinite and var'(x) is 0 at a constant x: their product must be 0, not NaN, so
    # zero variances take a constant branch (NaN, from ddof >= n, still goes through sqrt).
    nonzero = v != 0
    return where(nonzero, sqrt(where(nonzero, v, 1)), 0)


# -- max / min --------------------------------------------------------------------------------


def _extreme_grad(g: Tensor, y: Tensor, x: Tensor, *, axis: Any, keepdims: bool) -> Tensor:
    # The gradient goes to the elements equal to the extreme, split evenly among ties.
    yk = expand_reduced(y, x.shape, axis, keepdims)
    gk = expand_reduced(g, x.shape, axis, keepdims)
    hit = (x == yk).astype(x.dtype)
    return hit * (gk / hit.sum(axis=axis, keepdims=True))


def _reduce_nonempty(op: str, xp: Any, fn: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    if x.size == 0 and _count(x.shape, axis) == 0:  # an empty axis is reduced: no identity
        raise ValueError(f"{op}: cannot reduce an empty axis of a tensor of shape {x.shape}")
    if x.size == 0:  # only kept axes are empty: an empty result, as NumPy and PyTorch give
        return xp.empty(_reduced_shape(x.shape, axis, keepdims), x.dtype)
    return fn(x, axis=axis, keepdims=keepdims)


def _reduced_shape(shape: tuple[int, ...], axis: Any, keepdims: bool) -> tuple[int, ...]:
    """The shape a reduction over `axis` gives."""
    if keepdims:
        return kept_shape(shape, axis)
    return () if axis is None else tuple(n for i, n in enumerate(shape) if i not in axis)


@primitive("amax", save="xy", samples=REDUCE)
def _amax(xp, x, *, axis, keepdims):
    return _reduce_nonempty("amax", xp, xp.max, x, axis, keepdims)


@primitive("amin", save="xy", samples=REDUCE)
def _amin(xp, x, *, axis, keepdims):
    return _reduce_nonempty("amin", xp, xp.min, x, axis, keepdims)


_amax.defvjp(_extreme_grad)
_amin.defvjp(_extreme_grad)


amax = _reduction(_amax, "Largest value over `dim` (one or several); ties share the gradient.")
amin = _reduction(_amin, "Smallest value over `dim` (one or several); ties share the gradient.")


def _extreme(name: str, values: Any, position: Any, elementwise: Any) -> Any:
    result = collections.namedtuple(name, ["values", "indices"])

    def api(
        x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Any:
        if isinstance(dim, Tensor):  # max(input, other): the elementwise maximum
            return elementwise(x, dim)
        x = _as_tensor(x, name)
        if axis is not None:
            if dim is not None:
                raise TypeError(f"{name}: give dim or axis, not both")
            dim = axis
        keep = bool(keepdim if keepdims is None else keepdims)
        if dim is None:
            return values(x)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"{name}: dim must be one int, got {dim!r} (a{name} reduces several)")
        (d,) = normalize_axis(name, builtins.max(x.ndim, 1), dim)
        idx = position(x, dim=d if x.ndim else None, keepdim=True)
        if x.ndim == 0:
            return result(x, idx)
        # The value at the index, so that the gradient reaches that one element (PyTorch's rule;
        # a{name} shares it among ties instead).
        v = take_along_dim(x, idx, d)
        return result(v, idx) if keep else result(v.squeeze(d), idx.squeeze(d))

    api.__name__ = api.__qualname__ = name
    api.__doc__ = (
        f"{name}(x): the {name} of every element; {name}(x, dim, keepdim=False): (values, "
        f"indices) along dim, as PyTorch's; {name}(x, other): elementwise."
    )
    return api


# -- logsumexp --------------------------------------------------------------------------------


@primitive("logsumexp", save="xy", samples=REDUCE + [Sample((2, 3), domain=(-1e3, 1e3), axis=1)])
def _logsumexp(xp, x, *, axis, keepdims):
    if x.size == 0:  # the log of an empty sum is -inf (and nothing at all if the result is empty)
        return xp.full(_reduced_shape(x.shape, axis, keepdims), -xp.inf, x.dtype)
    # Shift by the maximum so that exp never overflows; an all -inf slice keeps a shift of 0.
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else s.reshape(_reduced_shape(x.shape, axis, False))


_logsumexp.defvjp(
    lambda g, y, x, *, axis, keepdims: (
        expand_reduced(g, x.shape, axis, keepdims)
        * exp(x - expand_reduced(y, x.shape, axis, keepdims))
    )
)


logsumexp = _reduction(_logsumexp, "log(sum(exp(x))) over `axis`, computed without overflow.")


# -- prod -------------------------------------------------------------------------------------


_WITH_ZEROS = np.array([[1.5, 0.0, 2.0], [0.5, 0.7, -1.2]])


@primitive(
    "prod",
    save="xy",
    samples=REDUCE[:4]
    + [
        Sample(_WITH_ZEROS, axis=1),
        Sample(_WITH_ZEROS),
        Sample(np.array([[0.0, 0.0, 2.0], [0.5, 0.7, 1.1]]), axis=1, keepdims=True),
    ],
)
def _prod(xp, x, *, axis, keepdims):
    return xp.prod(x, axis=axis, keepdims=keepdims)


def _prod_grad(g: Tensor, y: Tensor, x: Tensor, *, axis: Any, keepdims: bool) -> Tensor:
    gk = expand_reduced(g, x.shape, axis, keepdims)
    if not (x == 0).any().item():
        return gk * expand_reduced(y, x.shape, axis, keepdims) / x
    # With zeros, y / x is undefined: form each element's product of the *others* directly, by
    # moving the reduced axes last, flattening them to n, and taking the product of an n x n
    # matrix whose diagonal is replaced by ones.
    nd = x.ndim
    red = tuple(range(nd)) if axis is None else axis
    keep = tuple(i for i in range(nd) if i not in red)
    perm = keep + red
    xt = _permute(x, axes=perm)
    lead = xt.shape[: len(keep)]
    n = _count(x.shape, axis)
    flat = _broadcast_to(xt.reshape(lead + (n, 1)), shape=lead + (n, n))
    diag = backend.array_module(x.data if isinstance(x, Tensor) else x).eye(n, dtype=bool)
    others = where(diag, 1, flat).prod(axis=-2)  # [..., j] = product over i != j
    gx = (_permute(gk, axes=perm).reshape(lead + (1,)) * others).reshape(xt.shape)
    return _permute(gx, axes=tuple(int(i) for i in np.argsort(perm)))


_prod.defvjp(_prod_grad)


prod = _reduction(_prod, "Product over `axis` (its gradient is exact even where inputs are zero).")


# -- positions and truth: no gradient ---------------------------------------------------------


def _position_op(name: str, fn_name: str) -> Any:
    @primitive(name, differentiable=False)
    def op(xp, x, *, axis, keepdims):
        if x.size == 0:
            raise ValueError(f"{name}: cannot take {name} of an empty tensor")
        return getattr(xp, fn_name)(x, axis=axis, keepdims=keepdims)

    def api(
        x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        if dim is not None:
            axis = dim
        if keepdim is not None:
            keepdims = keepdim
        x = _as_tensor(x, name)
        if axis is not None:
            (axis,) = normalize_axis(name, x.ndim, axis) or (None,)
        return op(x, axis=axis, keepdims=keepdims)

    api.__name__ = name
    api.__doc__ = f"Index of the {'largest' if 'max' in name else 'smallest'} value over `axis`."
    return op.api(api)


argmax = _position_op("argmax", "argmax")
argmin = _position_op("argmin", "argmin")
max = _extreme("max", amax, argmax, maximum)
min = _extreme("min", amin, argmin, minimum)
_sorted = collections.namedtuple("sort", ["values", "indices"])
_top = collections.namedtuple("topk", ["values", "indices"])


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """(values, indices) sorted along dim, as PyTorch's sort (ties keep their order)."""
    x = _as_tensor(x, "sort")
    if x.ndim == 0:
        return _sorted(x, _to_tensor(np.zeros((), np.int64), "sort", x.device))
    (d,) = normalize_axis("sort", x.ndim, dim)
    xp = backend.array_module(x.data)
    a = x.data.astype(np.int8) if x.dtype.kind == "b" else x.data
    idx = xp.argsort(-a if descending else a, axis=d, kind="stable")
    if descending and a.dtype.kind == "f":  # NaN counts as the largest, as in PyTorch: first
        not_nan = ~xp.isnan(xp.take_along_axis(a, idx, d))
        idx = xp.take_along_axis(idx, xp.argsort(not_nan, axis=d, kind="stable"), d)
    return _sorted(take_along_dim(x, idx, d), _to_tensor(idx, "sort", x.device))


_median = collections.namedtuple("median", ["values", "indices"])


def median(x: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """The lower median, as PyTorch's: of every element (a tensor), or along dim (values and
    indices); the gradient reaches the median element only."""
    x = _as_tensor(x, "median")
    if dim is None:
        flat = x.reshape(-1)
        if flat.shape[0] == 0:
            raise ValueError("median: the median of an empty tensor is undefined")
        return sort(flat).values[(flat.shape[0] - 1) // 2]
    (d,) = normalize_axis("median", builtins.max(x.ndim, 1), dim)
    if x.ndim == 0:
        return _median(x, _to_tensor(np.zeros((), np.int64), "median", x.device))
    n = x.shape[d]
    if n == 0:
        raise ValueError(f"median: dim {d} of shape {x.shape} is empty")
    values, indices = sort(x, d)
    pick = (slice(None),) * d + (slice((n - 1) // 2, (n - 1) // 2 + 1),)
    v, i = values[pick], indices[pick]
    return _median(v, i) if keepdim else _median(v.squeeze(d), i.squeeze(d))


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """The k largest (or smallest) elements along dim and their indices, as PyTorch's topk."""
    x = _as_tensor(x, "topk")
    (d,) = normalize_axis("topk", builtins.max(x.ndim, 1), dim)
    n = x.shape[d] if x.ndim else 1
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"topk: k={k!r} must lie in [0, {n}] for dim {d} of shape {x.shape}")
    values, indices = sort(x, d, descending=largest)
    if x.ndim == 0:
        return _top(values, indices)
    pick = (slice(None),) * d + (slice(0, int(k)),)
    return _top(values[pick], indices[pick])


def _truth_op(name: str) -> Any:
    @primitive(name, differentiable=False)
    def op(xp, x, *, axis, keepdims):
        return getattr(xp, name)(x, axis=axis, keepdims=keepdims)

    def api(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        x = _as_tensor(x, name)
        axis = normalize_axis(name, x.ndim, axis)
        return op(x, axis=axis, keepdims=keepdims)

    api.__name__ = name
    return op.api(api)


any = _truth_op("any")
all = _truth_op("all")


def _as_tensor(x: Any, op: str) -> Tensor:
    return x if isinstance(x, Tensor) else _to_tensor(x, op, None)
