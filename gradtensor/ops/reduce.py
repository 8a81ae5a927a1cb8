"""Reductions over axes: sum, amax, amin, logsumexp, prod (primitives); mean, var, std, nansum,
nanmean (composite); max, min, median, mode, sort as PyTorch's (values and indices along a dim);
scans along a dim: cumsum, cumprod, logcumsumexp (primitives), cummax, cummin."""

from __future__ import annotations

import builtins
import collections
import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .elementwise import abs, exp, isnan, log, maximum, minimum, sqrt, where
from .registry import Bad, Sample, _to_tensor, composite, primitive
from .shape import _broadcast_to, _concatenate, _permute, flip, normalize_axis, take_along_dim

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


def _one_dim(op: str, x: Tensor, dim: Any) -> int:
    """dim as a non-negative int (a 0-d tensor takes 0 or -1, as in PyTorch), or a clear error."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, not {dim!r}")
    n = builtins.max(x.ndim, 1)
    if not -n <= dim < n:
        raise ValueError(f"{op}: dim {dim} is out of range for a tensor of {x.ndim} dims")
    return int(dim) % n


def kept_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape a reduction with keepdims=True gives."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def expand_reduced(g: Tensor, x_shape: tuple, axis: Any, keepdims: bool) -> Tensor:
    """Put back the reduced axes of a reduction's gradient (as size-1 axes)."""
    return g if keepdims else g.reshape(kept_shape(x_shape, axis))


def _torch_reduce(name: str) -> Any:
    """The PyTorch twin of a reduction called with NumPy's axis/keepdims (None: every dim)."""
    return lambda t, x, axis=None, keepdims=False: getattr(t, name)(
        x, dim=tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims
    )


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


@primitive("sum", save="", samples=REDUCE, torch=_torch_reduce("sum"), numpy="sum")
def _sum(xp, x, *, axis, keepdims):
    # The arrays' own methods here and below: NumPy's functions wrap them for a microsecond more.
    if x.dtype == np.float16:  # accumulate in float32, as NumPy's mean and PyTorch's sum do
        return x.sum(axis=axis, keepdims=keepdims, dtype=np.float32).astype(np.float16)
    return x.sum(axis=axis, keepdims=keepdims)


_sum.defvjp(
    lambda g, y, x, *, axis, keepdims: _broadcast_to(
        expand_reduced(g, x.shape, axis, keepdims), shape=x.shape
    )
)


sum = _reduction(
    _sum, "Sum over `axis` (int, tuple or None for all): `x.sum(axis=1, keepdims=True)`."
)


@composite(samples=REDUCE, torch=_torch_reduce("mean"), numpy="mean")
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


def _torch_var(name: str) -> Any:
    """var's and std's PyTorch twin, taking the NumPy spellings the samples use as well."""

    def twin(t, x, dim=None, unbiased=None, keepdim=False, *, axis=None, keepdims=False, **kw):
        c = next((v for v in (*kw.values(), unbiased) if v is not None), 1)  # ddof, correction
        dim = dim if axis is None else axis
        return getattr(t, name)(x, dim, correction=int(c), keepdim=keepdim or keepdims)

    return twin


@composite(
    samples=_VAR + [Sample((4,), unbiased=False), Sample((3, 2), ddof=2, axis=0)],
    torch=_torch_var("var"),
)
def var(
    x: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, **kw: Any
) -> Tensor:
    """Variance over `dim`, dividing by n - correction: PyTorch's, correction=1 unless
    `correction`, `unbiased` or NumPy's `ddof` says otherwise; `axis`/`keepdims` are accepted."""
    return _variance("var", x, dim, unbiased, keepdim, kw)


@composite(samples=_VAR[:4] + _VAR[-2:] + [Sample((3, 4), axis=0, ddof=0)], torch=_torch_var("std"))
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


