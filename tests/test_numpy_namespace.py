"""gradtensor.numpy against NumPy itself: NumPy's names, signatures, promotion and results, on
plain arrays (NumPy's own answer) and on Tensors (the same values and dtypes, with gradients)."""

import math
import warnings

import numpy as onp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradtensor as gt
import gradtensor.numpy as gnp
from gradtensor.ops import REGISTRY
from gradtensor.testing import gradcheck, sample_call, twin

rng = onp.random.default_rng(0)
A = rng.standard_normal((3, 4))
A2 = rng.standard_normal((3, 4))
B = rng.standard_normal((4, 5))
V = rng.standard_normal(4)
V2 = rng.standard_normal(5)
C3 = rng.standard_normal((2, 3, 4))
D = rng.standard_normal((2, 4, 3))
POS = rng.uniform(0.5, 2.0, (3, 4))
UNIT = rng.uniform(-0.9, 0.9, (3, 4))
X3 = rng.standard_normal((4, 3))
Y3 = rng.standard_normal((4, 3))
ROW = rng.standard_normal((1, 3, 1))
_M = rng.standard_normal((3, 3))
SPD = _M @ _M.T + 3 * onp.eye(3)
RHS = rng.standard_normal((3, 2))
INTS = onp.array([[3, -1, 4], [1, 5, -9]])
F32 = rng.standard_normal((3, 4)).astype(onp.float32)
NANS = onp.array([[1.0, onp.nan, 2.0], [onp.nan, onp.nan, 3.0]])
W4 = onp.array([1.0, 2.0, 0.5, 1.5])

