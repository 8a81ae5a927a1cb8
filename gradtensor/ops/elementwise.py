"""Elementwise primitives: unary maths, broadcasting binary arithmetic, comparisons, where, clip."""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..tensor import Tensor, get_default_dtype
from .registry import Sample, primitive

UNARY = [Sample((3, 4)), Sample(()), Sample((2, 1, 3))]


def _as_float(x: Any) -> Any:
    """Integer and bool inputs of float maths are computed in the default float dtype, as in
    PyTorch (NumPy would choose float16 for bool and float64 for int64)."""
    return x.astype(get_default_dtype()) if x.dtype.kind in "biu" else x


POSITIVE = [Sample((3, 4), domain=(0.5, 2.0)), Sample((), domain=(0.5, 2.0))]
BINARY = [
    Sample((3, 4), (3, 4)),
    Sample((2, 3, 4), (4,)),
    Sample((3, 1), (1, 4)),
    Sample((), (2, 3)),
    Sample((2, 3), 1.5),
]


# -- unary ------------------------------------------------------------------------------------


@primitive(save="", samples=UNARY)
def negative(xp, x):
    return -x


negative.defvjp(lambda g, y, x: -g)


@primitive(save="x", samples=UNARY)
def abs(xp, x):
    return xp.abs(x)


abs.defvjp(lambda g, y, x: g * sign(x))


@primitive(differentiable=False)
def sign(xp, x):
    """-1, 0 or 1 by the sign of each element (its gradient is zero wherever it exists)."""
    return xp.sign(x)


@primitive(save="y", samples=UNARY)
def exp(xp, x):
    return xp.exp(_as_float(x))


exp.defvjp(lambda g, y, x: g * y)


@primitive(save="x", samples=POSITIVE)
def log(xp, x):
    return xp.log(_as_float(x))


log.defvjp(lambda g, y, x: g / x)


@primitive(save="x", samples=POSITIVE + [Sample((4,), domain=(-0.5, 0.5))])
def log1p(xp, x):
    return xp.log1p(_as_float(x))


log1p.defvjp(lambda g, y, x: g / (1 + x))


@primitive(save="y", samples=POSITIVE)
def sqrt(xp, x):
    return xp.sqrt(_as_float(x))


sqrt.defvjp(lambda g, y, x: g / (2 * y))


@primitive(save="x", samples=UNARY)
def sin(xp, x):
    return xp.sin(_as_float(x))


sin.defvjp(lambda g, y, x: g * cos(x))


@primitive(save="x", samples=UNARY)
def cos(xp, x):
    return xp.cos(_as_float(x))


cos.defvjp(lambda g, y, x: -g * sin(x))


@primitive(save="x", samples=UNARY)
def erf(xp, x):
    """The error function (the exact GELU is built on it)."""
    return backend.erf(_as_float(x))


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
erf.defvjp(lambda g, y, x: g * _TWO_OVER_SQRT_PI * exp(-x * x))


# -- binary -----------------------------------------------------------------------------------


def _f64(v: Any) -> bool:
    return getattr(v, "dtype", None) is not None and v.dtype.char == "d"


def _default_float(y: Any, a: Any, b: Any) -> Any:
    """A float64 result of integer or bool tensors and Python numbers takes the default float
    dtype, as in PyTorch (NumPy would keep float64): `int_tensor / 2`, `int_tensor * 1.5`. The
    ops call it for float64 results only, so that float32 pays nothing."""
    return y if _f64(a) or _f64(b) else y.astype(get_default_dtype())


@primitive(save="", elementwise=True, samples=BINARY)
def add(xp, a, b):
    y = a + b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


add.defvjp(lambda g, y, a, b: g, lambda g, y, a, b: g)


@primitive(save="", elementwise=True, samples=BINARY)
def subtract(xp, a, b):
    y = a - b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


subtract.defvjp(lambda g, y, a, b: g, lambda g, y, a, b: -g)