def _reduce_nonempty(op: str, xp: Any, method: str, x: Any, axis: Any, keepdims: bool) -> Any:
    if x.size == 0 and _count(x.shape, axis) == 0:  # an empty axis is reduced: no identity
        raise ValueError(f"{op}: cannot reduce an empty axis of a tensor of shape {x.shape}")
    if x.size == 0:  # only kept axes are empty: an empty result, as NumPy and PyTorch give
        return xp.empty(_reduced_shape(x.shape, axis, keepdims), x.dtype)
    return getattr(x, method)(axis=axis, keepdims=keepdims)


def _reduced_shape(shape: tuple[int, ...], axis: Any, keepdims: bool) -> tuple[int, ...]:
    """The shape a reduction over `axis` gives."""
    if keepdims:
        return kept_shape(shape, axis)
    return () if axis is None else tuple(n for i, n in enumerate(shape) if i not in axis)


@primitive("amax", save="xy", samples=REDUCE, torch=_torch_reduce("amax"), numpy="amax")
def _amax(xp, x, *, axis, keepdims):
    return _reduce_nonempty("amax", xp, "max", x, axis, keepdims)


@primitive("amin", save="xy", samples=REDUCE, torch=_torch_reduce("amin"), numpy="amin")
def _amin(xp, x, *, axis, keepdims):
    return _reduce_nonempty("amin", xp, "min", x, axis, keepdims)


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


@primitive(
    "logsumexp",
    save="xy",
    samples=REDUCE + [Sample((2, 3), domain=(-1e3, 1e3), axis=1)],
    torch=_torch_reduce("logsumexp"),
)
def _logsumexp(xp, x, *, axis, keepdims):
    if x.size == 0:  # the log of an empty sum is -inf (and nothing at all if the result is empty)
        return xp.full(_reduced_shape(x.shape, axis, keepdims), -xp.inf, x.dtype)
    # Shift by the maximum so that exp never overflows; an all -inf slice keeps a shift of 0.
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return s if keepdims else s.reshape(_reduced_shape(x.shape, axis, False))


_logsumexp.defvjp(
    lambda g, y, x, *, axis, keepdims: (
        expand_reduced(g, x.shape, axis, keepdims)
        * exp(x - expand_reduced(y, x.shape, axis, keepdims))
    )
)


logsumexp = _reduction(_logsumexp, "log(sum(exp(x))) over `axis`, computed without overflow.")


# -- prod -------------------------------------------------------------------------------------


def _torch_prod(t: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """torch.prod reduces one dim at a time."""
    if axis is None:
        return t.prod(x).reshape((1,) * x.ndim if keepdims else ())
    for a in sorted(np.atleast_1d(axis) % x.ndim, reverse=True):
        x = t.prod(x, int(a), keepdims)
    return x


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
    torch=_torch_prod,
    numpy="prod",
)
def _prod(xp, x, *, axis, keepdims):
    return x.prod(axis=axis, keepdims=keepdims)


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


# -- scans along one dim ----------------------------------------------------------------------


def _torch_dtype(t: Any, dtype: Any) -> Any:
    return None if dtype is None else getattr(t, np.dtype(dtype).name)


def _np_scan(fn: Any) -> Any:
    """A NumPy twin of a scan: NumPy's accumulations refuse 0-d arrays."""
    return lambda n, x, dim, **kw: fn(n)(n.atleast_1d(x), dim, **kw).reshape(n.shape(x))


def _cut(a: Any, dim: int, lo: int, hi: int) -> Any:
    return a[(slice(None),) * dim + (slice(lo, hi),)]


def _doubling_scan(cat: Any, arrays: tuple, dim: int, combine: Any) -> tuple:
    """Inclusive scan of (tuples of) arrays or tensors along dim by recursive doubling: log2(n)
    steps of `combine(earlier, later)`, joined by `cat(parts, dim)` (CuPy's ufuncs accumulate
    only add and multiply)."""
    n = arrays[0].shape[dim]
    step = 1
    while step < n:
        new = combine([_cut(a, dim, 0, n - step) for a in arrays],
                      [_cut(a, dim, step, n) for a in arrays])  # fmt: skip
        arrays = tuple(cat([_cut(a, dim, 0, step), b], dim) for a, b in zip(arrays, new))
        step *= 2
    return arrays