# (id, call written against a NumPy-like module `np`, inputs, check gradients).
# Inputs become Tensors (float ones requiring grad); arrays named inside a call stay plain.
CALLS = [
    ("sum_axis_keepdims", lambda np, a: np.sum(a, axis=1, keepdims=True), [A], True),
    ("sum_all", lambda np, a: np.sum(a), [C3], True),
    ("sum_ints", lambda np, a: np.sum(a, axis=0), [INTS], False),
    ("sum_dtype", lambda np, a: np.sum(a, dtype=np.float32), [A], False),
    ("mean_axis", lambda np, a: np.mean(a, axis=0), [A], True),
    ("mean_ints", lambda np, a: np.mean(a), [INTS], False),
    ("var_ddof0", lambda np, a: np.var(a), [A], True),
    ("var_ddof1_axis", lambda np, a: np.var(a, axis=1, ddof=1), [A], True),
    ("std_axis", lambda np, a: np.std(a, axis=0, keepdims=True), [A], True),
    ("max_axis_values", lambda np, a: np.max(a, axis=1), [A], True),
    ("min_all", lambda np, a: np.min(a), [A], True),
    ("amax_tuple_axis", lambda np, a: np.amax(a, axis=(0, 2)), [C3], True),
    ("argmax_axis", lambda np, a: np.argmax(a, axis=1), [A], False),
    ("argmin_all", lambda np, a: np.argmin(a), [A], False),
    ("prod_axis", lambda np, a: np.prod(a, axis=0), [A], True),
    ("ptp", lambda np, a: np.ptp(a, axis=1), [A], True),
    ("average_weights", lambda np, a: np.average(a, axis=1, weights=W4), [A], True),
    ("median_even", lambda np, a: np.median(a, axis=1), [A], True),
    ("median_odd_all", lambda np, a: np.median(a[:, :3]), [A], True),
    ("cumsum_flat", lambda np, a: np.cumsum(a), [A], True),
    ("cumsum_axis", lambda np, a: np.cumsum(a, axis=1), [A], True),
    ("cumprod_axis", lambda np, a: np.cumprod(a, axis=0), [A], True),
    ("sort_last", lambda np, a: np.sort(a), [A], True),
    ("sort_none", lambda np, a: np.sort(a, axis=None), [A], True),
    ("argsort", lambda np, a: np.argsort(a, axis=0), [A], False),
    ("diff", lambda np, a: np.diff(a, n=2, axis=1), [A], True),
    ("nansum_nanmean", lambda np, a: np.nansum(a, axis=1) + np.nanmean(a, axis=1), [NANS], False),
    (
        "nan_max_min_prod",
        lambda np, a: np.nanmax(a, 1) + np.nanmin(a, 1) + np.nanprod(a, 1),
        [NANS],
        False,
    ),
    (
        "nanvar_nanstd",
        lambda np, a: np.nanvar(a, axis=1) + np.nanstd(a, 1) + np.nanvar(a, ddof=1),
        [NANS],
        False,
    ),
    (
        "nan_reductions_float32",
        lambda np, a: np.nanmean(a) + np.nanvar(a),
        [NANS.astype(onp.float32)],
        False,
    ),
    ("nan_to_num", lambda np, a: np.nan_to_num(a, nan=-1.0), [NANS], False),
    ("quantile_scalar", lambda np, a: np.quantile(a, 0.3), [A], True),
    (
        "quantile_axis_keepdims",
        lambda np, a: np.quantile(a, [0.1, 0.5, 1.0], axis=1, keepdims=True),
        [A],
        True,
    ),
    ("percentile", lambda np, a: np.percentile(a, [25, 75], axis=0), [C3], True),
    ("cov", lambda np, a: np.cov(a), [A], True),
    ("cov_columns_with_y", lambda np, a, b: np.cov(a, b, rowvar=False, ddof=0), [A, A2], True),
    ("corrcoef", lambda np, a: np.corrcoef(a), [A], True),
    ("convolve_full", lambda np, a, b: np.convolve(a, b), [V, V2], True),
    (
        "convolve_same_valid",
        lambda np, a, b: np.concatenate(
            [np.convolve(a, b, "same"), np.convolve(b, a, "same"), np.convolve(b, a, "valid")]
        ),
        [V2, V],
        True,
    ),
    (
        "correlate",
        lambda np, a, b: np.concatenate(
            [np.correlate(a, b), np.correlate(a, b, "full"), np.correlate(b, a, "same")]
        ),
        [V2, V],
        True,
    ),
    ("interp", lambda np, x, fp: np.interp(x, [-1.0, 0.0, 0.5, 2.0], fp), [A, V], True),
    ("kron", lambda np, a, b: np.kron(a, b), [A, V2], True),
    ("transpose_default", lambda np, a: np.transpose(a), [C3], True),
    ("transpose_axes", lambda np, a: np.transpose(a, (1, 0, 2)), [C3], False),
    ("swapaxes", lambda np, a: np.swapaxes(a, 0, 2), [C3], False),
    ("moveaxis", lambda np, a: np.moveaxis(a, 0, -1), [C3], False),
    ("reshape", lambda np, a: np.reshape(a, (2, 6)), [A], True),
    ("reshape_minus1", lambda np, a: np.reshape(a, -1), [C3], False),
    ("ravel", lambda np, a: np.ravel(a), [C3], False),
    ("expand_dims", lambda np, a: np.expand_dims(a, (0, 2)), [A], False),
    ("squeeze", lambda np, a: np.squeeze(a), [ROW], False),
    ("squeeze_axis", lambda np, a: np.squeeze(a, axis=0), [ROW], False),
    ("concatenate", lambda np, a, b: np.concatenate([a, b], axis=1), [A, A2], True),
    ("concatenate_none", lambda np, a, b: np.concatenate((a, b), axis=None), [A, C3], False),
    ("stack", lambda np, a, b: np.stack([a, b], axis=1), [A, A2], True),
    ("vstack", lambda np, a, b: np.vstack([a, b]), [V, V], False),
    ("hstack", lambda np, a, b: np.hstack([a, b]), [A, A2], False),
    ("hstack_1d", lambda np, a, b: np.hstack([a, b]), [V, V2], False),
    ("dstack", lambda np, a, b: np.dstack([a, b]), [A, A2], False),
    ("column_stack", lambda np, a, b: np.column_stack([a, b]), [V, V], False),
    ("split_sections", lambda np, a: np.split(a, 2, axis=1), [A], True),
    ("split_indices", lambda np, a: np.split(a, [1, 3], axis=1), [A], False),
    ("array_split", lambda np, a: np.array_split(a, 3, axis=1), [A], False),
    ("hsplit", lambda np, a: np.hsplit(a, 2), [A], False),
    ("tile", lambda np, a: np.tile(a, (2, 1, 1)), [A], True),
    ("repeat_int", lambda np, a: np.repeat(a, 2, axis=0), [A], True),
    ("repeat_counts", lambda np, a: np.repeat(a, [1, 2, 0, 1], axis=1), [A], False),
    ("repeat_flat", lambda np, a: np.repeat(a, 2), [A], False),
    ("take", lambda np, a: np.take(a, [3, 0, 0], axis=1), [A], True),
    (
        "take_modes",
        lambda np, a: (
            np.take(a, [5, -6, 1], 1, mode="wrap") + np.take(a, [5, -6, 1], 1, mode="clip")
        ),
        [A],
        True,
    ),  # fmt: skip
    ("take_along_axis", lambda np, a: np.take_along_axis(a, np.argsort(a, 1), 1), [A], True),
    ("flip", lambda np, a: np.flip(a, axis=0), [A], False),
    ("flip_all_fliplr", lambda np, a: np.flip(a) + np.fliplr(a), [A], False),
    ("roll_axis", lambda np, a: np.roll(a, 1, axis=1), [A], True),
    ("roll_flat", lambda np, a: np.roll(a, -5), [A], False),
    ("pad", lambda np, a: np.pad(a, ((1, 0), (2, 1)), constant_values=0.5), [A], True),
    ("tril_triu", lambda np, a: np.tril(a, -1) + 2 * np.triu(a, 1), [A], True),
    ("diag_vector", lambda np, v: np.diag(v, 1), [V], True),
    ("diag_matrix", lambda np, a: np.diag(a, -1), [A], False),
    ("diagonal_offset", lambda np, a: np.diagonal(a, 1, 1, 2), [C3], True),
    ("trace", lambda np, a: np.trace(a), [A], True),
    ("where", lambda np, a: np.where(a > 0, a, 0.5 * a), [A], True),
    ("where_one_arg", lambda np, a: np.where(a > 0), [A], False),
    ("clip", lambda np, a: np.clip(a, -0.5, 0.5), [A], True),
    ("maximum_minimum", lambda np, a, b: np.maximum(a, 0) + np.minimum(a, b), [A, A2], True),
    ("exp_log_sqrt", lambda np, a: np.exp(a) + np.log(a) + np.sqrt(a), [POS], True),
    ("tanh_sin_cos", lambda np, a: np.tanh(a) * np.sin(a) - np.cos(a), [A], True),
    ("abs_negative", lambda np, a: np.abs(a) + np.negative(a) + np.absolute(a), [A], True),
    ("power", lambda np, a, b: np.power(a, 3) + np.power(a, b), [POS, A], True),
    ("divide_operators", lambda np, a, b: np.divide(a, b) - a / 2 + 2**a, [A, POS], True),
    ("logsumexp_by_hand", lambda np, a: np.log(np.sum(np.exp(a), axis=1)), [A], True),
    ("sinc_radians", lambda np, a: np.sinc(a) + np.radians(a) + np.degrees(a), [A], True),
    ("dot_matrices", lambda np, a, b: np.dot(a, b), [A, B], True),
    ("dot_nd", lambda np, a, b: np.dot(a, b), [C3, D], True),
    ("dot_vectors", lambda np, a, b: np.dot(a, b), [V, V], True),
    ("dot_nd_vector", lambda np, a, b: np.dot(a, b), [C3, V], False),
    ("dot_scalar", lambda np, a: np.dot(a, 2.5), [A], False),
    ("vdot_inner", lambda np, a, b: np.vdot(a, b) + np.sum(np.inner(a, b)), [A, A2], True),
    ("outer", lambda np, a, b: np.outer(a, b), [V, V2], True),
    ("matmul_batched", lambda np, a, b: np.matmul(a, b), [C3, D], True),
    ("tensordot_int", lambda np, a, b: np.tensordot(a, b, axes=1), [A, B], True),
    ("tensordot_axes", lambda np, a, b: np.tensordot(a, b, axes=([1, 2], [2, 1])), [C3, D], True),
    ("cross", lambda np, a, b: np.cross(a, b), [X3, Y3], True),
    ("array_of_tensors", lambda np, a: np.array([a[0], a[2], 2 * a[1]]), [A], True),
    (
        "nested_array_of_tensors",
        lambda np, a: np.array([[a[0, 0], a[1, 1]], [a[2, 2], 1.5]]),
        [A],
        True,
    ),  # fmt: skip
    ("asarray_ndmin", lambda np, v: np.array(v, ndmin=3), [V], False),
    ("meshgrid_xy", lambda np, a, b: np.meshgrid(a, b), [V, V2], True),
    ("meshgrid_ij", lambda np, a, b: np.meshgrid(a, b, indexing="ij"), [V, V2], False),
    ("broadcast_to", lambda np, v: np.broadcast_to(v, (3, 4)), [V], True),
    ("atleast_2d_3d", lambda np, v: np.atleast_2d(v) + np.atleast_3d(v)[..., 0], [V], False),
    (
        "unique",
        lambda np, a: np.unique(np.round(a, 0), return_counts=True, return_index=True),
        [A],
        False,
    ),
    (
        "bincount_weights",
        lambda np, w: np.bincount(np.array([3, 0, 3, 1]), weights=w, minlength=6),
        [V],
        True,
    ),
    ("round_decimals", lambda np, a: np.round(a, 2) + np.around(a), [A], False),
    ("tests_and_rounding", lambda np, a: np.isfinite(a) + np.sign(a) + np.floor(3 * a), [A], False),
    (
        "comparisons",
        lambda np, a, b: np.logical_and(np.less(a, b), np.isclose(a, a)),
        [A, A2],
        False,
    ),
    ("allclose", lambda np, a: np.allclose(a, a + 1e-12), [A], False),
    ("zeros_like_full_like", lambda np, a: np.zeros_like(a) + np.full_like(a, 2.0), [A], False),
    # NumPy's promotion where a Tensor meets plain arrays and numbers.
    ("float32_with_float64_array", lambda np, a: np.add(a, A), [F32], False),
    ("float32_with_python_float", lambda np, a: np.multiply(a, 2.0) - 1.5, [F32], False),
    ("float32_sum_mean", lambda np, a: np.mean(a, axis=0) + np.sum(a), [F32], False),
    ("int_divide", lambda np, a: np.divide(a, 2), [INTS], False),
    ("int_exp", lambda np, a: np.exp(a), [INTS], False),
    ("int_with_python_float", lambda np, a: np.add(a, 1.5), [INTS], False),
    ("int_times_int", lambda np, a: np.multiply(a, 3), [INTS], False),
    ("concatenate_promotes", lambda np, a: np.concatenate([a, A]), [F32], False),
    # linalg, numpy.linalg's semantics.
    ("norm_default", lambda np, a: np.linalg.norm(a), [A], True),
    ("norm_axis", lambda np, a: np.linalg.norm(a, axis=1, keepdims=True), [A], True),
    ("norm_ord", lambda np, v: np.linalg.norm(v, 1) + np.linalg.norm(v, np.inf), [V], True),
    ("norm_fro_nuc", lambda np, a: np.linalg.norm(a, "fro") + np.linalg.norm(a, "nuc"), [A], True),
    ("inv_det", lambda np, s: np.linalg.inv(s) * np.linalg.det(s), [SPD], True),
    ("slogdet", lambda np, s: np.linalg.slogdet(s)[1], [SPD], True),
    ("solve", lambda np, s, b: np.linalg.solve(s, b), [SPD, RHS], True),
    ("cholesky", lambda np, s: np.linalg.cholesky(s), [SPD], False),
    ("eigvalsh", lambda np, s: np.linalg.eigvalsh(s), [SPD], False),
    ("svd_values", lambda np, a: np.linalg.svd(a, compute_uv=False), [A], True),
    ("pinv", lambda np, a: np.linalg.pinv(a), [A], False),
    ("matrix_power", lambda np, s: np.linalg.matrix_power(s, 3), [SPD], True),
    # NumPy reads a 2-D b as one matrix even where PyTorch would read it as a batch of vectors.
    (
        "solve_batch",
        lambda np, s, b: np.linalg.solve(np.stack([s, 2 * s, 3 * s]), b),
        [SPD, _M],
        True,
    ),
    (
        "linalg_diagonal_trace",
        lambda np, a: np.concatenate(
            [np.ravel(np.linalg.diagonal(a, offset=1)), np.linalg.trace(a)]
        ),
        [D],
        True,
    ),
    (
        "vector_matrix_norm",
        lambda np, a: np.linalg.vector_norm(a, axis=1, ord=3) + np.linalg.matrix_norm(a, ord=1),
        [A],
        True,
    ),
    ("cond", lambda np, a: np.linalg.cond(a) + np.linalg.cond(a, "fro"), [SPD], True),
    ("qr_r", lambda np, a: np.abs(np.linalg.qr(a, mode="r")), [A.T], True),
    ("multi_dot", lambda np, a, b, c: np.linalg.multi_dot([a, b, c]), [A, B, V2], True),
    # Elementwise maths and einsum from gt's op families.
    ("tan_arcsin", lambda np, a: np.tan(a) + np.arcsin(a) + np.arctanh(a), [UNIT], True),
    ("log2_log10_expm1", lambda np, a: np.log2(a) + np.log10(a) + np.expm1(a), [POS], True),
    ("square_reciprocal", lambda np, a: np.square(a) + np.reciprocal(a), [POS], True),
    ("arctan2_hypot", lambda np, a, b: np.arctan2(a, b) + np.hypot(a, b), [A, A2], True),
    ("logaddexp", lambda np, a, b: np.logaddexp(a, b), [A, A2], True),
    ("einsum", lambda np, a, b: np.einsum("ij,jk->ik", a, b), [A, B], True),
    ("einsum_trace_batch", lambda np, a, b: np.einsum("bij,bjk->bik", a, b), [C3, D], False),
]
_IDS = [c[0] for c in CALLS]
assert len(set(_IDS)) == len(_IDS) >= 60