@primitive(save="x", elementwise=True, samples=BINARY)
def multiply(xp, a, b):
    y = a * b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


multiply.defvjp(lambda g, y, a, b: g * b, lambda g, y, a, b: g * a)


@primitive(
    save="x",
    elementwise=True,
    samples=[
        Sample((3, 4), (3, 4), domain=(0.5, 2.0)),
        Sample((2, 3, 4), (4,), domain=(0.5, 2.0)),
        Sample((3, 1), (1, 4), domain=(0.5, 2.0)),
        Sample(2.0, (2, 3), domain=(0.5, 2.0)),
    ],
)
def divide(xp, a, b):
    y = a / b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


# (a / b) / b, not a / (b * b): b * b underflows to 0 for tiny b where the quotient is finite.
divide.defvjp(lambda g, y, a, b: g / b, lambda g, y, a, b: -g * (a / b) / b)


def _power_grad_exponent(g: Tensor, y: Tensor, a: Any, b: Any) -> Tensor:
    # d(a^b)/db = a^b log a, defined for a > 0; elsewhere (where it is undefined or the limit is 0)
    # it is taken as 0, and log is never evaluated on a non-positive number.
    pos = a > 0
    if type(a) in (int, float):  # a number base has a number for its log, on no device
        return where(pos, g * y * math.log(a if pos else 1), 0)
    return where(pos, g * y * log(where(pos, a, 1)), 0)


@primitive(
    save="xy",
    elementwise=True,
    samples=[
        Sample((3, 4), (3, 4), domain=(0.5, 2.0)),
        Sample((2, 3), 3, domain=(0.5, 2.0)),
        Sample((2, 3), 2.5, domain=(0.5, 2.0)),
        Sample(2.0, (3,), domain=(0.5, 2.0)),
        Sample((3, 1), (1, 4), domain=(0.5, 2.0)),
    ],
)
def power(xp, a, b):
    y = a**b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


def _power_grad_base(g: Any, y: Any, a: Any, b: Any) -> Any:
    if type(b) in (int, float) and b != 0:
        return g * b * a ** (b - 1)
    # b * a^(b-1) is 0 * inf at a = 0, b = 0; the derivative of a^0 is 0 everywhere.
    return where(b == 0, 0, g * b * a ** (b - 1))


power.defvjp(_power_grad_base, _power_grad_exponent)


def _max_side(g: Tensor, a: Any, b: Any) -> Tensor:
    # The larger input takes the gradient; a tie splits it evenly, as for a max over two.
    return where(a > b, g, 0) + where(a == b, g * 0.5, 0)


@primitive(save="x", elementwise=True, samples=BINARY)
def maximum(xp, a, b):
    y = xp.maximum(a, b)
    return y if y.dtype.char != "d" else _default_float(y, a, b)


maximum.defvjp(lambda g, y, a, b: _max_side(g, a, b), lambda g, y, a, b: _max_side(g, b, a))


@primitive(save="x", elementwise=True, samples=BINARY)
def minimum(xp, a, b):
    y = xp.minimum(a, b)
    return y if y.dtype.char != "d" else _default_float(y, a, b)


minimum.defvjp(lambda g, y, a, b: _max_side(g, b, a), lambda g, y, a, b: _max_side(g, a, b))


@primitive(
    save="x",
    elementwise=True,
    samples=[
        Sample(backend.np.array([True, False, True]), (3,), (3,)),
        Sample(backend.np.array([[True], [False]]), (2, 3), (3,)),
    ],
)
def where(xp, cond, a, b):
    """Elements of `a` where `cond` holds, else of `b`: `gt.where(x > 0, x, 0)`."""
    if getattr(cond, "dtype", None) != xp.bool_:
        cond = xp.asarray(cond).astype(bool)
    return xp.where(cond, a, b)


where.defvjp(None, lambda g, y, c, a, b: where(c, g, 0), lambda g, y, c, a, b: where(c, 0, g))


