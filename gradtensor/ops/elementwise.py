"""Elementwise ops: unary maths, broadcasting binary arithmetic, rounding, remainders, comparisons,
where, clip, lerp."""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..errors import public
from ..tensor import Tensor, get_default_dtype, zeros_like
from .registry import Bad, Primitive, Sample, composite, primitive

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


@primitive(save="", samples=UNARY, torch="neg", numpy="negative")
def negative(xp, x):
    return -x


negative.defvjp(lambda g, y, x: -g)


@primitive(save="x", samples=UNARY, torch="abs", numpy="abs")
def abs(xp, x):
    return xp.abs(x)


abs.defvjp(lambda g, y, x: g * sign(x))


@primitive(save="y", samples=UNARY, torch="exp", numpy="exp")
def exp(xp, x):
    return xp.exp(_as_float(x))


exp.defvjp(lambda g, y, x: g * y)


@primitive(save="x", samples=POSITIVE, torch="log", numpy="log")
def log(xp, x):
    return xp.log(_as_float(x))


log.defvjp(lambda g, y, x: g / x)


@primitive(
    save="x",
    samples=POSITIVE + [Sample((4,), domain=(-0.5, 0.5))],
    torch="log1p",
    numpy="log1p",
)
def log1p(xp, x):
    return xp.log1p(_as_float(x))


log1p.defvjp(lambda g, y, x: g / (1 + x))


@primitive(save="y", samples=POSITIVE, torch="sqrt", numpy="sqrt")
def sqrt(xp, x):
    return xp.sqrt(_as_float(x))


sqrt.defvjp(lambda g, y, x: g / (2 * y))


@primitive(save="x", samples=UNARY, torch="sin", numpy="sin")
def sin(xp, x):
    return xp.sin(_as_float(x))


sin.defvjp(lambda g, y, x: g * cos(x))


@primitive(save="x", samples=UNARY, torch="cos", numpy="cos")
def cos(xp, x):
    return xp.cos(_as_float(x))


cos.defvjp(lambda g, y, x: -g * sin(x))


@primitive(save="x", samples=UNARY, torch="erf")
def erf(xp, x):
    """The error function (the exact GELU is built on it)."""
    return backend.erf(_as_float(x))


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
erf.defvjp(lambda g, y, x: g * _TWO_OVER_SQRT_PI * exp(-x * x))


def _zero(g: Any, y: Any, *inputs: Any, **params: Any) -> Any:
    """The derivative of a step function (floor, sign): zero, even where g is inf or nan."""
    return zeros_like(g) if isinstance(g, Tensor) else backend.array_module(g).zeros_like(g)


def _unary(name: str, torch: str, vjp: Any, save: str = "x", samples: Any = UNARY) -> Primitive:
    """A float op of one input, NumPy's function `name` (ints and bools in the default float)."""
    op = primitive(name, save=save, samples=samples, torch=torch, numpy=name)(
        lambda xp, x: getattr(xp, name)(_as_float(x))
    )
    op.__doc__ = f"{name} of each element (PyTorch's {torch})."
    return op.defvjp(vjp)