def _tensors(arrays, requires_grad=True):
    return [
        gt.tensor(a, dtype=a.dtype, requires_grad=requires_grad and a.dtype.kind == "f")
        for a in arrays
    ]


def _leaves(out):
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _leaves(o)]
    return [out]


def _same(got, want, tensors):
    got, want = _leaves(got), _leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if tensors and (isinstance(w, onp.ndarray) or isinstance(w, onp.generic)):
            # An array result must come back a Tensor: plain NumPy here would mean the graph was
            # dropped on the way.
            assert isinstance(g, gt.Tensor), f"expected a Tensor, got {type(g).__name__}"
            g = g.detach().numpy()
        assert onp.shape(g) == onp.shape(w)
        assert onp.asarray(g).dtype == onp.asarray(w).dtype
        onp.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, fn, inputs, check_grad", CALLS, ids=_IDS)
def test_call_on_plain_arrays_is_numpys(name, fn, inputs, check_grad):
    want = fn(onp, *inputs)
    got = fn(gnp, *inputs)
    assert not any(isinstance(g, gt.Tensor) for g in _leaves(got))
    _same(got, want, tensors=False)


@pytest.mark.parametrize("name, fn, inputs, check_grad", CALLS, ids=_IDS)
def test_call_on_tensors_matches_numpy(name, fn, inputs, check_grad):
    want = fn(onp, *inputs)
    xs = _tensors(inputs)
    got = fn(gnp, *xs)
    _same(got, want, tensors=True)
    if check_grad:
        assert all(o.requires_grad for o in _leaves(got))
        assert gradcheck(lambda *ts: fn(gnp, *ts), xs)


