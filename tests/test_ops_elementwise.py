"""The elementwise family against PyTorch: its idioms (methods, operators, keywords), integer
and float dtypes, edge points (poles, kinks, infinities), and remainders as a property."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradtensor as gt

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")

RNG = np.random.default_rng(7)
NORMAL = RNG.standard_normal((3, 4))
OTHER = RNG.standard_normal((3, 4))
INSIDE = RNG.uniform(-0.9, 0.9, (3, 4))
POSITIVE = RNG.uniform(0.5, 3.0, (3, 4))
ABOVE_ONE = RNG.uniform(1.1, 3.0, (3, 4))
WEIGHT = RNG.uniform(0.0, 1.0, (3, 4))
SPECIAL = np.array([np.nan, np.inf, -np.inf, 1.5, -2.0, 0.0, -0.0])


def _pair(arrays, dtype=None):
    """The arrays as gradtensor and PyTorch tensors (float ones requiring grad)."""
    ours, theirs = [], []
    for a in arrays:
        a = np.asarray(a if dtype is None or a.dtype.kind != "f" else a.astype(dtype))
        grad = a.dtype.kind == "f"
        ours.append(gt.tensor(a, dtype=a.dtype, requires_grad=grad))
        theirs.append(torch.tensor(a, requires_grad=grad))
    return ours, theirs


def _values(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def _check(fn, arrays, grads=True, dtype=None, tfn=None):
    """fn(module, *tensors) on gradtensor and on PyTorch: the same values, dtype, NaN and inf
    positions, and gradients for a random upstream gradient."""
    ours, theirs = _pair(arrays, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN and inf at edge points
        y = fn(gt, *ours)
        ty = (tfn or fn)(torch, *theirs)
    assert str(y.dtype) == str(ty.dtype).removeprefix("torch."), (y.dtype, ty.dtype)
    assert y.shape == tuple(ty.shape)
    tol = 1e-12 if y.dtype != gt.float32 else 1e-6  # float32 maths may round differently
    np.testing.assert_allclose(_values(y), _values(ty), rtol=tol, atol=tol * 1e-2, equal_nan=True)
    if not grads:
        return
    g = np.random.default_rng(0).standard_normal(y.shape).astype(_values(y).dtype)
    live = [i for i, t in enumerate(theirs) if t.requires_grad]
    got = gt.grad(y, [ours[i] for i in live], gt.tensor(g, dtype=y.dtype), allow_unused=True)
    want = torch.autograd.grad(ty, [theirs[i] for i in live], torch.tensor(g), allow_unused=True)
    for i, a, b in zip(live, got, want):
        a = np.zeros(ours[i].shape) if a is None else a.numpy()
        b = np.zeros(ours[i].shape) if b is None else b.numpy()
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, equal_nan=True, err_msg=f"{i}")


# (id, fn(module, *tensors), inputs): methods, operators and keywords as PyTorch writes them.
IDIOMS = [
    ("tan", lambda m, x: x.tan(), [INSIDE]),
    ("asin", lambda m, x: x.asin(), [INSIDE]),
    ("arcsin", lambda m, x: m.arcsin(x), [INSIDE]),
    ("acos", lambda m, x: x.acos(), [INSIDE]),
    ("arccos", lambda m, x: x.arccos(), [INSIDE]),
    ("atan", lambda m, x: m.atan(x), [NORMAL]),
    ("atan2", lambda m, x, y: x.atan2(y), [NORMAL, OTHER]),
    ("arctan2", lambda m, x, y: m.arctan2(x, y), [NORMAL, OTHER[0]]),
    ("sinh", lambda m, x: x.sinh(), [NORMAL]),
    ("cosh", lambda m, x: m.cosh(x), [NORMAL]),
    ("asinh", lambda m, x: x.asinh(), [NORMAL]),
    ("acosh", lambda m, x: x.acosh(), [ABOVE_ONE]),
    ("atanh", lambda m, x: m.atanh(x), [INSIDE]),
    ("exp2", lambda m, x: m.exp2(x), [NORMAL]),
    ("expm1", lambda m, x: x.expm1(), [NORMAL]),
    ("log2", lambda m, x: x.log2(), [POSITIVE]),
    ("log10", lambda m, x: m.log10(x), [POSITIVE]),
    ("reciprocal", lambda m, x: x.reciprocal(), [NORMAL]),
    ("rsqrt", lambda m, x: x.rsqrt(), [POSITIVE]),
    ("square", lambda m, x: x.square(), [NORMAL]),
    ("sign", lambda m, x: x.sign(), [NORMAL]),
    ("floor", lambda m, x: x.floor(), [NORMAL * 3]),
    ("ceil", lambda m, x: m.ceil(x), [NORMAL * 3]),
    ("round", lambda m, x: x.round(), [np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999])]),
    ("round_decimals", lambda m, x: m.round(x, decimals=2), [NORMAL * 10]),
    ("round_negative", lambda m, x: x.round(decimals=-1), [NORMAL * 100]),
    ("trunc", lambda m, x: x.trunc(), [NORMAL * 3]),
    ("fmod", lambda m, x: m.fmod(x, 1.5), [NORMAL * 3]),
    ("fmod_tensor", lambda m, x, y: x.fmod(y), [NORMAL * 3, OTHER]),
    ("remainder", lambda m, x: x.remainder(2), [NORMAL * 3]),
    ("mod", lambda m, x: x % 2, [NORMAL * 3]),
    ("mod_negative", lambda m, x: x % -1.5, [NORMAL * 3]),
    ("mod_tensor", lambda m, x, y: x % y, [NORMAL * 3, OTHER]),
    ("logaddexp", lambda m, x, y: m.logaddexp(x, y), [NORMAL, OTHER]),
    ("logaddexp_method", lambda m, x, y: x.logaddexp(y), [NORMAL * 50, OTHER * 50]),
    ("logaddexp2", lambda m, x, y: x.logaddexp2(y), [NORMAL, OTHER]),
    ("hypot", lambda m, x, y: x.hypot(y), [NORMAL, OTHER]),
    ("nan_to_num", lambda m, x: x.nan_to_num(), [SPECIAL]),
    ("nan_to_num_values", lambda m, x: m.nan_to_num(x, 1.0, 2.0, -3.0), [SPECIAL]),
    ("nan_to_num_keep_inf", lambda m, x: x.nan_to_num(posinf=math.inf), [SPECIAL]),
    ("lerp", lambda m, x, y: x.lerp(y, 0.3), [NORMAL, OTHER]),
    ("lerp_high", lambda m, x, y: m.lerp(x, y, 0.9), [NORMAL, OTHER]),
    ("lerp_tensor", lambda m, x, y, w: x.lerp(y, w), [NORMAL, OTHER, WEIGHT]),
    ("lerp_broadcast", lambda m, x, y, w: m.lerp(x, y, w), [NORMAL, OTHER[0], WEIGHT[:, :1]]),
]
NO_GRADS = [  # values and dtypes only
    ("rmod", lambda m, x: 2.5 % x, [NORMAL]),  # PyTorch has no derivative for a number % tensor
    ("isinf", lambda m, x: x.isinf(), [SPECIAL]),
    ("isposinf", lambda m, x: m.isposinf(x), [SPECIAL]),
    ("isneginf", lambda m, x: x.isneginf(), [SPECIAL]),
    ("isnan", lambda m, x: x.isnan(), [SPECIAL]),
    ("isfinite", lambda m, x: m.isfinite(x), [SPECIAL]),
    ("isclose", lambda m, x, y: x.isclose(y), [SPECIAL, SPECIAL + 1e-9]),
    ("isclose_nan", lambda m, x, y: m.isclose(x, y, equal_nan=True), [SPECIAL, SPECIAL + 1e-9]),
    ("isclose_tol", lambda m, x, y: x.isclose(y, rtol=0.02, atol=0.0), [SPECIAL, SPECIAL * 1.01]),
]


@pytest.mark.parametrize("fn,arrays", [pytest.param(f, a, id=n) for n, f, a in IDIOMS])
def test_idioms_match_pytorch_in_float64(fn, arrays):
    _check(fn, arrays)


@pytest.mark.parametrize("fn,arrays", [pytest.param(f, a, id=n) for n, f, a in IDIOMS])
def test_idioms_keep_float32_as_pytorch_does(fn, arrays):
    ours, theirs = _pair(arrays, np.float32)
    assert str(fn(gt, *ours).dtype) == str(fn(torch, *theirs).dtype).removeprefix("torch.")


@pytest.mark.parametrize("fn,arrays", [pytest.param(f, a, id=n) for n, f, a in NO_GRADS])
def test_tests_match_pytorch(fn, arrays):
    _check(fn, arrays, grads=False)


def test_floor_divide_matches_pytorch_and_has_a_zero_gradient():
    # PyTorch has no derivative for floor_divide; its value is held to PyTorch, its gradient is
    # floor's (zero), as in JAX.
    x = gt.tensor(NORMAL * 3, requires_grad=True, dtype=gt.float64)
    t = torch.tensor(NORMAL * 3)
    np.testing.assert_array_equal((x // 2).detach().numpy(), (t // 2).numpy())
    np.testing.assert_array_equal((x // -0.7).detach().numpy(), (t // -0.7).numpy())
    (g,) = gt.grad((x // 2).sum() + gt.floor_divide(3.0, x).sum(), [x])
    np.testing.assert_array_equal(g.numpy(), np.zeros((3, 4)))
    np.testing.assert_array_equal((7.5 // x).detach().numpy(), (7.5 // t).numpy())


INTS = np.array([-7, -6, -1, 0, 1, 5, 7, 12])
DIVISORS = np.array([3, -3, 2, 5, -4, 3, -2, 5])


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, a, b: a % b,
        lambda m, a, b: a // b,
        lambda m, a, b: a % 3,
        lambda m, a, b: a % -3,
        lambda m, a, b: a // 3,
        lambda m, a, b: a // -3,
        lambda m, a, b: 17 // b,
        lambda m, a, b: 17 % b,
        lambda m, a, b: m.fmod(a, b),
        lambda m, a, b: m.fmod(a, -3),
        lambda m, a, b: m.remainder(a, b),
        lambda m, a, b: a.remainder(3),
        lambda m, a, b: a.fmod(2.5),
        lambda m, a, b: a % 2.5,
        lambda m, a, b: a // 2.5,
        lambda m, a, b: a.floor_divide(b),
        lambda m, a, b: a.float() % b,
        lambda m, a, b: a.double() // b,
    ],
)
def test_integer_remainders_stay_integer_and_floor_as_in_pytorch(fn):
    _check(fn, [INTS, DIVISORS], grads=False)


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, x: x.floor(),
        lambda m, x: x.ceil(),
        lambda m, x: x.trunc(),
        lambda m, x: x.round(),
        lambda m, x: x.sign(),
        lambda m, x: x.square(),
        lambda m, x: x.abs(),
        lambda m, x: x.tan(),
        lambda m, x: x.atan(),
        lambda m, x: x.exp2(),
        lambda m, x: x.reciprocal(),
        lambda m, x: x.rsqrt(),
        lambda m, x: x.sinh(),
        lambda m, x: x.log2(),
        lambda m, x: m.atan2(x, x),
        lambda m, x: m.nan_to_num(x),
        lambda m, x: m.isinf(x),
        lambda m, x: m.isclose(x, x),
    ],
)
def test_integer_inputs_give_pytorchs_dtypes(fn):
    _check(fn, [np.array([1, 2, 3, 4])], grads=False)


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, h, i: m.atan2(h, i),
        lambda m, h, i: m.hypot(h, i),
        lambda m, h, i: m.logaddexp(h, i),
        lambda m, h, i: m.fmod(h, i),
        lambda m, h, i: h % i,
        lambda m, h, i: h // i,
        lambda m, h, i: h + i,
        lambda m, h, i: h * i,
        lambda m, h, i: h / i,
    ],
)
def test_float16_with_int64_stays_float16_as_in_pytorch(fn):
    ours, theirs = _pair([np.array([1.5, -2.0], np.float16), np.array([2, 3])])
    y, t = fn(gt, *ours), fn(torch, *theirs)
    assert str(y.dtype) == str(t.dtype).removeprefix("torch.") == "float16"
    np.testing.assert_allclose(_values(y), _values(t), rtol=1e-3)


# -- edge points: poles, kinks and infinities, with the inf and NaN positions PyTorch gives -----

EDGES = [
    ("hypot_at_zero", lambda m, x, y: m.hypot(x, y), [np.zeros(2), np.array([0.0, 1.0])]),
    (
        "atan2_at_zero",
        lambda m, x, y: m.atan2(x, y),
        [np.array([0.0, 0, 1]), np.array([0.0, 2, 0])],
    ),
    ("rsqrt_at_zero", lambda m, x: x.rsqrt(), [np.array([0.0, -0.0, 4.0, np.inf])]),
    ("reciprocal_at_zero", lambda m, x: x.reciprocal(), [np.array([0.0, -0.0, np.inf])]),
    ("acos_at_one", lambda m, x: x.acos(), [np.array([1.0, -1.0, 0.0])]),
    ("asin_at_one", lambda m, x: x.asin(), [np.array([1.0, -1.0, 0.0])]),
    ("asin_outside", lambda m, x: x.asin(), [np.array([1.5, -2.0])]),
    ("acosh_at_one", lambda m, x: x.acosh(), [np.array([1.0, 2.0])]),
    ("atanh_at_one", lambda m, x: x.atanh(), [np.array([1.0, -1.0, 0.5])]),
    ("log2_at_zero", lambda m, x: x.log2(), [np.array([0.0, 1.0, np.inf])]),
    ("log10_at_zero", lambda m, x: x.log10(), [np.array([0.0, 1.0, np.inf])]),
    ("tan_at_inf", lambda m, x: x.tan(), [np.array([np.inf, 0.0])]),
    ("exp2_at_infinities", lambda m, x: x.exp2(), [np.array([np.inf, -np.inf, 2000.0])]),
    ("expm1_at_infinities", lambda m, x: x.expm1(), [np.array([np.inf, -np.inf])]),
    (
        "logaddexp_infinities",
        lambda m, x, y: m.logaddexp(x, y),
        [
            np.array([-np.inf, np.inf, np.inf, 1.0, -np.inf, 800.0]),
            np.array([-np.inf, np.inf, 1.0, np.inf, 1.0, -800.0]),
        ],
    ),  # fmt: skip
    (
        "logaddexp2_infinities",
        lambda m, x, y: m.logaddexp2(x, y),
        [np.array([-np.inf, np.inf, np.inf, 1.0]), np.array([-np.inf, np.inf, 1.0, -np.inf])],
    ),
    (
        "fmod_by_zero_and_inf",
        lambda m, x, y: m.fmod(x, y),
        [np.array([3.0, -3.0, 3.0, np.inf, 0.0]), np.array([0.0, 2.0, np.inf, 2.0, 0.0])],
    ),
    (
        "remainder_by_zero_and_inf",
        lambda m, x, y: m.remainder(x, y),
        [np.array([3.0, -3.0, 3.0, -3.0, np.inf]), np.array([0.0, 2.0, np.inf, np.inf, 2.0])],
    ),
    ("floor_of_infinities", lambda m, x: x.floor(), [SPECIAL]),
    ("round_of_infinities", lambda m, x: x.round(), [SPECIAL]),
    ("sign_of_zeros", lambda m, x: x.sign(), [np.array([0.0, -0.0, 3.0, -np.inf])]),
    ("square_of_inf", lambda m, x: x.square(), [np.array([np.inf, -np.inf, 0.0])]),
    (
        "lerp_ends",
        lambda m, x, y, w: m.lerp(x, y, w),
        [np.array([1e16, 0.1, 3.0]), np.array([1.0, 0.7, -np.inf]), np.array([1.0, 1.0, 0.0])],
    ),  # fmt: skip
    ("nan_to_num_float_max", lambda m, x: m.nan_to_num(x, neginf=0.0), [SPECIAL]),
]


@pytest.mark.parametrize("fn,arrays", [pytest.param(f, a, id=n) for n, f, a in EDGES])
def test_edge_points_match_pytorch(fn, arrays):
    _check(fn, arrays)


def test_lerp_at_weight_one_is_end_exactly():
    a, e = gt.tensor([1e16, 0.1]), gt.tensor([1.0, 0.7])
    assert gt.lerp(a, e, 1.0).tolist() == e.tolist()
    assert gt.lerp(a, e, gt.ones(2)).tolist() == e.tolist()


def test_second_derivatives_match_pytorch():
    def both(fn, *arrays):
        ours, theirs = _pair(arrays)
        (g,) = gt.grad(fn(gt, *ours).sum(), [ours[0]], create_graph=True)
        (gg,) = gt.grad(g.sum(), [ours[0]], allow_unused=True)
        (tg,) = torch.autograd.grad(fn(torch, *theirs).sum(), [theirs[0]], create_graph=True)
        (tgg,) = torch.autograd.grad(tg.sum(), [theirs[0]], allow_unused=True)
        gg = np.zeros(g.shape) if gg is None else gg.numpy()
        tgg = np.zeros(g.shape) if tgg is None else tgg.numpy()
        np.testing.assert_allclose(gg, tgg, rtol=1e-10, atol=1e-12)

    both(lambda m, x: x.tan(), INSIDE)
    both(lambda m, x: x.rsqrt(), POSITIVE)
    both(lambda m, x: x.acosh(), ABOVE_ONE)
    both(lambda m, x, y: m.atan2(x, y), NORMAL, OTHER)
    both(lambda m, x, y: m.atan2(y, x), NORMAL, OTHER)
    both(lambda m, x, y: m.hypot(x, y), NORMAL, OTHER)
    both(lambda m, x, y: m.logaddexp(x, y), NORMAL, OTHER)
    both(lambda m, y, x: m.fmod(x, y), OTHER, NORMAL * 3)
    both(lambda m, y, x: m.remainder(x, y), OTHER, NORMAL * 3)
    both(lambda m, w, x, y: m.lerp(x, y, w) * w, WEIGHT, NORMAL, OTHER)
    both(lambda m, x, y, w: m.lerp(x, y, w) * x, NORMAL, OTHER, WEIGHT)
    both(lambda m, x: x.floor() * x, NORMAL * 3)
    both(lambda m, x: x.abs() * x.sign(), NORMAL)


def test_in_place_mod_and_floor_divide():
    x = gt.tensor([5.5, -5.5, 7.0], dtype=gt.float64, requires_grad=True)
    y = x * 1
    y %= 2
    y.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), [1.5, 0.5, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])
    i = gt.tensor([7, -7, 8])
    i //= 2
    assert i.dtype == gt.int64 and i.tolist() == [3, -4, 4]
    i %= 3
    assert i.tolist() == [0, 2, 1]
    with pytest.raises(TypeError, match="//="):
        j = gt.tensor([7, 8])
        j //= 2.5  # a float result cannot be stored in an integer tensor, as in PyTorch


def test_step_functions_have_a_zero_gradient_even_for_a_nan_upstream():
    x = gt.tensor([1.5, -0.5], dtype=gt.float64, requires_grad=True)
    for fn in (gt.floor, gt.ceil, gt.round, gt.trunc, gt.sign):
        (g,) = gt.grad(fn(x), [x], gt.tensor([np.nan, np.inf], dtype=gt.float64))
        np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])


def test_integer_steps_keep_their_values_and_do_not_alias():
    i = gt.tensor([-3, 0, 4])
    for fn in (gt.floor, gt.ceil, gt.trunc, gt.round, gt.sign):
        y = fn(i)
        assert y.dtype == gt.int64
        y[0] = 100
    assert i.tolist() == [-3, 0, 4]
    assert gt.sign(i).tolist() == [-1, 0, 1]
    assert gt.sign(gt.tensor([True, False])).dtype == gt.bool_


def test_sign_of_nan_is_zero_as_in_pytorch():
    x = [np.nan, -0.0, 2.0, -np.inf]
    assert gt.sign(gt.tensor(x)).tolist() == torch.sign(torch.tensor(x)).tolist() == [0, 0, 1, -1]


def test_allclose_returns_a_python_bool_with_pytorchs_defaults():
    a = gt.tensor([1.0, 2.0, np.nan])
    b = a + 1e-9
    assert gt.allclose(a[:2], b[:2]) is True and a[:2].allclose(b[:2]) is True
    assert gt.allclose(a, b) is False and gt.allclose(a, b, equal_nan=True) is True
    assert gt.allclose(a[:2], a[:2] * 1.01) is False
    assert gt.allclose(a[:2], a[:2] * 1.01, rtol=0.02) is True
    assert gt.allclose(a[:2], a[:2] + 0.5, atol=1.0) is True
    ta, tb = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]) * (1 + 1e-5)
    assert gt.allclose(ta.numpy(), tb.numpy()) is torch.allclose(ta, tb)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: gt.fmod(gt.ones((2, 3)), gt.ones(4)), "fmod: shapes"),
        (lambda: gt.ones((2, 3)) % gt.ones(4), "remainder: shapes"),
        (lambda: gt.atan2(gt.ones((2, 3)), gt.ones(4)), "arctan2: shapes"),
        (lambda: gt.lerp(gt.tensor([1, 2]), gt.ones(2), 0.5), "lerp: input and end"),
        (lambda: gt.round(gt.ones(2), decimals=0.5), "round: decimals"),
        (lambda: gt.nan_to_num(gt.ones(2), posinf="big"), "nan_to_num: nan, posinf"),
        (lambda: gt.isclose(gt.ones(2), gt.ones(2), rtol=-1.0), "isclose: rtol"),
        (lambda: gt.allclose(gt.ones(2), gt.ones(3)), "(allclose|isclose): shapes"),
    ],
)
def test_bad_inputs_name_the_op(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


# -- remainders as a property: any signs, zeros, integers and floats, as PyTorch computes them --

_FLOATS = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
_INTS = st.integers(-1000, 1000)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.tuples(st.lists(_FLOATS, min_size=1, max_size=6), st.just("float")),
        st.tuples(st.lists(_INTS, min_size=1, max_size=6), st.just("int")),
    ),
    st.one_of(_FLOATS, _INTS.filter(lambda v: v != 0), st.sampled_from([0.0, -0.0, 0.5, -1.5])),
    st.sampled_from(["fmod", "remainder", "floor_divide"]),
)
def test_remainders_match_pytorch(data, divisor, name):
    values, kind = data
    a = np.array(values, dtype=np.float64 if kind == "float" else np.int64)
    if kind == "int" and type(divisor) is float:
        divisor = float(np.float32(divisor))  # int tensor with a Python float: a float32 result
    fn = lambda m, x: getattr(m, name)(x, divisor)  # noqa: E731
    ours, theirs = _pair([a])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = fn(gt, *ours)
    t = fn(torch, *theirs)
    assert str(y.dtype) == str(t.dtype).removeprefix("torch.")
    np.testing.assert_allclose(_values(y), _values(t), rtol=1e-6 if kind == "int" else 1e-12,
                               atol=1e-6 if kind == "int" else 0, equal_nan=True)  # fmt: skip
    if kind == "float" and name != "floor_divide":
        (g,) = gt.grad(y.sum(), ours)
        np.testing.assert_array_equal(g.numpy(), np.ones(a.shape))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(_FLOATS, _FLOATS.filter(lambda v: v != 0)), min_size=1, max_size=6),
    st.sampled_from(["fmod", "remainder"]),
)
def test_remainder_gradients_match_pytorch(pairs, name):
    a, b = np.array(pairs).T
    _check(lambda m, x, y: getattr(m, name)(x, y), [a, b])


_NUMBERS = [1.01, 0.1, 1 / 3, -2.5, 1e-8, 3e38, 1e300, -0.0, 0.0, math.inf, -math.inf, math.nan,
            65504.0, 7e4, 2, -7, 2048, 4097, 2**40]  # fmt: skip


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide"])
def test_arithmetic_with_a_python_number_is_numpys_bit_for_bit(name, dtype):
    # The four ops hand NumPy a Python number beside a float array as the 0-d array its weak
    # promotion would cast it to (backend.number_as): values and dtypes must not change.
    ufunc = getattr(np, name)
    a = (np.random.default_rng(3).standard_normal(64) * 100).astype(dtype)
    a[:4] = [0.0, -0.0, np.inf, np.nan]
    x = gt.tensor(a, dtype=dtype, requires_grad=True)
    for v in _NUMBERS:
        with np.errstate(all="ignore"):
            for got, want in [(getattr(gt, name)(x, v), ufunc(a, v)),
                              (getattr(gt, name)(v, x), ufunc(v, a))]:  # fmt: skip
                assert got.dtype == want.dtype, (v, got.dtype, want.dtype)
                np.testing.assert_array_equal(got.data, want, strict=True, err_msg=repr(v))
                assert np.array_equal(np.signbit(got.data), np.signbit(want))
            y = getattr(gt, name)(x, v)
            y.backward(gt.ones_like(y))
            ones = np.ones_like(a)
            grad = {"add": ones, "subtract": ones, "multiply": ones * v, "divide": ones / v}[name]
            np.testing.assert_array_equal(x.grad.data, grad, strict=True, err_msg=repr(v))
            x.grad = None


def test_numbers_as_arrays_are_kept_read_only_and_few():
    from gradtensor import backend

    a = backend.number_as(1.25, np.dtype(np.float32))
    assert a.dtype == np.float32 and a.ndim == 0 and not a.flags.writeable
    assert backend.number_as(1.25, np.dtype(np.float32)) is a
    assert np.signbit(backend.number_as(-0.0, np.dtype(np.float32)))  # not 0.0's array
    assert backend.number_as(True, np.dtype(np.float32)) is True  # a bool stays a bool
    assert backend.number_as(2**40, np.dtype(np.float16)) == 2**40  # inexact: NumPy's to do
    assert backend.number_as(1.5, np.dtype(np.int64)) == 1.5  # beside an int array: NumPy's
    for i in range(2000):
        backend.number_as(i + 0.5, np.dtype(np.float64))
    assert len(backend.NUMBERS) <= 512