_LN2, _LN10 = math.log(2), math.log(10)
INSIDE = [Sample((3, 4), domain=(-0.9, 0.9)), Sample((), domain=(-0.9, 0.9))]
tan = _unary(
    "tan", "tan", lambda g, y, x: g * (1 + y * y), "y", [Sample((3, 4), domain=(-1.2, 1.2))]
)
arcsin = _unary("arcsin", "asin", lambda g, y, x: g / sqrt(1 - x * x), samples=INSIDE)
arccos = _unary("arccos", "acos", lambda g, y, x: -g / sqrt(1 - x * x), samples=INSIDE)
arctan = _unary("arctan", "atan", lambda g, y, x: g / (1 + x * x))
sinh = _unary("sinh", "sinh", lambda g, y, x: g * cosh(x))
cosh = _unary("cosh", "cosh", lambda g, y, x: g * sinh(x))
arcsinh = _unary("arcsinh", "asinh", lambda g, y, x: g / sqrt(x * x + 1))
arccosh = _unary(
    "arccosh",
    "acosh",
    lambda g, y, x: g / sqrt(x * x - 1),
    samples=[Sample((3, 4), domain=(1.1, 3))],
)
arctanh = _unary("arctanh", "atanh", lambda g, y, x: g / (1 - x * x), samples=INSIDE)
exp2 = _unary("exp2", "exp2", lambda g, y, x: g * y * _LN2, "y")
expm1 = _unary("expm1", "expm1", lambda g, y, x: g * (y + 1), "y")
log2 = _unary("log2", "log2", lambda g, y, x: g / (x * _LN2), samples=POSITIVE)
log10 = _unary("log10", "log10", lambda g, y, x: g / (x * _LN10), samples=POSITIVE)
reciprocal = _unary("reciprocal", "reciprocal", lambda g, y, x: -g * (y * y), "y", POSITIVE)
asin, acos, atan, asinh, acosh, atanh = arcsin, arccos, arctan, arcsinh, arccosh, arctanh


@primitive(save="y", samples=POSITIVE, torch="rsqrt")
def rsqrt(xp, x):
    """1 / sqrt(x) (inf at 0, as in PyTorch)."""
    return 1 / xp.sqrt(_as_float(x))


rsqrt.defvjp(lambda g, y, x: -0.5 * g * (y * y * y))


@composite(samples=UNARY, torch="square", numpy="square")
def square(x: Tensor) -> Tensor:
    """x * x (integer tensors stay integer, as in PyTorch)."""
    return multiply(x, x)


# -- steps: rounding and sign, whose derivative is zero wherever it exists (as in PyTorch) ------


def _step(name: str, kinds: str = "biu") -> Primitive:
    """NumPy's function `name`, with integer (and bool) tensors kept as they are (a copy), as
    PyTorch's floor keeps them."""
    op = primitive(name, save="", samples=UNARY, torch=name, numpy=name)(
        lambda xp, x: x.copy() if x.dtype.kind in kinds else getattr(xp, name)(x)
    )
    op.__doc__ = f"{name} of each element; its gradient is zero, as in PyTorch."
    return op.defvjp(_zero)


floor, ceil, trunc = _step("floor"), _step("ceil"), _step("trunc")


@primitive(save="", samples=UNARY, torch="sign", numpy="sign")
def sign(xp, x):
    """-1, 0 or 1 by the sign of each element, and 0 for NaN as in PyTorch; zero gradient."""
    if x.dtype.kind in "biu":
        return x.copy() if x.dtype.kind == "b" else xp.sign(x)
    return xp.where(xp.isnan(x), 0, xp.sign(x))


sign.defvjp(_zero)


@primitive(
    save="",
    samples=UNARY + [Sample((5,), decimals=2), Sample((5,), decimals=-1)],
    torch="round",
    numpy="round",
    errors=[Bad((3,), decimals=1.5, error=TypeError, match="decimals must be an int")],
)
def round(xp, x, *, decimals=0):
    """Round half to even, to `decimals` places, as PyTorch's round(x, decimals=0)."""
    if type(decimals) is not int:
        raise TypeError(f"round: decimals must be an int, not {type(decimals).__name__}")
    if x.dtype.kind in "biu" and decimals >= 0:
        return x.copy()
    return xp.round(x, decimals)


round.defvjp(_zero)


# -- binary -----------------------------------------------------------------------------------


def _f64(v: Any) -> bool:
    return getattr(v, "dtype", None) is not None and v.dtype.char == "d"


def _t(torch: Any, v: Any) -> Any:
    """A number as a tensor, for PyTorch twins that take tensors only."""
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=torch.float64)


def _default_float(y: Any, a: Any, b: Any) -> Any:
    """A float64 result of operands none of which is float64 takes PyTorch's dtype (NumPy would
    keep float64): the float operand's (float16 with int64 is float16), else the default float
    (`int_tensor / 2`, `int_tensor * 1.5`). Called for float64 results only: float32 pays
    nothing."""
    if _f64(a) or _f64(b):
        return y
    f = [v.dtype for v in (a, b) if getattr(v, "dtype", None) is not None and v.dtype.kind == "f"]
    return y.astype(f[0] if f else get_default_dtype())