# -- promotion: NumPy's, whatever meets a Tensor ------------------------------------------------

_DTYPES = [onp.bool_, onp.int32, onp.int64, onp.float32, onp.float64]
_BINARY = ["add", "multiply", "maximum", "minimum", "divide", "arctan2", "hypot", "logaddexp"]


def _operand(kind, dtype, values):
    arr = values.astype(dtype)
    if kind == "python":
        return arr.reshape(-1)[0].item()  # a Python bool, int or float: weak, as NumPy's
    return gt.tensor(arr, dtype=arr.dtype) if kind == "tensor" else arr


@settings(max_examples=80, deadline=None)
@given(
    fn=st.sampled_from(_BINARY + ["exp", "sqrt", "sin", "where", "clip", "dot", "concatenate"]),
    dtypes=st.tuples(st.sampled_from(_DTYPES), st.sampled_from(_DTYPES)),
    other=st.sampled_from(["tensor", "array", "python"]),
    seed=st.integers(0, 2**16),
)
def test_promotion_is_numpys_when_a_tensor_meets_anything(fn, dtypes, other, seed):
    values = onp.random.default_rng(seed).uniform(0.5, 3.0, (2, 3, 3))
    x = _operand("tensor", dtypes[0], values[0])
    y = _operand(other, dtypes[1], values[1])
    calls = {
        "where": lambda np, a, b: np.where(values[0] > 1.5, a, b),
        "clip": lambda np, a, b: np.clip(a, b, 2.5),
        "exp": lambda np, a, b: np.exp(a),
        "sqrt": lambda np, a, b: np.sqrt(a),
        "sin": lambda np, a, b: np.sin(a),
        "dot": lambda np, a, b: np.dot(a, b),
        "concatenate": lambda np, a, b: np.concatenate([a, np.broadcast_to(b, (3, 3))]),
    }
    call = calls.get(fn, lambda np, a, b: getattr(np, fn)(a, b))
    plain = [v.detach().numpy() if isinstance(v, gt.Tensor) else v for v in (x, y)]
    try:
        with onp.errstate(all="ignore"):
            want = call(onp, *plain)
    except TypeError:  # NumPy refuses this pairing (arctan2 of two bools has no float16 loop...)
        return
    with onp.errstate(all="ignore"):  # x / 0 for integers, as NumPy's, without its warning
        got = call(gnp, x, y)
    assert isinstance(got, gt.Tensor) and got.dtype == want.dtype, (got.dtype, want.dtype)
    tol = {2: 1e-3, 4: 1e-6}.get(want.dtype.itemsize, 1e-12) if want.dtype.kind == "f" else 0
    onp.testing.assert_allclose(got.numpy(), want, rtol=tol)


