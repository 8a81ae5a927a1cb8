"""NumPy's functions with NumPy's semantics, differentiable (as `autograd.numpy`, `jax.numpy`).

>>> import gradtensor as gt, gradtensor.numpy as np
>>> w = gt.tensor(np.ones((3, 2)), dtype=gt.float64, requires_grad=True)
>>> np.sum(np.tanh(np.dot(np.ones((4, 3)), w)) ** 2).backward()   # w.grad: d/dw

A call with a Tensor among its arguments runs on gradtensor's ops and records the graph; a call
with none is NumPy's own call and gives what NumPy gives. Creation functions (`zeros`, `arange`,
`linspace`, ...) give plain NumPy arrays, and `random` is `numpy.random` (draws are constants).
A NumPy function this module lacks raises AttributeError naming it: it never falls through to
NumPy on a Tensor, which would drop the graph. The `gt.` namespace follows PyTorch instead.
"""

from __future__ import annotations

import builtins
import functools
import math
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as _onp

import gradtensor as _gt

from . import backend as _backend
from .errors import public
from .tensor import Tensor

random = _onp.random  # random draws are constants: NumPy's generators, unchanged
testing, s_, index_exp = _onp.testing, _onp.s_, _onp.index_exp
# Constants, dtypes and helpers that act on no values: NumPy's own.
_NUMPY_OWN = (
    "pi e inf nan newaxis euler_gamma dtype ndarray bool_ float16 float32 float64 complex64 "
    "complex128 int8 int16 int32 int64 intp uint8 uint16 uint32 uint64 generic number integer "
    "signedinteger unsignedinteger inexact floating finfo iinfo result_type promote_types "
    "can_cast issubdtype errstate seterr geterr set_printoptions get_printoptions printoptions "
    "double single half intc broadcast_shapes ndindex isscalar iterable"
).split()
globals().update({n: getattr(_onp, n) for n in _NUMPY_OWN})
_G = globals()  # functions this module defines by table, for its own composites
_SCALARS = (int, float, bool, complex)
_CREATION = (
    "zeros ones empty full arange linspace logspace geomspace eye identity tri indices "
    "fromfunction frombuffer fromiter loadtxt tril_indices triu_indices diag_indices "
    "unravel_index ravel_multi_index"
).split()
__all__: list[str] = list(_NUMPY_OWN)


# -- dispatch: NumPy on plain values, gradtensor where a Tensor is among the arguments ---------


def _has_tensor(items: Any) -> bool:
    return builtins.any(
        isinstance(a, Tensor) or (isinstance(a, (list, tuple)) and _has_tensor(a)) for a in items
    )