def _running_index(xp: Any, a: Any, dim: int, later_wins: Any) -> Any:
    """Index of the running extreme along dim: a later element replaces it where
    `later_wins(later, earlier)` or it is NaN (NaN propagates, as in PyTorch)."""
    pos = xp.zeros(a.shape, np.int64) + xp.arange(a.shape[dim]).reshape(
        (-1,) + (1,) * (a.ndim - dim - 1)
    )

    def combine(e: list, l: list) -> list:
        take = (l[0] != l[0]) | later_wins(l[0], e[0])
        return [xp.where(take, l[0], e[0]), xp.where(take, l[1], e[1])]

    return _doubling_scan(xp.concatenate, (a, pos), dim, combine)[1]


def _scan_api(prim: Any, doc: str) -> Any:
    """The public function of cumsum/cumprod/logcumsumexp: PyTorch's (x, dim, *, dtype)."""
    name = prim.name

    def api(x: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
        x = _as_tensor(x, name)
        d = _one_dim(name, x, dim)
        if dtype is not None:
            x = x.astype(dtype)
        if name == "logcumsumexp" and x.dtype.kind != "f":
            raise TypeError(f"logcumsumexp: expected a floating point tensor, got {x.dtype}")
        return prim(x.reshape(1), dim=0).reshape(()) if x.ndim == 0 else prim(x, dim=d)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = doc
    return prim.api(api)


def _bad_dim(op: str) -> list:
    return [
        Bad((3, 4), 2, match=rf"{op}: dim 2 is out of range for a tensor of 2 dims"),
        Bad((3, 4), -3, match=r"dim -3 is out of range"),
        Bad((3, 4), 0.5, error=TypeError, match="dim must be an int"),
    ]


_SCAN = [
    Sample((3, 4), 1),
    Sample((2, 3, 4), 0),
    Sample((5,), -1),
    Sample((), 0),
    Sample((2, 0), 1),
]
_ZEROS = np.array(
    [[0.0, 1.5, 0.0, 2.0, -1.0], [0.5, 2.0, 0.0, 0.0, 3.0], [1.2, -0.7, 0.9, 1.1, 0.0]]
)


@primitive(
    "cumsum",
    save="",
    samples=_SCAN + [Sample((3, 2), 0, dtype=np.float64)],
    torch=lambda t, x, dim, dtype=None: t.cumsum(x, dim, dtype=_torch_dtype(t, dtype)),
    numpy=_np_scan(lambda n: n.cumsum),
    errors=_bad_dim("cumsum"),
)
def _cumsum(xp, x, *, dim):
    return xp.cumsum(x, axis=dim, dtype=np.int64 if x.dtype.kind in "biu" else None)


def _revcumsum(g: Tensor, dim: int) -> Tensor:
    return flip(_cumsum(flip(g, dim), dim=dim), dim)


_cumsum.defvjp(lambda g, y, x, *, dim: _revcumsum(g, dim))
cumsum = _scan_api(_cumsum, "Running sums along dim, as PyTorch's cumsum (integers sum in int64).")


@primitive(
    "cumprod",
    save="xy",
    samples=_SCAN + [Sample(_ZEROS, 1), Sample(_ZEROS, 0), Sample(_ZEROS[:, :3].T.copy(), -1)],
    torch=lambda t, x, dim, dtype=None: t.cumprod(x, dim, dtype=_torch_dtype(t, dtype)),
    numpy=_np_scan(lambda n: n.cumprod),
    errors=_bad_dim("cumprod"),
)
def _cumprod(xp, x, *, dim):
    return xp.cumprod(x, axis=dim, dtype=np.int64 if x.dtype.kind in "biu" else None)


def _cumprod_grad(g: Tensor, y: Tensor, x: Tensor, *, dim: int) -> Tensor:
    # gx_j = (x_0 ... x_{j-1}) s_j with s_j = g_j + x_{j+1} s_{j+1}, scanned: no division (y / x
    # fails at zeros), so it is exact there and right again when differentiated.
    n = x.shape[dim]
    if n < 2:
        return g
    xp = backend.array_module(x.data if isinstance(x, Tensor) else x)
    one = xp.ones(x.shape[:dim] + (1,) + x.shape[dim + 1 :], x.dtype)
    before = _cumprod(_concatenate(one, _cut(x, dim, 0, n - 1), axis=dim), dim=dim)
    after = flip(_concatenate(_cut(x, dim, 1, n), one, axis=dim), dim)  # its first is unused
    s = _doubling_scan(
        lambda parts, d: _concatenate(*parts, axis=d),
        (flip(g, dim), after),
        dim,
        lambda e, l: [l[0] + l[1] * e[0], l[1] * e[1]],  # s = a + b * s_prev, composed
    )[0]
    return before * flip(s, dim)


_cumprod.defvjp(_cumprod_grad)
cumprod = _scan_api(
    _cumprod, "Running products along dim, as PyTorch's cumprod; its gradient is exact at zeros."
)


@primitive(
    "logcumsumexp",
    save="xy",
    samples=_SCAN[:4]
    + [
        Sample((2, 6), 1, domain=(-1e3, 1e3)),
        # A slice all -inf so far is tested in tests/test_ops_scans.py: PyTorch's gradient is NaN.
        Sample(np.array([[0.3, 0.5, -np.inf, 2.0], [1.0, -np.inf, -0.3, 700.0]]), 1),
    ],
    torch="logcumsumexp",
    numpy=_np_scan(lambda n: n.logaddexp.accumulate),
    errors=_bad_dim("logcumsumexp")
    + [Bad(np.array([1, 2]), 0, error=TypeError, match="floating point")],
)
def _logcumsumexp(xp, x, *, dim):
    with np.errstate(invalid="ignore"):  # NumPy's logaddexp warns of NaN inputs; PyTorch doesn't
        return _doubling_scan(xp.concatenate, (x,), dim, lambda e, l: [xp.logaddexp(e[0], l[0])])[0]


def _logcumsumexp_grad(g: Tensor, y: Tensor, x: Tensor, *, dim: int) -> Tensor:
    # PyTorch's stable form: the positive and negative parts of g, summed in log space. Where a
    # slice is all -inf so far (y = -inf) PyTorch's gives NaN; here those terms give 0, but for
    # y_0 = x_0's own: exactly g_0.
    xp = backend.array_module(x.data if isinstance(x, Tensor) else x)
    head = xp.arange(x.shape[dim]).reshape((-1,) + (1,) * (x.ndim - dim - 1)) == 0
    rest = where(head, 0, g)
    lo = float(np.finfo(g.dtype).min)
    lg, ys = log(abs(where(rest == 0, 1, rest))), where(y == -math.inf, 0, y)

    def part(sign: Tensor) -> Tensor:
        rev = flip(_logcumsumexp(flip(where(sign, lg, lo) - ys, dim), dim=dim), dim)
        return exp(rev + x)

    return part(rest > 0) - part(rest < 0) + where(head, g, 0)


_logcumsumexp.defvjp(_logcumsumexp_grad)
logcumsumexp = _scan_api(
    _logcumsumexp, "log(cumsum(exp(x))) along dim, without overflow, as PyTorch's logcumsumexp."
)


def _cum_extreme(name: str, later_wins: Any) -> Any:
    result = collections.namedtuple(name, ["values", "indices"])
    nans = np.array([[0.5, np.nan, 2.0, np.nan, 1.0], [-np.inf, 0.0, np.inf, -1.0, np.inf]])

    def api(x: Tensor, dim: int) -> Any:
        x = _as_tensor(x, name)
        d = _one_dim(name, x, dim)
        if x.ndim == 0:
            v, i = api(x.reshape(1), 0)
            return result(v.reshape(()), i.reshape(()))
        idx = _running_index(backend.array_module(x.data), x.data, d, later_wins)
        idx = _to_tensor(idx, name, x.device)
        # The value at the index, so that the gradient reaches that one element, as in PyTorch.
        return result(take_along_dim(x, idx, d), idx)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = (
        f"(values, indices) of the running {name[3:]} along dim, as PyTorch's {name}: ties take "
        "the later element, NaN propagates; the gradient reaches the element taken."
    )
    # No samples with ties: a nudge there changes the element taken (tests/test_ops_scans.py).
    # Nor the empty sample: PyTorch's gradient there requires grad (tests/test_ops_scans.py).
    samples = _SCAN[:4] + [Sample(nans, 1)]
    return composite(name, samples=samples, torch=name, errors=_bad_dim(name))(api)


cummax = _cum_extreme("cummax", lambda later, earlier: later >= earlier)
cummin = _cum_extreme("cummin", lambda later, earlier: later <= earlier)


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


_ORDER = [Sample((3, 4)), Sample((2, 3, 4), 0, True), Sample((5,), descending=True), Sample(())]
_ORDER += [Sample(np.array([[2.0, np.nan, -1.0, np.inf], [0.0, -np.inf, np.nan, 3.0]]), 1, True)]


@primitive(
    "argsort",
    differentiable=False,
    samples=_ORDER + [Sample(np.array([True, False, True]), descending=True, stable=True)],
    torch="argsort",
    errors=[Bad((3, 4), 2, match=r"dim 2 is out of range for a tensor of 2 dims")],
)
def _argsort(xp, x, *, dim, descending):
    a = x.astype(np.int64) if x.dtype.kind in "bu" else x  # negated below: no wrap-around
    idx = xp.argsort(-a if descending else a, axis=dim, kind="stable")
    if descending and a.dtype.kind == "f":  # NaN counts as the largest, as in PyTorch: first
        not_nan = ~xp.isnan(xp.take_along_axis(a, idx, dim))
        idx = xp.take_along_axis(idx, xp.argsort(not_nan, axis=dim, kind="stable"), dim)
    return idx


@_argsort.api
def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Indices that sort x along dim, as PyTorch's (always stable: ties keep their order)."""
    x = _as_tensor(x, "argsort")
    d = _one_dim("argsort", x, dim)
    if x.ndim == 0:
        return _argsort(x.reshape(1), dim=0, descending=bool(descending)).reshape(())
    return _argsort(x, dim=d, descending=bool(descending))


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """(values, indices) sorted along dim, as PyTorch's sort (ties keep their order)."""
    x = _as_tensor(x, "sort")
    idx = argsort(x, dim, descending)
    if x.ndim == 0:
        return _sorted(x, idx)
    return _sorted(take_along_dim(x, idx, dim), idx)


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


_mode = collections.namedtuple("mode", ["values", "indices"])


def _mode_index(xp: Any, a: Any, d: int) -> Any:
    """Index (kept dim) of the most frequent value along d, the smallest among ties, at its last
    place, as PyTorch's: runs of a stable sort, the first longest one."""
    a = xp.moveaxis(a.astype(np.int8) if a.dtype.kind == "b" else a, d, -1)
    order = xp.argsort(a, axis=-1, kind="stable")
    s = xp.take_along_axis(a, order, -1)
    pos = xp.zeros(s.shape, np.int64) + xp.arange(s.shape[-1])
    start = xp.concatenate([xp.ones(s.shape[:-1] + (1,), bool), s[..., 1:] != s[..., :-1]], -1)
    run_start = _running_index(xp, xp.where(start, pos, -1), s.ndim - 1, lambda l, e: l >= e)
    best = xp.argmax(pos - run_start, axis=-1)[..., None]  # a run's end, within the sort
    return xp.moveaxis(xp.take_along_axis(order, best, -1), -1, d)


@composite(
    samples=[
        Sample((3, 4)),
        Sample((3, 4), 0),
        Sample((2, 3, 4), 1, True),
        Sample(()),
        Sample((5,)),
    ],
    torch="mode",
    errors=_bad_dim("mode")[:1] + [Bad((3, 0), 1, match=r"mode: dim 1 of shape \(3, 0\) is empty")],
)
def mode(x: Tensor, dim: int = -1, keepdim: bool = False) -> Any:
    """(values, indices): the most frequent value along dim (the smallest among ties) and its
    last index, as PyTorch's mode; the gradient reaches that element."""
    x = _as_tensor(x, "mode")
    d = _one_dim("mode", x, dim)
    if x.ndim == 0:
        v, i = mode(x.reshape(1), 0)
        return _mode(v.reshape(()), i.reshape(()))
    if x.shape[d] == 0:
        raise ValueError(f"mode: dim {d} of shape {x.shape} is empty")
    idx = _to_tensor(_mode_index(backend.array_module(x.data), x.data, d), "mode", x.device)
    v = take_along_dim(x, idx, d)
    return _mode(v, idx) if keepdim else _mode(v.squeeze(d), idx.squeeze(d))


@primitive(
    "count_nonzero",
    differentiable=False,
    samples=[Sample(_ZEROS), Sample(_ZEROS, 1), Sample(_ZEROS, dim=(0, 1)), Sample(())],
    torch="count_nonzero",
    numpy=lambda n, x, dim=None: n.count_nonzero(x, axis=dim),
    errors=[Bad((3, 4), 2, match="out of range")],
)
def _count_nonzero(xp, x, *, axis):
    return xp.asarray(xp.count_nonzero(x, axis=axis), dtype=np.int64)


@_count_nonzero.api
def count_nonzero(x: Tensor, dim: Any = None) -> Tensor:
    """How many elements are not zero, over dim (an int, several, or None: all), in int64."""
    x = _as_tensor(x, "count_nonzero")
    return _count_nonzero(x, axis=normalize_axis("count_nonzero", x.ndim, dim))


_NANS = np.array([[1.5, np.nan, -0.5, 2.0], [np.nan, np.nan, 0.25, -1.0], [0.5, 1.0, 3.0, -2.0]])
_NAN_REDUCE = REDUCE + [Sample(_NANS), Sample(_NANS, 1), Sample(_NANS, axis=(0, 1), keepdims=True)]


@composite(
    samples=_NAN_REDUCE,
    torch=_torch_reduce("nansum"),
    numpy="nansum",
    errors=[Bad((3, 4), 2, match="nansum: axis 2 is out of range")],
)
def nansum(
    x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
) -> Tensor:
    """Sum over `dim`, NaNs counted as zero (they receive no gradient), as PyTorch's nansum."""
    x = _as_tensor(x, "nansum")
    axis, keepdims = axis_args("nansum", x, axis, keepdims, dim, keepdim)
    return _sum(where(isnan(x), 0, x), axis=axis, keepdims=keepdims)


@composite(
    samples=_NAN_REDUCE,  # an all-NaN slice: tests/test_ops_scans.py (PyTorch's gradient NaN)
    torch=_torch_reduce("nanmean"),
    numpy="nanmean",
    errors=[Bad(np.array([1, 2]), error=TypeError, match="floating point")],
)
def nanmean(
    x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
) -> Tensor:
    """Mean of the elements that are not NaN over `dim` (NaN where all are), as PyTorch's."""
    x = _as_tensor(x, "nanmean")
    if x.dtype.kind != "f":
        raise TypeError(f"nanmean: expected a floating point tensor, got {x.dtype}")
    axis, keepdims = axis_args("nanmean", x, axis, keepdims, dim, keepdim)
    if x.dtype == np.float16:  # counts in float16 are exact only up to 2048
        return nanmean(x.astype(np.float32), axis, keepdims).astype(np.float16)
    n = _sum((~isnan(x)).astype(x.dtype), axis=axis, keepdims=keepdims)
    total = nansum(x, axis, keepdims)
    return where(n > 0, total / where(n > 0, n, 1), math.nan)


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