# -- reductions over any axes, as NumPy's -----------------------------------------------------


def _reduce_by(name):
    return lambda np, a, axis, keepdims: getattr(np, name)(a, axis=axis, keepdims=keepdims)


_REDUCTIONS = {
    name: _reduce_by(name)
    for name in "sum mean var std max min prod ptp median nansum nanmax average any all "
    "count_nonzero".split()
}
_REDUCTIONS["quantile"] = lambda np, a, axis, keepdims: np.quantile(
    a, [0.3, 0.9], axis, keepdims=keepdims
)
_REDUCTIONS["percentile"] = lambda np, a, axis, keepdims: np.percentile(
    a, 30, axis, keepdims=keepdims
)
_REDUCTIONS["std_ddof"] = lambda np, a, axis, keepdims: np.std(a, axis, ddof=1, keepdims=keepdims)


@st.composite
def _array_and_axis(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
    axes = st.sampled_from(range(-len(shape), len(shape))) if shape else st.nothing()
    axis = draw(
        st.one_of(st.none(), axes, st.lists(axes, unique_by=lambda a: a % len(shape)).map(tuple))
    )
    dtype = draw(st.sampled_from([onp.float64, onp.float32, onp.int64, onp.bool_]))
    values = onp.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape) * 3
    return values.astype(dtype), axis


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(_REDUCTIONS)), case=_array_and_axis(), keepdims=st.booleans())
def test_reductions_over_any_axes_match_numpy(name, case, keepdims):
    a, axis = case
    call = _REDUCTIONS[name]
    try:
        with onp.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # std with ddof >= n: NaN, as ours
            want = onp.asarray(call(onp, a, axis, keepdims))
    except (TypeError, ValueError):  # NumPy refuses it (ptp of bools, ...): nothing to compare
        return
    with onp.errstate(all="ignore"):
        got = call(gnp, gt.tensor(a, dtype=a.dtype), axis, keepdims)
    assert isinstance(got, gt.Tensor) and got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-4 if onp.float32 in (a.dtype, want.dtype) else 1e-10  # float32 data: its precision
    onp.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)