@primitive(
    save="",
    elementwise=True,
    casts_numbers=True,
    samples=BINARY,
    torch=lambda t, a, b: a + b,
    numpy="add",
)
def add(xp, a, b):
    y = a + b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


add.defvjp(lambda g, y, a, b: g, lambda g, y, a, b: g)


@primitive(
    save="",
    elementwise=True,
    casts_numbers=True,
    samples=BINARY,
    torch=lambda t, a, b: a - b,
    numpy="subtract",
)
def subtract(xp, a, b):
    y = a - b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


subtract.defvjp(lambda g, y, a, b: g, lambda g, y, a, b: -g)


@primitive(
    save="x",
    elementwise=True,
    casts_numbers=True,
    samples=BINARY,
    torch=lambda t, a, b: a * b,
    numpy="multiply",
)
def multiply(xp, a, b):
    y = a * b
    return y if y.dtype.char != "d" else _default_float(y, a, b)


multiply.defvjp(lambda g, y, a, b: g * b, lambda g, y, a, b: g * a)


@primitive(
    save="x",
    elementwise=True,
    casts_numbers=True,
    samples=[
        Sample((3, 4), (3, 4), domain=(0.5, 2.0)),
        Sample((2, 3, 4), (4,), domain=(0.5, 2.0)),
        Sample((3, 1), (1, 4), domain=(0.5, 2.0)),
        Sample(2.0, (2, 3), domain=(0.5, 2.0)),
    ],
    torch=lambda t, a, b: a / b,
    numpy="divide",
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
    torch=lambda t, a, b: a**b,
    numpy="power",
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


@primitive(
    save="x",
    elementwise=True,
    samples=BINARY,
    torch=lambda t, a, b: t.maximum(_t(t, a), _t(t, b)),
    numpy="maximum",
)
def maximum(xp, a, b):
    y = xp.maximum(a, b)
    return y if y.dtype.char != "d" else _default_float(y, a, b)


maximum.defvjp(lambda g, y, a, b: _max_side(g, a, b), lambda g, y, a, b: _max_side(g, b, a))


@primitive(
    save="x",
    elementwise=True,
    samples=BINARY,
    torch=lambda t, a, b: t.minimum(_t(t, a), _t(t, b)),
    numpy="minimum",
)
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
    torch="where",
    numpy="where",
)
def where(xp, cond, a, b):
    """Elements of `a` where `cond` holds, else of `b`: `gt.where(x > 0, x, 0)`."""
    if getattr(cond, "dtype", None) != xp.bool_:
        cond = xp.asarray(cond).astype(bool)
    return backend.where(xp, cond, a, b)


where.defvjp(None, lambda g, y, c, a, b: where(c, g, 0), lambda g, y, c, a, b: where(c, 0, g))