def _export(name: str, impl: Callable, lib: Any = _onp, into: dict | None = None) -> Callable:
    """`name` as NumPy's `lib.name` on plain values and `impl` where a Tensor is given."""
    np_fn = getattr(lib, name)
    label = f"gradtensor.numpy.{'linalg.' if lib is _onp.linalg else ''}{name}"
    impl = public(label, impl, tensor_first=False)  # errors name the function the user called

    @functools.wraps(np_fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not _has_tensor(args) and not _has_tensor(kwargs.values()):
            return np_fn(*args, **kwargs)
        if kwargs.pop("out", None) is not None:
            raise TypeError(
                f"{label}: out= is not supported with Tensors (a result written into another "
                "array has no gradient); use the returned value"
            )
        return impl(*args, **kwargs)

    call.__module__ = __name__
    (globals() if into is None else into)[name] = call
    if into is None:
        __all__.append(name)
    return call


def _np(*names: str) -> Callable:
    """Decorator: export `impl` under its name (and `names`), NumPy's on plain values."""

    def register(impl: Callable) -> Callable:
        calls = [_export(n, impl) for n in (impl.__name__, *names)]
        return calls[0]

    return register


def _op(name: str, lib: str = "") -> Callable:
    """gradtensor's op `gt.name` (`gt.lib.name`), looked up when called, or a clear error."""
    space = getattr(_gt, lib, None) if lib else _gt
    fn = getattr(space, name, None)
    if fn is not None:
        return fn
    raise NotImplementedError(
        f"gradtensor.numpy.{lib + '.' if lib else ''}{name}: gradtensor has no "
        f"gt.{lib + '.' if lib else ''}{name} yet, so this function cannot run on Tensors"
    )


def _tensor(a: Any, dtype: Any = None) -> Tensor:
    """`a` as a Tensor keeping NumPy's dtype (float64 data stays float64); lists of Tensors are
    stacked, so that gradients reach each of them."""
    if isinstance(a, Tensor):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    if isinstance(a, (list, tuple)) and _has_tensor(a):
        return _gt.stack(_promoted(list(a), dtype))
    arr = a if _backend.is_cuda_array(a) else _onp.asarray(a, dtype)
    return _gt.tensor(arr, dtype=arr.dtype if dtype is None else dtype)


def _promoted(parts: list, dtype: Any = None) -> list[Tensor]:
    """Tensors cast to their common dtype, by NumPy's promotion."""
    ts = [_tensor(p) for p in parts]
    dt = dtype or (_onp.result_type(*[t.dtype for t in ts]) if ts else None)
    return [_tensor(t, dt) for t in ts]


def _data(a: Any) -> Any:
    if isinstance(a, Tensor):
        return a.data
    return [_data(b) for b in a] if isinstance(a, (list, tuple)) and _has_tensor(a) else a


def _dummy(a: Any) -> Any:
    """What stands for an operand when asking NumPy for a result's dtype: Python numbers as
    they are (weak, NEP 50), anything else as an empty array of its dtype."""
    if a is None or type(a) in _SCALARS:
        return a
    return _onp.empty(0, a.dtype if isinstance(a, Tensor) else _onp.asarray(_data(a)).dtype)


def _cast(y: Any, dt: Any) -> Any:
    return y if not isinstance(y, Tensor) or y.dtype == dt else y.astype(dt)


# -- elementwise: NumPy's promotion first, then gradtensor's op ------------------------------


def _ufunc(name: str, gt_name: str = "") -> None:
    np_fn = getattr(_onp, name)

    def impl(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"gradtensor.numpy.{name}: {sorted(kwargs)} not supported on Tensors")
        with _onp.errstate(all="ignore"):
            dt = np_fn(*[_dummy(a) for a in args]).dtype
        # Float results are computed in their dtype: int64 -> float64, float32 with float64.
        cast = dt if dt.kind in "fc" else None
        xs = [a if type(a) in _SCALARS else _tensor(a, cast) for a in args]
        return _cast(_op(gt_name or name)(*xs), dt)

    _export(name, impl)


for _names in (
    "add", "subtract", "multiply", "divide", "true_divide:divide", "power", "maximum", "minimum",
    "negative", "positive:copy", "absolute:abs", "abs", "fabs:abs", "exp", "exp2", "expm1", "log",
    "log2", "log10", "log1p", "sqrt", "square", "reciprocal", "sin", "cos", "tan", "arcsin",
    "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "arctan2", "hypot",
    "fmod", "remainder", "mod:remainder", "logaddexp", "logaddexp2", "floor", "ceil", "trunc",
    "fix:trunc", "rint:round", "sign", "floor_divide",
):  # fmt: skip
    _ufunc(*_names.split(":"))


def _const(name: str, lib: Any = _onp) -> None:
    """Functions whose results are bools or integers (comparisons, tests, positions): NumPy's
    (CuPy's on a GPU) on the values, as constant Tensors: there is no gradient to keep."""

    def impl(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _data(args), {k: _data(v) for k, v in kwargs.items()}
        on_gpu = [a for a in (*args, *kwargs.values()) if _backend.is_cuda_array(a)]
        xp = _backend.array_module(on_gpu[0]) if on_gpu else _onp
        fn = getattr(xp if lib is _onp else xp.linalg, name)
        return _wrap(fn(*args, **kwargs))

    _export(name, impl, lib, None if lib is _onp else linalg.__dict__)


def _wrap(out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return type(out)(_wrap(o) for o in out)
    if isinstance(out, _onp.generic) or isinstance(out, _onp.ndarray):
        return Tensor._make(_onp.asarray(out))
    return Tensor._make(out) if _backend.is_cuda_array(out) else out


for _name in (
    "signbit heaviside isnan isinf "
    "isfinite isneginf isposinf isclose allclose array_equal array_equiv equal not_equal less "
    "less_equal greater greater_equal logical_and logical_or logical_not logical_xor "
    "bitwise_and bitwise_or bitwise_xor bitwise_not invert left_shift right_shift argmax argmin "
    "argsort argwhere nonzero flatnonzero count_nonzero searchsorted digitize "
    "any all lexsort"
).split():
    _const(_name)


@_np()
def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    if x is None and y is None:
        return _G["nonzero"](condition)
    dt = _onp.where(_onp.empty(0, bool), _dummy(x), _dummy(y)).dtype
    cond = _tensor(condition)
    cond = cond if cond.dtype == bool else cond != 0
    xs = [v if type(v) in _SCALARS else _tensor(v, dt) for v in (x, y)]
    return _cast(_gt.where(cond, *xs), dt)


@_np()
def clip(a: Any, a_min: Any = None, a_max: Any = None, *, min: Any = None, max: Any = None) -> Any:
    lo, hi = (a_min, a_max) if min is None and max is None else (min, max)
    dt = _onp.clip(_dummy(a), _dummy(lo), _dummy(hi)).dtype
    x, lo, hi = (v if v is None or type(v) in _SCALARS else _tensor(v, dt) for v in (a, lo, hi))
    return _cast(_gt.clip(_tensor(x, dt), lo, hi), dt)


@_np()
def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None):
    return _op("nan_to_num")(_tensor(x), nan=nan, posinf=posinf, neginf=neginf)


@_np("around")
def round(a: Any, decimals: int = 0) -> Tensor:
    x = _tensor(a)
    return _op("round")(x, decimals=decimals) if decimals else _G["rint"](x)


@_np("deg2rad")
def radians(x: Any) -> Any:
    return _G["multiply"](x, math.pi / 180)


@_np("rad2deg")
def degrees(x: Any) -> Any:
    return _G["multiply"](x, 180 / math.pi)


@_np()
def sinc(x: Any) -> Any:
    t = _floated(x)
    safe = where(t == 0, 1.0, t * math.pi)
    return where(t == 0, 1.0, _G["sin"](safe) / safe)


def _floated(a: Any, dtype: Any = None) -> Tensor:
    """`a` as a Tensor, integers and bools as float64 (as NumPy's means and averages)."""
    x = _tensor(a, dtype)
    return x if x.dtype.kind in "fc" else x.astype(_onp.float64)


# -- reductions -------------------------------------------------------------------------------


def _reduction(name: str, floated: bool = False) -> None:
    """sum and prod; mean, var and std (of integers in float64, as NumPy; var's ddof is 0)."""
    np_fn, fn = getattr(_onp, name), getattr(_gt, name)

    def run(a: Any, axis: Any, dtype: Any, out: Any, **kw: Any) -> Tensor:
        if out is not None:
            raise TypeError(f"gradtensor.numpy.{name}: out= is not supported with Tensors")
        x = _floated(a, dtype) if floated else _tensor(a, dtype)
        return _cast(fn(x, axis=axis, **kw), dtype or np_fn(_onp.zeros(1, x.dtype)).dtype)

    def impl(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims=False) -> Any:
        return run(a, axis, dtype, out, keepdims=keepdims)

    def moment(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
               keepdims: bool = False, *, correction: Any = None) -> Tensor:  # fmt: skip
        ddof = ddof if correction is None else correction
        return run(a, axis, dtype, out, ddof=ddof, keepdims=keepdims)

    _export(name, moment if name in ("var", "std") else impl)


for _name in ("sum", "prod", "mean", "var", "std"):
    _reduction(_name, floated=_name in ("mean", "var", "std"))


@_np("amax")
def max(a: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    return _gt.amax(_tensor(a), axis=axis, keepdims=keepdims)


@_np("amin")
def min(a: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    return _gt.amin(_tensor(a), axis=axis, keepdims=keepdims)


@_np()
def ptp(a: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    return max(a, axis, keepdims=keepdims) - min(a, axis, keepdims=keepdims)


@_np()
def average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, keepdims: bool = False
) -> Any:
    x = _floated(a)
    if weights is None:
        avg = _G["mean"](x, axis, keepdims=keepdims)
        n = x.numel() // builtins.max(avg.numel(), 1)
        return (avg, _gt.full_like(avg, float(n))) if returned else avg
    w = _tensor(weights)
    if w.shape != x.shape:  # 1-D weights along one axis, as NumPy takes them
        if axis is None or w.ndim != 1:
            raise TypeError("gradtensor.numpy.average: 1-D weights need an int axis")
        w = w.reshape([-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])
    wsum = _G["sum"](broadcast_to(w, x.shape), axis, keepdims=keepdims)
    avg = _G["sum"](_G["multiply"](x, w), axis, keepdims=keepdims) / wsum
    return (avg, wsum) if returned else avg


def _nan_filled(a: Any, fill: float, dtype: Any = None) -> Tensor:
    x = _tensor(a, dtype)
    return where(_G["isnan"](x), fill, x) if x.dtype.kind in "fc" else x


# NaNs replaced by the reduction's identity (NumPy's signatures: the sums take a dtype).
_export("nansum", lambda a, axis=None, dtype=None, out=None, keepdims=False: _G["sum"](
    _nan_filled(a, 0, dtype), axis, keepdims=keepdims))  # fmt: skip
_export("nanprod", lambda a, axis=None, dtype=None, out=None, keepdims=False: _G["prod"](
    _nan_filled(a, 1, dtype), axis, keepdims=keepdims))  # fmt: skip
_export("nanmax", lambda a, axis=None, out=None, keepdims=False: _G["max"](
    _nan_filled(a, -math.inf), axis, keepdims=keepdims))  # fmt: skip
_export("nanmin", lambda a, axis=None, out=None, keepdims=False: _G["min"](
    _nan_filled(a, math.inf), axis, keepdims=keepdims))  # fmt: skip


@_np()
def nanmean(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tensor:
    x = _floated(a, dtype)
    count = _G["sum"](_G["logical_not"](_G["isnan"](x)).astype(x.dtype), axis, keepdims=keepdims)
    return _G["nansum"](x, axis, keepdims=keepdims) / count


@_np()
def nanvar(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
           keepdims: bool = False) -> Tensor:  # fmt: skip
    x = _floated(a, dtype)
    keep = _G["logical_not"](_G["isnan"](x))
    d = where(keep, x - nanmean(x, axis, keepdims=True), 0)
    n = _G["sum"](keep.astype(x.dtype), axis, keepdims=keepdims)
    return _G["sum"](d * d, axis, keepdims=keepdims) / (n - ddof)


_export("nanstd", lambda *args, **kw: _G["sqrt"](nanvar(*args, **kw)))


@_np()
def quantile(a: Any, q: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
             method: str = "linear", keepdims: bool = False) -> Tensor:  # fmt: skip
    """NumPy's linear interpolation between the order statistics around q (n - 1)."""
    if method != "linear":
        raise NotImplementedError(
            f"gradtensor.numpy.quantile: only method='linear', not {method!r}"
        )
    x = _floated(a)
    x = _tensor(x, _onp.result_type(x.dtype, _dummy(q)))  # a float64 q makes float64, as NumPy
    red = range(x.ndim) if axis is None else _onp.atleast_1d(axis) % builtins.max(x.ndim, 1)
    red = sorted(set(int(i) for i in red)) if x.ndim else []
    rest = [n for i, n in enumerate(x.shape) if i not in red]
    # The reduced axes moved last and merged into one, sorted: (...rest, n).
    s = sort(moveaxis(x, red, list(range(-len(red), 0))).reshape([*rest, -1]), -1)
    n, qa = s.shape[-1], _onp.asarray(_data(q), _onp.float64)
    pos = qa.reshape(-1) * (n - 1)
    lo = _onp.floor(pos).astype(int)
    lo_v, hi_v = s[..., lo], s[..., _onp.minimum(lo + 1, n - 1)]
    frac = _gt.tensor(pos - lo, dtype=x.dtype, device=x.device)
    r = moveaxis(lo_v + (hi_v - lo_v) * frac, -1, 0)  # (len(q), ...rest)
    if keepdims:
        r = r.reshape([r.shape[0], *(1 if i in red else m for i, m in enumerate(x.shape))])
    return r.reshape(qa.shape + r.shape[1:])


def _percent(q: Any) -> Any:
    return q / 100 if type(q) in _SCALARS else _onp.asarray(_data(q)) / 100


_export("percentile", lambda a, q, *args, **kw: quantile(a, _percent(q), *args, **kw))
_export("median", lambda a, axis=None, out=None, overwrite_input=False, keepdims=False: quantile(
    a, 0.5, axis, keepdims=keepdims))  # fmt: skip


@_np()
def cov(m: Any, y: Any = None, rowvar: bool = True, bias: bool = False, ddof: Any = None,
        fweights: Any = None, aweights: Any = None, *, dtype: Any = None) -> Tensor:  # fmt: skip
    if fweights is not None or aweights is not None:
        raise NotImplementedError("gradtensor.numpy.cov: fweights and aweights are not supported")
    x = _at2(_floated(m, dtype))
    x = x if rowvar else x.T
    if y is not None:
        y = _at2(_floated(y, dtype))
        x = concatenate([x, y if rowvar else y.T], 0)
    d = x - _G["mean"](x, 1, keepdims=True)
    ddof = (0 if bias else 1) if ddof is None else ddof
    c = _gt.matmul(d, d.T) / (x.shape[1] - ddof)
    return squeeze(c) if c.shape == (1, 1) else c


@_np()
def corrcoef(x: Any, y: Any = None, rowvar: bool = True, *, dtype: Any = None) -> Tensor:
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    sd = _G["sqrt"](diagonal(c))
    return clip(c / outer(sd, sd), -1, 1)


def _scan(name: str) -> None:
    def impl(a: Any, axis: Any = None, dtype: Any = None) -> Tensor:
        x = _tensor(a, dtype)
        x, axis = (x.reshape(-1), 0) if axis is None else (x, axis)
        return _cast(_op(name)(x, axis), getattr(_onp, name)(_onp.empty(0, x.dtype)).dtype)

    _export(name, impl)


_scan("cumsum")
_scan("cumprod")


@_np()
def unique(ar: Any, return_index: bool = False, return_inverse: bool = False,
           return_counts: bool = False, axis: Any = None, **kw: Any) -> Any:  # fmt: skip
    """NumPy's unique; the values are picked from `ar`, so that gradients reach them."""
    x = _tensor(ar)
    data = _backend.to_device(x.data, _backend.CPU)
    got = _onp.unique(data, True, return_inverse, return_counts, axis, **kw)
    extra = [Tensor._make(_backend.asarray(g, g.dtype, x.device)) for g in got[1:]]
    out = [take(x, got[1], axis), *extra[: 1 if return_index else 0], *extra[1:]]
    return out[0] if len(out) == 1 else tuple(out)


@_np()
def bincount(x: Any, weights: Any = None, minlength: int = 0) -> Tensor:
    """Counts, or sums of `weights` (differentiable in them) by value of `x`."""
    idx = _data(x)
    idx = idx if _backend.is_cuda_array(idx) else _onp.asarray(idx)
    if weights is None:
        return _wrap(_backend.array_module(idx).bincount(idx, minlength=minlength))
    w = _tensor(weights, _onp.float64)  # NumPy sums weights in float64
    n = builtins.max(int(idx.max()) + 1 if idx.size else 0, minlength)
    xp = _backend.array_module(w.data)
    onehot = xp.asarray(idx)[:, None] == xp.arange(n)[None, :]
    return _gt.matmul(w, Tensor._make(onehot.astype(w.dtype)))


@_np()
def diff(a: Any, n: int = 1, axis: int = -1) -> Tensor:
    x = _tensor(a)
    pre = (slice(None),) * (axis % x.ndim)
    for _ in range(n):
        x = x[pre + (slice(1, None),)] - x[pre + (slice(None, -1),)]
    return x


@_np()
def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None):
    x = _tensor(a)
    x, axis = (x.reshape(-1), 0) if axis is None else (x, axis)
    return _gt.sort(x, axis, stable=True).values


# -- shapes -----------------------------------------------------------------------------------


@_np()
def reshape(a: Any, shape: Any, order: str = "C", *, copy: Any = None) -> Tensor:
    if order != "C":
        raise NotImplementedError(f"gradtensor.numpy.reshape: only order='C', not {order!r}")
    return _gt.reshape(_tensor(a), shape)


@_np()
def ravel(a: Any, order: str = "C") -> Tensor:
    return reshape(a, -1, order)


@_np()
def transpose(a: Any, axes: Any = None) -> Tensor:
    x = _tensor(a)
    return _gt.permute(x, tuple(range(x.ndim))[::-1] if axes is None else tuple(axes))


@_np()
def swapaxes(a: Any, axis1: int, axis2: int) -> Tensor:
    return _gt.swapaxes(_tensor(a), axis1, axis2)


@_np()
def moveaxis(a: Any, source: Any, destination: Any) -> Tensor:
    x = _tensor(a)
    src, dst = (_onp.atleast_1d(s) % builtins.max(x.ndim, 1) for s in (source, destination))
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst.tolist(), src.tolist())):
        order.insert(d, s)
    return _gt.permute(x, order)


@_np()
def expand_dims(a: Any, axis: Any) -> Tensor:
    return _gt.expand_dims(_tensor(a), axis)


@_np()
def squeeze(a: Any, axis: Any = None) -> Tensor:
    return _gt.squeeze(_tensor(a), axis)


@_np()
def broadcast_to(array: Any, shape: Any) -> Tensor:
    return _gt.broadcast_to(_tensor(array), shape)


@_np()
def broadcast_arrays(*args: Any) -> tuple:
    shape = _onp.broadcast_shapes(*(_onp.shape(_dummy_shape(a)) for a in args))
    return tuple(broadcast_to(a, shape) for a in args)


def _dummy_shape(a: Any) -> Any:
    return _onp.empty(a.shape, bool) if isinstance(a, Tensor) else a


def _atleast(n: int) -> Callable:
    def one(a: Any) -> Tensor:
        x = _tensor(a)
        if x.ndim >= n:
            return x
        # NumPy's rules: a vector becomes a row (1, N), and (1, N, 1) in 3-D; a matrix (M, N, 1).
        shape = ((1,) * n, (1, *x.shape, 1)[:n], (*x.shape, 1))[x.ndim]
        return x.reshape(shape)

    def impl(*arys: Any) -> Any:
        out = tuple(one(a) for a in arys)
        return out[0] if len(out) == 1 else out

    _export(f"atleast_{n}d", impl)
    return one


_at1, _at2, _at3 = _atleast(1), _atleast(2), _atleast(3)


@_np()
def concatenate(arrays: Any, axis: Any = 0, dtype: Any = None) -> Tensor:
    xs = _promoted(list(arrays), dtype)
    if axis is None:
        xs, axis = [x.reshape(-1) for x in xs], 0
    return _gt.concatenate(xs, axis=axis)


@_np()
def stack(arrays: Any, axis: int = 0, dtype: Any = None) -> Tensor:
    return _gt.stack(_promoted(list(arrays), dtype), axis=axis)


@_np("row_stack")
def vstack(tup: Any, dtype: Any = None) -> Tensor:
    return concatenate([_at2(a) for a in tup], 0, dtype)


@_np()
def hstack(tup: Any, dtype: Any = None) -> Tensor:
    xs = [_at1(a) for a in tup]
    return concatenate(xs, 0 if xs and xs[0].ndim == 1 else 1, dtype)


@_np()
def dstack(tup: Any) -> Tensor:
    return concatenate([_at3(a) for a in tup], 2)


@_np()
def column_stack(tup: Any) -> Tensor:
    return concatenate([_at2(a).T if _tensor(a).ndim < 2 else a for a in tup], 1)


@_np()
def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    x = _tensor(ary)
    if isinstance(indices_or_sections, (int, _onp.integer)) and x.shape[axis] % int(
        indices_or_sections
    ):
        raise ValueError("gradtensor.numpy.split: array split does not result in an equal division")
    return array_split(x, indices_or_sections, axis)


@_np()
def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    ios = indices_or_sections
    ios = int(ios) if isinstance(ios, (int, _onp.integer)) else [int(i) for i in ios]
    return list(_gt.tensor_split(_tensor(ary), ios, axis=axis))  # a list, as NumPy's


def _split_on(name: str, axis: Callable) -> None:
    _export(name, lambda ary, ios: split(ary, ios, axis(_tensor(ary))))


_split_on("vsplit", lambda x: 0)
_split_on("hsplit", lambda x: 1 if x.ndim > 1 else 0)
_split_on("dsplit", lambda x: 2)


@_np()
def tile(A: Any, reps: Any) -> Tensor:
    x = _tensor(A)
    reps = (reps,) if isinstance(reps, (int, _onp.integer)) else tuple(reps)
    return _gt.repeat(x, (1,) * (x.ndim - len(reps)) + reps)


def _take_axis(x: Tensor, idx: Any, axis: int) -> Tensor:
    return x[(slice(None),) * (axis % builtins.max(x.ndim, 1)) + (_onp.asarray(idx),)]


@_np()
def repeat(a: Any, repeats: Any, axis: Any = None) -> Tensor:
    x = _tensor(a)
    x, axis = (x.reshape(-1), 0) if axis is None else (x, axis)
    n = x.shape[axis]
    return _take_axis(x, _onp.repeat(_onp.arange(n), _onp.asarray(_data(repeats))), axis)


@_np()
def take(a: Any, indices: Any, axis: Any = None, mode: str = "raise") -> Tensor:
    x = _tensor(a)
    x, axis = (x.reshape(-1), 0) if axis is None else (x, axis)
    idx, n = _onp.asarray(_data(indices)), x.shape[axis]
    idx = {"raise": idx, "wrap": idx % builtins.max(n, 1), "clip": _onp.clip(idx, 0, n - 1)}[mode]
    return _take_axis(x, idx, axis)


@_np()
def take_along_axis(arr: Any, indices: Any, axis: Any = -1) -> Tensor:
    x = _tensor(arr)
    x, axis = (x.reshape(-1), 0) if axis is None else (x, axis)
    return _gt.take_along_dim(x, _data(indices), axis)


@_np()
def flip(m: Any, axis: Any = None) -> Tensor:
    x = _tensor(m)
    return _gt.flip(x, list(range(x.ndim)) if axis is None else axis)


_export("fliplr", lambda m: flip(m, 1))
_export("flipud", lambda m: flip(m, 0))


@_np()
def roll(a: Any, shift: Any, axis: Any = None) -> Tensor:
    x = _tensor(a)
    if axis is None:
        return roll(x.reshape(-1), shift, 0).reshape(x.shape)
    for s, ax in zip(*(_onp.atleast_1d(v) for v in _onp.broadcast_arrays(shift, axis))):
        n = x.shape[int(ax)]
        x = _take_axis(x, (_onp.arange(n) - int(s)) % builtins.max(n, 1), int(ax))
    return x


@_np()
def pad(array: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Tensor:
    x = _tensor(array)
    if mode != "constant" or _onp.ndim(constant_values):
        raise NotImplementedError(
            f"gradtensor.numpy.pad: only mode='constant' with one value on Tensors, not {mode!r}"
        )
    width = _onp.broadcast_to(_onp.asarray(pad_width, int), (x.ndim, 2))
    shape = tuple(int(n + a + b) for n, (a, b) in zip(x.shape, width))
    inner = tuple(slice(int(a), int(a + n)) for n, (a, _) in zip(x.shape, width))
    base = _gt.full(shape, constant_values, dtype=x.dtype, device=x.device)
    return _gt.setitem(base, x, inner)


def _tri(name: str, lower: bool) -> None:
    def impl(m: Any, k: int = 0) -> Tensor:
        x = _tensor(m)
        rows, cols = x.shape[-2:]
        keep = _onp.tri(rows, cols, k if lower else k - 1, dtype=bool)
        return where(_gt.tensor(keep if lower else ~keep, device=x.device), x, 0)

    _export(name, impl)


_tri("tril", True)
_tri("triu", False)


@_np()
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    x = _tensor(a)
    x = moveaxis(x, (axis1, axis2), (-2, -1))
    r, c = x.shape[-2:]
    n = builtins.max(0, builtins.min(r + builtins.min(offset, 0), c - builtins.max(offset, 0)))
    i = _onp.arange(n)
    return x[..., i - builtins.min(offset, 0), i + builtins.max(offset, 0)]


@_np()
def diag(v: Any, k: int = 0) -> Tensor:
    x = _tensor(v)
    if x.ndim != 1:
        return diagonal(x, k)
    n = x.shape[0] + builtins.abs(k)
    i = _onp.arange(x.shape[0])
    base = _gt.zeros(n, n, dtype=x.dtype, device=x.device)
    return _gt.setitem(base, x, (i - builtins.min(k, 0), i + builtins.max(k, 0)))


@_np()
def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None) -> Tensor:
    return _G["sum"](diagonal(a, offset, axis1, axis2), -1, dtype)


@_np()
def meshgrid(*xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy") -> tuple:
    xs = [ravel(x) for x in xi]
    shape = tuple(x.shape[0] for x in xs)
    out = [x.reshape([-1 if j == i else 1 for j in range(len(xs))]) for i, x in enumerate(xs)]
    out = out if sparse else [broadcast_to(x, shape) for x in out]
    # 'xy' (NumPy's default) is the 'ij' grid with its first two axes swapped.
    return tuple(swapaxes(x, 0, 1) if indexing == "xy" and len(xs) > 1 else x for x in out)


# -- products ---------------------------------------------------------------------------------


@_np()
def matmul(a: Any, b: Any) -> Tensor:
    return _gt.matmul(*_promoted([a, b]))


@_np()
def dot(a: Any, b: Any) -> Tensor:
    """NumPy's dot: a product with 0-d, the matrix product up to 2-D, else the sum over the
    last axis of a and the second-to-last of b."""
    x, y = _promoted([a, b])
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    if y.ndim <= 2:
        return _gt.matmul(x, y)
    k, rest = y.shape[-2], y.shape[:-2] + y.shape[-1:]
    yk = moveaxis(y, -2, 0).reshape(k, -1)  # (k, b0, ..., bn) as a matrix
    return _gt.matmul(x, yk).reshape(x.shape[:-1] + rest)


@_np()
def vdot(a: Any, b: Any) -> Tensor:
    x, y = _promoted([a, b])
    return _gt.matmul(x.reshape(-1), y.reshape(-1))


@_np()
def inner(a: Any, b: Any) -> Tensor:
    x, y = _promoted([a, b])
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    return tensordot(x, y, ([-1], [-1]))


@_np()
def outer(a: Any, b: Any) -> Tensor:
    x, y = _promoted([a, b])
    return x.reshape(-1, 1) * y.reshape(1, -1)


@_np()
def tensordot(a: Any, b: Any, axes: Any = 2) -> Tensor:
    x, y = _promoted([a, b])
    if isinstance(axes, (int, _onp.integer)):
        ax, bx = list(range(x.ndim - axes, x.ndim)), list(range(axes))
    else:
        ax, bx = ([v] if isinstance(v, int) else list(v) for v in axes)
    ax, bx = [i % x.ndim for i in ax], [i % y.ndim for i in bx]
    ka = [i for i in range(x.ndim) if i not in ax]
    kb = [i for i in range(y.ndim) if i not in bx]
    m = math.prod(x.shape[i] for i in ax)
    xa = _gt.permute(x, ka + ax).reshape(-1, m)
    yb = _gt.permute(y, bx + kb).reshape(m, -1)
    shape = [x.shape[i] for i in ka] + [y.shape[i] for i in kb]
    return _gt.matmul(xa, yb).reshape(shape)


@_np()
def kron(a: Any, b: Any) -> Tensor:
    x, y = _promoted([a, b])
    nd = builtins.max(x.ndim, y.ndim)
    sa, sb = (1,) * (nd - x.ndim) + x.shape, (1,) * (nd - y.ndim) + y.shape
    pairs = [(p, 1) for p in sa], [(1, p) for p in sb]  # a's axes interleaved with b's
    prod = x.reshape([d for p in pairs[0] for d in p]) * y.reshape([d for p in pairs[1] for d in p])
    return prod.reshape([p * q for p, q in zip(sa, sb)])


@_np()
def convolve(a: Any, v: Any, mode: str = "full") -> Tensor:
    x, w = _promoted([a, v])
    x, w = (x, w) if x.shape[0] >= w.shape[0] else (w, x)
    n, m = x.shape[0], w.shape[0]
    k = _onp.arange(n + m - 1)[:, None] - _onp.arange(m)  # full[i] = sum_j w[j] x[i - j]
    inside = _gt.tensor((k >= 0) & (k < n), device=x.device)
    full = _gt.matmul(where(inside, x[_onp.clip(k, 0, n - 1)], 0), w)
    start, length = {
        "full": (0, n + m - 1),
        "same": ((m - 1) // 2, n),
        "valid": (m - 1, n - m + 1),
    }[mode]
    return full[start : start + length]


@_np()
def correlate(a: Any, v: Any, mode: str = "valid") -> Tensor:
    x, w = _tensor(a), _tensor(v)
    m, n = x.shape[0], w.shape[0]
    if mode == "same" and m < n:  # NumPy centres the window on the longer operand's side
        return convolve(x, flip(w), "full")[m // 2 : m // 2 + n]
    return convolve(x, flip(w), mode)


@_np()
def interp(x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None) -> Tensor:
    """Piecewise-linear interpolation, differentiable in x, xp and fp."""
    t, xs, fs = _promoted([x, xp, fp])
    xd = _backend.to_device(xs.data, _backend.CPU)
    i = _onp.clip(_onp.searchsorted(xd, _backend.to_device(t.data, _backend.CPU), "right") - 1,
                  0, builtins.max(len(xd) - 2, 0))  # fmt: skip
    j = _onp.minimum(i + 1, len(xd) - 1)
    slope = (fs[j] - fs[i]) / where(xs[j] == xs[i], 1, xs[j] - xs[i])
    y = fs[i] + (t - xs[i]) * slope
    y = where(t < xs[0], fs[0] if left is None else left, y)
    return where(t > xs[-1], fs[-1] if right is None else right, y)


@_np()
def einsum(subscripts: str, *operands: Any, optimize: Any = False) -> Tensor:
    return _op("einsum")(subscripts, *_promoted(list(operands)))


@_np()
def cross(a: Any, b: Any, axis: int = -1) -> Tensor:
    x, y = (moveaxis(v, axis, -1) for v in _promoted([a, b]))
    i, j = _onp.array([1, 2, 0]), _onp.array([2, 0, 1])
    return moveaxis(x[..., i] * y[..., j] - x[..., j] * y[..., i], -1, axis)


# -- arrays: creation gives NumPy arrays; Tensors given are kept -------------------------------


@_np("asanyarray", "ascontiguousarray")
def asarray(a: Any, dtype: Any = None, order: Any = None, **kwargs: Any) -> Tensor:
    return _tensor(a, dtype)


@_np()
def array(object: Any, dtype: Any = None, *, copy: bool = True, ndmin: int = 0, **kw: Any):
    x = _tensor(object, dtype)
    x = _gt.copy(x) if copy and x is object else x
    return x.reshape((1,) * (ndmin - x.ndim) + x.shape) if x.ndim < ndmin else x


@_np()
def copy(a: Any, order: str = "K", subok: bool = False) -> Tensor:
    return _gt.copy(_tensor(a))


@_np()
def astype(x: Any, dtype: Any, copy: bool = True, **kw: Any) -> Tensor:
    return _tensor(x).astype(dtype)


def _like(name: str, fill: Any) -> None:
    """zeros_like(t) and friends: a constant Tensor on t's device (NumPy's array for arrays)."""

    def impl(a: Any, *args: Any, dtype: Any = None, shape: Any = None, **kw: Any) -> Tensor:
        x = _tensor(a)
        if fill is None:
            value, *args = args or [kw.pop("fill_value")]
        dt = dtype or (args[0] if args else x.dtype)
        value = fill if fill is not None else value
        return _gt.full(shape or x.shape, value, dtype=dt, device=x.device)

    _export(name, impl)


_like("zeros_like", 0)
_like("ones_like", 1)
_like("empty_like", 0)
_like("full_like", None)


def _creation(name: str) -> None:
    def impl(*args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"gradtensor.numpy.{name}: makes plain NumPy arrays from numbers and shapes; it was "
            "given a Tensor (use float(t), or gt's constructors)"
        )

    _export(name, impl)


for _name in _CREATION:
    _creation(_name)


def shape(a: Any) -> tuple:
    return a.shape if isinstance(a, Tensor) else _onp.shape(a)


def ndim(a: Any) -> int:
    return a.ndim if isinstance(a, Tensor) else _onp.ndim(a)


def size(a: Any, axis: Any = None) -> int:
    if not isinstance(a, Tensor):
        return _onp.size(a, axis)
    return a.numel() if axis is None else a.shape[axis]


__all__ += ["shape", "ndim", "size", "random", "testing", "s_", "index_exp", "linalg"]


# -- linalg: numpy.linalg's functions on gradtensor's gt.linalg --------------------------------

linalg = types.ModuleType(f"{__name__}.linalg", "numpy.linalg's functions, differentiable.")
sys.modules[linalg.__name__] = linalg


def _linalg(name: str, translate: Callable | None = None, gt_name: str = "") -> None:
    def impl(*args: Any, **kwargs: Any) -> Any:
        arrays = [isinstance(a, (Tensor, list, tuple, _onp.ndarray)) for a in args]
        dt = _onp.result_type(*[_dummy(a) for a, m in zip(args, arrays) if m])
        dt = dt if dt.kind in "fc" else _onp.dtype(_onp.float64)  # integers: float64, as NumPy
        args = [_tensor(a, dt) if m else a for a, m in zip(args, arrays)]
        fn = _op(gt_name or name, lib="linalg")
        try:
            return fn(*args, **kwargs) if translate is None else translate(fn, *args, **kwargs)
        except _gt.linalg.LinAlgError as exc:  # NumPy's exception, as on plain arrays
            raise _onp.linalg.LinAlgError(f"gradtensor.numpy.linalg.{name}: {exc}") from exc

    _export(name, impl, _onp.linalg, linalg.__dict__)


_linalg("eigvalsh", lambda fn, a, UPLO="L": fn(a, UPLO)[0], "eigh")
for _name in "inv det slogdet cholesky eigh matrix_power svdvals".split():
    _linalg(_name)
# NumPy takes b as vectors only where it is 1-D (gt.linalg, as PyTorch, also where b has one
# dimension fewer than a): a leading axis makes gt read b as NumPy does.
_linalg("solve", lambda fn, a, b: fn(a, b[None] if 2 <= b.ndim == a.ndim - 1 else b))
_linalg("vector_norm", lambda fn, x, axis=None, keepdims=False, ord=2: fn(x, ord, axis, keepdims))
_linalg("matrix_norm", lambda fn, x, keepdims=False, ord="fro": fn(x, ord, (-2, -1), keepdims))
_linalg(
    "norm",
    lambda fn, x, ord=None, axis=None, keepdims=False: fn(x, ord=ord, dim=axis, keepdim=keepdims),
)
_linalg("qr", lambda fn, a, mode="reduced": fn(a)[1] if mode == "r" else fn(a, mode=mode))
_linalg(
    "svd",
    lambda fn, a, full_matrices=True, compute_uv=True, hermitian=False: (
        fn(a, full_matrices=full_matrices) if compute_uv else _op("svdvals", lib="linalg")(a)
    ),
)
_linalg("pinv", lambda fn, a, rcond=None, hermitian=False, *, rtol=None: fn(
    a, rtol=rtol if rcond is None else rcond, hermitian=hermitian))  # fmt: skip
_const("matrix_rank", _onp.linalg)
linalg.LinAlgError = _onp.linalg.LinAlgError  # type: ignore[attr-defined]


def _cond(x: Any, p: Any = None) -> Tensor:
    if p is None or p in (2, -2):
        s = linalg.svdvals(x)
        return s[..., 0] / s[..., -1] if p != -2 else s[..., -1] / s[..., 0]
    norm = linalg.norm
    return norm(x, p, axis=(-2, -1)) * norm(linalg.inv(x), p, axis=(-2, -1))


_export("cond", _cond, _onp.linalg, linalg.__dict__)
for _name in "matmul outer tensordot cross".split():
    _export(_name, _G[_name], _onp.linalg, linalg.__dict__)
# numpy.linalg's diagonal and trace take the last two axes (the array API's), not the first two.
_export("diagonal", lambda x, offset=0: diagonal(x, offset, -2, -1), _onp.linalg, linalg.__dict__)
_export("trace", lambda x, offset=0, dtype=None: trace(x, offset, -2, -1, dtype), _onp.linalg,
        linalg.__dict__)  # fmt: skip
_export("multi_dot", lambda arrays, **kw: functools.reduce(dot, arrays), _onp.linalg,
        linalg.__dict__)  # fmt: skip


def _missing(space: str, lib: Any) -> Callable:
    def __getattr__(name: str) -> Any:
        if not name.startswith("__") and hasattr(lib, name):
            raise AttributeError(
                f"{space} has no {name!r} yet: numpy.{name} on a Tensor would drop its gradient; "
                f"use numpy.{name} on plain arrays (t.detach().numpy()) or write it with "
                f"{space}'s functions"
            )
        raise AttributeError(f"module {space!r} has no attribute {name!r}")

    return __getattr__


linalg.__getattr__ = _missing("gradtensor.numpy.linalg", _onp.linalg)  # type: ignore[attr-defined]
__getattr__ = _missing("gradtensor.numpy", _onp)