# -- the ops' records: their NumPy twins ------------------------------------------------------


def _ours(name):
    """gradtensor.numpy's function of a dotted name ("linalg.inv"), or None."""
    space, _, last = name.rpartition(".")
    module = gnp.linalg if space == "linalg" else gnp if not space else None
    return module.__dict__.get(last) if module is not None else None


def _numpy_side(a):
    if isinstance(a, gt.Tensor):
        return a.detach().numpy()
    if isinstance(a, list) and a and all(isinstance(t, gt.Tensor) for t in a):
        return [t.detach().numpy() for t in a]
    return a


_TWINNED = [
    (n, i) for n, op in sorted(REGISTRY.items()) if op.numpy for i in range(len(op.samples))
]


@pytest.mark.parametrize("name, i", _TWINNED, ids=[f"{n}-{i}" for n, i in _TWINNED])
def test_registered_ops_agree_with_their_numpy_twin(name, i):
    """Every op whose record names a NumPy twin agrees with it; where the twin is NumPy's
    function of the op's own name, gradtensor.numpy's function gives the same values and dtype
    on Tensors (with the graph)."""
    op = REGISTRY[name]
    fn, xs = sample_call(op, op.samples[i])
    with onp.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's nanmean of an all-NaN slice
        want = twin(op, onp, "numpy")(*[_numpy_side(a) for a in fn.args], **fn.kwargs)
    _same(fn(*xs), want, tensors=True)
    mine = _ours(name)
    if op.numpy == name and mine is not None:
        got = mine(*fn.args, **fn.kwargs)
        _same(got, want, tensors=True)
        if xs and getattr(op, "differentiable", True):
            assert any(o.requires_grad for o in _leaves(got))


def test_some_ops_are_checked_through_their_numpy_twin():
    assert len(_TWINNED) > 50 and {"matmul", "tril", "cumsum"} <= {n for n, _ in _TWINNED}


# -- what the module lacks, and what it never does --------------------------------------------


@pytest.mark.parametrize("name", ["fft", "histogram", "gradient", "polyfit", "unwrap", "r_"])
def test_a_numpy_function_it_lacks_raises_naming_it(name):
    assert hasattr(onp, name)
    with pytest.raises(AttributeError, match=rf"gradtensor.numpy has no '{name}' yet"):
        getattr(gnp, name)
    assert not hasattr(gnp, name)


@pytest.mark.parametrize("name", ["eig", "lstsq", "tensorinv"])
def test_a_linalg_function_it_lacks_raises_naming_it(name):
    with pytest.raises(AttributeError, match=rf"gradtensor.numpy.linalg has no '{name}' yet"):
        getattr(gnp.linalg, name)


