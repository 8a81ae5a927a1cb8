"""Property tests: broadcasting gradients of binary ops, reductions over random axes."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtensor as gt

BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power"]


@st.composite
def broadcastable_pair(draw):
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
    )
    return shapes.input_shapes


@settings(max_examples=60, deadline=None)
@given(pair=broadcastable_pair(), op=st.sampled_from(BINARY), seed=st.integers(0, 2**16))
def test_binary_op_gradients_have_input_shapes_and_sum_over_broadcast(pair, op, seed):
    sa, sb = pair
    rng = np.random.default_rng(seed)
    a = gt.tensor(rng.uniform(0.5, 2.0, sa), dtype=gt.float64, requires_grad=True)
    b = gt.tensor(rng.uniform(0.5, 2.0, sb), dtype=gt.float64, requires_grad=True)
    y = getattr(gt, op)(a, b)
    assert y.shape == np.broadcast_shapes(sa, sb)
    ga, gb = gt.grad(y.sum(), [a, b])
    assert ga.shape == sa and gb.shape == sb
    # Broadcasting b to y's shape explicitly must give the same gradient.
    b_full = gt.tensor(
        np.broadcast_to(b.data, y.shape).copy(), dtype=gt.float64, requires_grad=True
    )
    (gb_full,) = gt.grad(getattr(gt, op)(a, b_full).sum(), [b_full])
    expect = gb_full.numpy()
    extra = expect.ndim - len(sb)
    expect = expect.sum(axis=tuple(range(extra)))
    expect = expect.sum(axis=tuple(i for i, n in enumerate(sb) if n == 1), keepdims=True)
    np.testing.assert_allclose(gb.numpy(), expect.reshape(sb), rtol=1e-12, atol=1e-12)
    assert gt.testing.gradcheck(lambda u, v: getattr(gt, op)(u, v), [a, b])


@st.composite
def array_and_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    axes = draw(
        st.one_of(
            st.none(),
            st.integers(-len(shape), len(shape) - 1),
            st.lists(
                st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True
            ).map(tuple),
        )
    )
    return shape, axes


@settings(max_examples=60, deadline=None)
@given(
    case=array_and_axes(),
    keepdims=st.booleans(),
    op=st.sampled_from(["sum", "mean", "amax", "amin", "var", "logsumexp", "prod"]),
    seed=st.integers(0, 2**16),
)
def test_reductions_match_numpy_over_random_axes(case, keepdims, op, seed):
    shape, axes = case
    a = np.random.default_rng(seed).uniform(0.5, 1.5, shape)
    t = gt.tensor(a, dtype=gt.float64, requires_grad=True)
    kw = {"ddof": 0} if op == "var" else {}  # NumPy's default, which gradtensor's var takes
    got = getattr(gt, op)(t, axis=axes, keepdims=keepdims, **kw)
    if op == "logsumexp":
        want = np.log(np.exp(a).sum(axis=axes, keepdims=keepdims))
    else:
        want = getattr(np, op)(a, axis=axes, keepdims=keepdims)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10)
    (g,) = gt.grad(got.sum(), t)
    assert g.shape == shape
    if a.size <= 24:
        assert gt.testing.gradcheck(
            lambda u: getattr(gt, op)(u, axis=axes, keepdims=keepdims, **kw), [t]
        )