@primitive(
    "clip",
    save="x",
    samples=[Sample((3, 4), a_min=-0.5, a_max=0.5), Sample((5,), a_min=0.0)],
    torch=lambda t, x, a_min=None, a_max=None: t.clamp(x, a_min, a_max),
    numpy=lambda np, x, a_min=None, a_max=None: np.clip(x, a_min, a_max),
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


# -- remainders and float maths of two inputs ---------------------------------------------------

BAD_SHAPES = [Bad((2, 3), (4,), match="cannot be broadcast")]
SAMPLES_MOD = [
    Sample((3, 4), (3, 4), domain=(0.5, 3.0)),
    Sample((2, 3), 0.7, domain=(-3.0, 3.0)),
    Sample((3, 1), (1, 4), domain=(0.5, 3.0)),
    Sample(backend.np.array([5.5, -5.5, 5.5, -5.5]), backend.np.array([2.0, 2.0, -2.0, -2.0])),
]


def _keeps_ints(name: str, doc: str) -> Any:
    """NumPy's `name` of two inputs: integer tensors stay integer, floats take PyTorch's dtype."""

    def fwd(xp, a, b):
        y = getattr(xp, name)(a, b)
        return y if y.dtype.char != "d" else _default_float(y, a, b)

    fwd.__doc__ = doc
    return fwd


_MOD = dict(errors=BAD_SHAPES, samples=SAMPLES_MOD, elementwise=True, save="x")
fmod = primitive("fmod", torch="fmod", numpy="fmod", **_MOD)(
    _keeps_ints("fmod", "The remainder of a / b truncated: the dividend's sign (C's fmod).")
)
remainder = primitive("remainder", torch="remainder", numpy="remainder", **_MOD)(
    _keeps_ints("remainder", "The remainder of a / b floored: the divisor's sign (Python's %).")
)
# d(a - b trunc(a/b))/db = -trunc(a/b), with trunc and floor_divide read as PyTorch's div modes.
fmod.defvjp(lambda g, y, a, b: g, lambda g, y, a, b: -g * trunc(divide(a, b)))
remainder.defvjp(lambda g, y, a, b: g, lambda g, y, a, b: -g * floor_divide(a, b))
floor_divide = primitive(
    "floor_divide",
    # PyTorch leaves this derivative unimplemented: its twin is its value with floor's zero.
    torch=lambda t, a, b: t.floor_divide(_detach(a), _detach(b)) + 0 * (a + b),
    numpy="floor_divide",
    **dict(_MOD, save=""),
)(_keeps_ints("floor_divide", "a / b rounded down (Python's //)."))
floor_divide.defvjp(_zero, _zero)


def _detach(v: Any) -> Any:
    return v.detach() if hasattr(v, "detach") else v


def _is_float(v: Any) -> bool:
    return v.dtype.kind == "f" if hasattr(v, "dtype") else type(v) is float


def _float_binary(name: str, torch: str, save: str = "x") -> Any:
    """A float op of two broadcast inputs, NumPy's `name`; two non-float inputs are computed in
    the default float dtype, as in PyTorch."""

    def fwd(xp, a, b):
        if not (_is_float(a) or _is_float(b)):
            a, b = (_as_float(v) if hasattr(v, "dtype") else float(v) for v in (a, b))
        y = getattr(xp, name)(a, b)
        return y if y.dtype.char != "d" else _default_float(y, a, b)

    twin = lambda t, a, b: getattr(t, torch)(_t(t, a), _t(t, b))  # PyTorch's take tensors only
    record = dict(samples=BINARY, torch=twin, numpy=name, errors=BAD_SHAPES)
    return primitive(name, save=save, elementwise=True, **record)(fwd)


def _arctan2_grads(g: Any, y: Any, a: Any, b: Any, needs: tuple) -> tuple:
    # At a = b = 0 the gradient is 0, as PyTorch gives it (its 1 / (a^2 + b^2) is masked there).
    d = a * a + b * b
    r = where(d == 0, 0, g / where(d == 0, 1, d))
    return (r * b if needs[0] else None, -r * a if needs[1] else None)


arctan2 = _float_binary("arctan2", "atan2")
arctan2.defvjp_joint(_arctan2_grads)
atan2 = arctan2
hypot = _float_binary("hypot", "hypot", save="xy")
hypot.defvjp(lambda g, y, a, b: g * a / y, lambda g, y, a, b: g * b / y)
logaddexp = _float_binary("logaddexp", "logaddexp")
# 1 / (1 + e^(b-a)), not e^(a-y): finite where one input is infinite, as in PyTorch.
logaddexp.defvjp(lambda g, y, a, b: g / (1 + exp(b - a)), lambda g, y, a, b: g / (1 + exp(a - b)))
logaddexp2 = _float_binary("logaddexp2", "logaddexp2")
logaddexp2.defvjp(
    lambda g, y, a, b: g / (1 + exp2(b - a)), lambda g, y, a, b: g / (1 + exp2(a - b))
)


def _lerp_check(v: Any) -> None:
    if hasattr(v, "dtype") and v.dtype.kind != "f":
        raise TypeError(f"lerp: input and end must be float tensors, not {v.dtype}")


@primitive(
    save="x",
    elementwise=True,
    samples=[
        Sample((3, 4), (3, 4), 0.3),
        Sample((3, 4), (3, 4), 0.8),
        Sample((3, 4), (3, 4), (3, 4)),
        Sample((2, 3), (3,), (2, 1)),
    ],
    torch="lerp",
    errors=[
        Bad((2, 3), (4,), 0.5, match="cannot be broadcast"),
        Bad(backend.np.array([1, 2]), (2,), 0.5, error=TypeError, match="float tensors"),
    ],
)
def lerp(xp, a, e, w):
    """a + w * (e - a), computed as PyTorch does so that w = 1 gives e exactly."""
    _lerp_check(a)
    _lerp_check(e)
    d = e - a
    if type(w) in (int, float):
        return a + w * d if w < 0.5 else e - d * (1 - w)
    return xp.where(w < 0.5, a + w * d, e - d * (1 - w))


lerp.defvjp(
    lambda g, y, a, e, w: g * (1 - w),
    lambda g, y, a, e, w: g * w,
    lambda g, y, a, e, w: g * (e - a),
)


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
logical_xor = _not_differentiable("logical_xor", lambda xp, a, b: xp.logical_xor(a, b))


_SPECIAL = backend.np.array([float("nan"), float("inf"), -float("inf"), 1.5, -2.0, 0.0])


def _predicate(name: str, fn: Any) -> Any:
    samples = [Sample(_SPECIAL), Sample((3,))]
    return primitive(name, differentiable=False, samples=samples, torch=name, numpy=name)(fn)


isnan = _predicate("isnan", lambda xp, a: xp.isnan(a))
isfinite = _predicate("isfinite", lambda xp, a: xp.isfinite(a))
isinf = _predicate("isinf", lambda xp, a: xp.isinf(a))
isposinf = _predicate("isposinf", lambda xp, a: a == math.inf)
isneginf = _predicate("isneginf", lambda xp, a: a == -math.inf)


@primitive(
    "isclose",
    differentiable=False,
    samples=[
        Sample((3, 4), (3, 4)),
        Sample(_SPECIAL, _SPECIAL + 1e-9, equal_nan=True),
        Sample(_SPECIAL, _SPECIAL * 1.01, atol=0.05),
    ],
    torch="isclose",
    numpy="isclose",
    errors=BAD_SHAPES + [Bad((3,), (3,), atol=-1.0, match="rtol and atol")],
)
def _isclose(xp, a, b, *, rtol, atol, equal_nan):
    if rtol < 0 or atol < 0:
        raise ValueError(f"isclose: rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    return xp.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


@_isclose.api
def isclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Tensor:
    """|a - b| <= atol + rtol * |b|, elementwise (infinities equal themselves)."""
    return _isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def _allclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> bool:
    """Whether every element of a is close to b's (isclose): a Python bool, as in PyTorch."""
    return bool(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan).all())


allclose = public("allclose", _allclose)


@primitive(
    "nan_to_num",
    save="x",
    samples=[  # finite replacements: finite differences cannot sum the largest float
        Sample(_SPECIAL, nan=1.0, posinf=2.0, neginf=-3.0),
        Sample((3, 4), posinf=1.0),
    ],
    torch="nan_to_num",
    numpy="nan_to_num",
    errors=[Bad((3,), nan="zero", error=TypeError, match="numbers")],
)
def _nan_to_num(xp, x, *, nan, posinf, neginf):
    for v in (nan, posinf, neginf):
        if v is not None and type(v) not in (int, float, bool):
            raise TypeError(f"nan_to_num: nan, posinf and neginf must be numbers, not {v!r}")
    return xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


# The gradient passes where x was finite, as in PyTorch (zero also at an infinity kept as it was).
_nan_to_num.defvjp(lambda g, y, x, **params: where(isfinite(x), g, 0))


@_nan_to_num.api
def nan_to_num(x: Any, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Tensor:
    """NaN, +inf and -inf replaced by nan, posinf and neginf (None: the dtype's largest and
    smallest finite values), as in PyTorch."""
    return _nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


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