def test_every_numpy_name_is_either_here_or_refused_by_name():
    for name in dir(onp):
        if name.startswith("_"):
            continue
        try:
            getattr(gnp, name)
        except AttributeError as exc:
            assert f"'{name}'" in str(exc)


def test_a_name_numpy_lacks_is_a_plain_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'frobnicate'"):
        gnp.frobnicate  # noqa: B018


def test_a_missing_gt_op_is_named_not_a_crash(monkeypatch):
    monkeypatch.delattr(gt, "cumsum", raising=False)
    x = gt.tensor(A, dtype=gt.float64)
    with pytest.raises(NotImplementedError, match=r"gradtensor.numpy.cumsum: .*gt.cumsum"):
        gnp.cumsum(x)
    assert isinstance(gnp.cumsum(A), onp.ndarray)  # plain arrays are NumPy's business


def test_errors_name_the_numpy_function_called():
    a, b = gt.tensor(onp.ones((2, 3))), gt.tensor(onp.ones((4, 5)))
    with pytest.raises(ValueError, match=r"^gradtensor.numpy.dot: shapes \(2, 3\) and \(4, 5\) do"):
        gnp.dot(a, b)
    with pytest.raises(ValueError, match=r"^gradtensor.numpy.sum: axis 4 is out of range"):
        gnp.sum(a, axis=4)
    with pytest.raises(ValueError, match=r"^gradtensor.numpy.linalg.inv: "):
        gnp.linalg.inv(a)


def test_a_singular_matrix_raises_numpys_linalg_error():
    singular = onp.ones((2, 2))
    with pytest.raises(gnp.linalg.LinAlgError):
        gnp.linalg.inv(singular)
    with pytest.raises(gnp.linalg.LinAlgError, match="^gradtensor.numpy.linalg.inv: "):
        gnp.linalg.inv(gt.tensor(singular, requires_grad=True))
    assert gnp.linalg.LinAlgError is onp.linalg.LinAlgError


def test_split_gives_a_list_as_numpy():
    assert type(gnp.split(gt.tensor(A), 2, axis=1)) is list is type(onp.split(A, 2, axis=1))


def test_out_is_refused_on_tensors():
    x = gt.tensor(A, dtype=gt.float64, requires_grad=True)
    with pytest.raises(TypeError, match=r"gradtensor.numpy.sum: out= is not supported"):
        gnp.sum(x, axis=0, out=onp.empty(4))
    out = onp.empty(4)
    gnp.sum(A, axis=0, out=out)  # on plain arrays it is NumPy's call, out= included
    onp.testing.assert_allclose(out, A.sum(0))


def test_creation_gives_numpy_arrays_and_random_is_numpys():
    z = gnp.zeros((2, 3))
    assert type(z) is onp.ndarray and z.dtype == onp.float64
    assert type(gnp.arange(3)) is onp.ndarray and gnp.arange(3).dtype == onp.arange(3).dtype
    assert type(gnp.linspace(0, 1, 5)) is onp.ndarray
    assert gnp.eye(3).dtype == onp.float64
    assert gnp.random is onp.random
    assert (gnp.pi, gnp.e, gnp.inf) == (onp.pi, onp.e, onp.inf) and gnp.newaxis is None
    assert gnp.float32 is onp.float32 and gnp.int64 is onp.int64
    with pytest.raises(TypeError, match="gradtensor.numpy.linspace: makes plain NumPy arrays"):
        gnp.linspace(gt.tensor(0.0), 1.0, 3)


def test_zeros_like_of_a_tensor_is_a_constant_tensor():
    x = gt.tensor(F32, requires_grad=True)
    z = gnp.zeros_like(x)
    assert isinstance(z, gt.Tensor) and not z.requires_grad and z.dtype == onp.float32
    assert gnp.full_like(x, 7, dtype=onp.float64).dtype == onp.float64
    t = gt.tensor(V, dtype=gt.float64, requires_grad=True)
    z = gnp.zeros_like(t)
    z[1] = 2 * t[1]  # writing into it keeps the graph (into a NumPy array it would drop it)
    gnp.sum(z).backward()
    onp.testing.assert_array_equal(t.grad.numpy(), [0.0, 2.0, 0.0, 0.0])


def test_linalg_imports_as_a_module():
    import gradtensor.numpy.linalg as la

    assert la is gnp.linalg


# -- ordinary NumPy code becomes differentiable by its import ---------------------------------


def mlp_loss(np, w1, b1, w2, x, y):
    """A two-layer classifier's mean cross-entropy, written as plain NumPy."""
    h = np.tanh(np.dot(x, w1) + b1)
    logits = np.dot(h, w2)
    logits = logits - np.max(logits, axis=1, keepdims=True)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    return -np.mean(np.sum(logp * y, axis=1))