@primitive(
    "clip", save="x", samples=[Sample((3, 4), a_min=-0.5, a_max=0.5), Sample((5,), a_min=0.0)]
)
def _clip(xp, x, *, a_min, a_max):
    return xp.clip(x, a_min, a_max)


def _clip_grad(g: Tensor, y: Tensor, x: Tensor, *, a_min: Any, a_max: Any) -> Tensor:
    inside = None
    if a_min is not None:
        inside = x >= a_min
    if a_max is not None:
        inside = (x <= a_max) if inside is None else inside & (x <= a_max)
    return where(inside, g, 0)


_clip.defvjp(_clip_grad)


@_clip.api
def clamp(
    x: Tensor, min: Any = None, max: Any = None, *, a_min: Any = None, a_max: Any = None
) -> Tensor:
    """Limit values to [min, max] (either may be None), as PyTorch's clamp: `x.clamp(min=0)`;
    NumPy's a_min/a_max are accepted too."""
    if a_min is not None or a_max is not None:
        if min is not None or max is not None:
            raise TypeError("clamp: give min/max or NumPy's a_min/a_max, not both")
        min, max = a_min, a_max
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        # Tensor bounds get gradients too. Selects, not maximum/minimum: as in PyTorch, x keeps
        # its whole gradient where it equals a bound, and max wins where min > max.
        y = x if min is None else where(x < min, min, x)
        return y if max is None else where(y > max, max, y)
    return _clip(x, a_min=min, a_max=max)


clip = clamp


# -- comparisons and logic: results are bool and carry no gradient ----------------------------


def _not_differentiable(name: str, fn: Any) -> Any:
    return primitive(name, differentiable=False)(fn)


equal = _not_differentiable("equal", lambda xp, a, b: a == b)
not_equal = _not_differentiable("not_equal", lambda xp, a, b: a != b)
less = _not_differentiable("less", lambda xp, a, b: a < b)
less_equal = _not_differentiable("less_equal", lambda xp, a, b: a <= b)
greater = _not_differentiable("greater", lambda xp, a, b: a > b)
greater_equal = _not_differentiable("greater_equal", lambda xp, a, b: a >= b)
logical_and = _not_differentiable("logical_and", lambda xp, a, b: xp.logical_and(a, b))
logical_or = _not_differentiable("logical_or", lambda xp, a, b: xp.logical_or(a, b))
logical_not = _not_differentiable("logical_not", lambda xp, a: xp.logical_not(a))
isnan = _not_differentiable("isnan", lambda xp, a: xp.isnan(a))
isfinite = _not_differentiable("isfinite", lambda xp, a: xp.isfinite(a))


# -- bitwise: integer and bool tensors (bools: and/or/xor/not are the logical ones) ----------


_SCALAR_KIND = {bool: "b", int: "i", float: "f"}


def _bitwise(name: str, fn: Any, kinds: str = "biu") -> Any:
    def fwd(xp, *operands):
        for a in operands:
            kind = a.dtype.kind if hasattr(a, "dtype") else _SCALAR_KIND.get(type(a), "O")
            if kind not in kinds:
                what = a.dtype if hasattr(a, "dtype") else type(a).__name__
                allowed = "integer and bool" if "b" in kinds else "integer"
                raise TypeError(f"{name}: only {allowed} operands are allowed, not {what}")
        return fn(xp, *operands)

    return primitive(name, differentiable=False)(fwd)


bitwise_and = _bitwise("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b))
bitwise_or = _bitwise("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b))
bitwise_xor = _bitwise("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b))
bitwise_not = _bitwise("bitwise_not", lambda xp, a: xp.invert(a))
bitwise_left_shift = _bitwise("bitwise_left_shift", lambda xp, a, b: xp.left_shift(a, b), "iu")
bitwise_right_shift = _bitwise("bitwise_right_shift", lambda xp, a, b: xp.right_shift(a, b), "iu")