def test_numpy_code_becomes_differentiable_by_changing_its_import():
    x = rng.standard_normal((6, 3))
    y = onp.eye(4)[rng.integers(0, 4, 6)]
    params = [rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal((5, 4))]
    want = mlp_loss(onp, *params, x, y)
    assert gnp.sum(mlp_loss(gnp, *params, x, y)) == want  # plain arrays: NumPy's own result
    ts = [gt.tensor(p, dtype=gt.float64, requires_grad=True) for p in params]
    loss = mlp_loss(gnp, *ts, x, y)
    assert isinstance(loss, gt.Tensor) and loss.dtype == onp.float64
    assert math.isclose(loss.item(), want, rel_tol=1e-12)
    assert gradcheck(lambda *ps: mlp_loss(gnp, *ps, x, y), ts)
    loss.backward()
    assert all(t.grad is not None and t.grad.shape == t.shape for t in ts)


def test_operators_with_plain_arrays_keep_their_float64():
    """README: an operator keeps a NumPy array operand's dtype (as PyTorch does), so soft
    targets and offsets in float64 are exact."""
    x, y = rng.standard_normal((6, 3)), rng.dirichlet(onp.ones(4), 6)
    params = [rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal((5, 4))]
    ts = [gt.tensor(p, dtype=gt.float64, requires_grad=True) for p in params]
    loss = mlp_loss(gnp, *ts, x, y) + gnp.sum(ts[1] * A[0, 0]) - 0.1 * x[0, 0]
    want = mlp_loss(onp, *params, x, y) + onp.sum(params[1] * A[0, 0]) - 0.1 * x[0, 0]
    assert loss.dtype == onp.float64 and loss.item() == pytest.approx(want, rel=1e-13, abs=1e-13)
    t32 = gt.tensor(F32)
    assert (t32 + A).dtype == (F32 + A).dtype == onp.float64


def test_numpy_semantics_where_pytorchs_differ():
    x = gt.tensor(A, dtype=gt.float64, requires_grad=True)
    assert gnp.var(x).item() == pytest.approx(A.var())  # ddof=0, where gt.var divides by n - 1
    assert gnp.max(x, axis=1).shape == (3,)  # values, where gt.max gives (values, indices)
    assert gnp.transpose(gt.tensor(C3)).shape == (4, 3, 2)  # all axes reversed
    assert [p.shape for p in gnp.split(x, 2, axis=1)] == [(3, 2), (3, 2)]  # 2 pieces, not size 2
    with pytest.raises(ValueError, match="equal division"):
        gnp.split(x, 3, axis=1)
    # A deliberate difference (README): a Tensor's own indexing keeps PyTorch's axis order.
    assert gt.tensor(C3)[0, :, [1, 2]].shape == (3, 2) and C3[0, :, [1, 2]].shape == (2, 3)


# -- on a GPU (the strict CuPy stand-in where there is none) ----------------------------------

_ON_GPU = [c for c in CALLS if c[0] in set(
    "sum_axis_keepdims var_ddof0 max_axis_values argmax_axis median_even cumsum_flat sort_last "
    "transpose_default concatenate split_sections tile repeat_int take take_along_axis roll_axis "
    "pad tril_triu diag_vector diagonal_offset where where_one_arg clip exp_log_sqrt dot_nd "
    "tensordot_axes array_of_tensors meshgrid_xy tests_and_rounding norm_axis solve "
    "quantile_axis_keepdims convolve_full cov kron bincount_weights nan_max_min_prod "
    "unique take_modes".split()
)]  # fmt: skip


@pytest.mark.cuda
@pytest.mark.parametrize("name, fn, inputs, check_grad", _ON_GPU, ids=[c[0] for c in _ON_GPU])
def test_call_on_gpu_tensors_matches_the_cpu(name, fn, inputs, check_grad):
    outs = {}
    for device in ("cpu", "cuda"):
        xs = [gt.tensor(a, dtype=a.dtype, requires_grad=a.dtype.kind == "f", device=device)
              for a in inputs]  # fmt: skip
        got = _leaves(fn(gnp, *xs))
        assert all(isinstance(o, gt.Tensor) and o.device.type == device for o in got)
        live = [o for o in got if o.requires_grad]
        grads = gt.grad(live, xs, [gt.ones_like(o) for o in live]) if check_grad else []
        outs[device] = [t.detach().cpu().numpy() for t in [*got, *grads]]
    for a, b in zip(outs["cpu"], outs["cuda"], strict=True):
        onp.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
