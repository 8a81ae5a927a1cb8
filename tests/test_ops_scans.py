"""Scans (cumsum, cumprod, cummax, cummin, logcumsumexp) and mode, argsort, count_nonzero,
nansum, nanmean against PyTorch: hypothesis properties over shapes, dims and awkward values
(zeros, ties, infinities, NaN), PyTorch idioms, and the places we differ from PyTorch on purpose."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtensor as gt

torch = pytest.importorskip("torch", reason="PyTorch is the oracle of these tests")
INF, NAN = np.inf, np.nan


def _both(a, dtype=np.float64):
    """The same values as a gradtensor leaf and a torch leaf."""
    a = np.asarray(a, dtype)
    grad = a.dtype.kind == "f"
    return gt.tensor(a, dtype=a.dtype, requires_grad=grad), torch.tensor(a, requires_grad=grad)


def _agree(ours, theirs, x, tx, seed=0, grads=True):
    """Values (and indices) equal, and gradients of the float outputs under a random probe."""
    outs = list(ours) if isinstance(ours, tuple) else [ours]
    touts = list(theirs) if isinstance(theirs, tuple) else [theirs]
    for o, t in zip(outs, touts, strict=True):
        assert str(o.dtype) == str(t.dtype).removeprefix("torch."), (o.dtype, t.dtype)
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    if grads:
        g = np.random.default_rng(seed).standard_normal(outs[0].shape)
        (gx,) = gt.grad(outs[0], [x], gt.tensor(g, dtype=gt.float64))
        (tg,) = torch.autograd.grad(touts[0], [tx], torch.tensor(g))
        return gx.numpy(), tg.numpy()
    return None


@st.composite
def values_and_dim(draw, elements):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    a = draw(hnp.arrays(np.float64, shape, elements=elements))
    dim = draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    return a, dim


FINITE = st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 1))  # rounding makes ties
WITH_ZEROS = st.one_of(st.just(0.0), FINITE)
TIES = st.sampled_from([-INF, -1.0, 0.0, 2.0, 2.0, 5.0, INF, NAN])


@settings(max_examples=80, deadline=None)
@given(case=values_and_dim(WITH_ZEROS), op=st.sampled_from(["cumsum", "cumprod"]))
def test_cumsum_and_cumprod_match_pytorch_with_zeros(case, op):
    a, dim = case
    x, tx = _both(a)
    ours, theirs = _agree(getattr(x, op)(dim), getattr(torch, op)(tx, dim), x, tx)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(case=values_and_dim(TIES), op=st.sampled_from(["cummax", "cummin"]))
def test_cummax_and_cummin_match_pytorch_with_ties_infinities_and_nan(case, op):
    a, dim = case
    x, tx = _both(a)
    if a.size == 0:  # PyTorch's gradient of an empty cummax is a tensor that requires grad
        v, i = getattr(x, op)(dim)
        assert v.shape == i.shape == a.shape and i.dtype == gt.int64
        return
    ours, theirs = _agree(getattr(x, op)(dim), getattr(torch, op)(tx, dim), x, tx)
    np.testing.assert_array_equal(ours, theirs)  # the gradient reaches the element taken


@settings(max_examples=80, deadline=None)
@given(case=values_and_dim(st.one_of(st.just(-INF), st.floats(-800, 800))))
def test_logcumsumexp_matches_pytorch_with_minus_infinity_and_wide_ranges(case):
    a, dim = case
    x, tx = _both(a)
    ours, theirs = _agree(x.logcumsumexp(dim), torch.logcumsumexp(tx, dim), x, tx)
    # PyTorch's gradient is NaN where a slice is all -inf so far. Ours has no NaN: the first
    # element gets its own g (y_0 = x_0), the others 0 (each term's exp(x_j - y_i) read as 0).
    g = np.random.default_rng(0).standard_normal(a.shape)  # _agree's probe
    first = np.arange(a.shape[dim] if a.ndim else 1) == 0
    want = np.where(first.reshape((-1,) + (1,) * (a.ndim - dim % max(a.ndim, 1) - 1)), g, 0)
    lead = np.isnan(theirs)
    assert not np.isnan(ours).any()
    np.testing.assert_allclose(ours[lead], want[lead] if a.ndim else g, rtol=1e-12)
    np.testing.assert_allclose(ours[~lead], theirs[~lead], rtol=1e-9, atol=1e-12)


def test_logcumsumexp_values_at_infinities_and_nan_are_pytorchs():
    a = [-INF, -INF, 0.0, INF, 1.0, NAN, 2.0]
    x, tx = _both(a)
    _agree(gt.logcumsumexp(x, 0), torch.logcumsumexp(tx, 0), x, tx, grads=False)
    big = np.array([1e3, 1e3 + 1, -1e3])  # exp would overflow: the scan never forms it
    np.testing.assert_allclose(gt.logcumsumexp(big, 0).numpy(), np.logaddexp.accumulate(big))


def test_cumprod_gradients_with_several_zeros_match_pytorch_to_second_order():
    a = np.array(
        [[2.0, 0.0, 3.0, 0.0, 4.0], [0.0, 0.0, -1.5, 2.0, 0.5], [1.5, -2.0, 0.5, 3.0, 0.0]]
    )
    g = np.random.default_rng(0).standard_normal(a.shape)
    for dim in (0, 1):
        x, tx = _both(a)
        (gx,) = gt.grad(x.cumprod(dim), [x], gt.tensor(g, dtype=gt.float64), create_graph=True)
        (tg,) = torch.autograd.grad(tx.cumprod(dim), [tx], torch.tensor(g), create_graph=True)
        np.testing.assert_allclose(gx.detach().numpy(), tg.detach().numpy(), rtol=1e-12)
        v = np.random.default_rng(1).standard_normal(a.shape)
        (hx,) = gt.grad((gx * gt.tensor(v, dtype=gt.float64)).sum(), [x])
        (th,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), [tx])
        np.testing.assert_allclose(hx.numpy(), th.numpy(), rtol=1e-10, atol=1e-12)
        assert gt.testing.gradgradcheck(lambda t, d=dim: t.cumprod(d), [x])


def test_scan_dtypes_are_pytorchs():
    for dtype in (np.int32, np.uint8, np.bool_):
        a = np.array([[1, 0, 1], [1, 1, 0]], dtype)
        for op in ("cumsum", "cumprod"):
            ours, theirs = getattr(gt, op)(a, 1), getattr(torch, op)(torch.from_numpy(a), 1)
            assert ours.dtype == gt.int64 and theirs.dtype == torch.int64
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x = gt.ones(3, dtype=gt.float32, requires_grad=True)
    y = x.cumsum(0, dtype=gt.float64)
    assert y.dtype == gt.float64 and x.cumprod(0).dtype == gt.float32
    y.sum().backward()
    assert x.grad.dtype == gt.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3, 2, 1])
    assert gt.cumsum(gt.tensor(2.5), 0).shape == () and gt.cummax(gt.tensor(2.5), -1)[1].item() == 0


def test_pytorch_idioms():
    a = np.array([[3.0, 1.0, 3.0, 2.0], [1.0, 2.0, 2.0, 1.0], [0.5, 0.5, 4.0, 0.5]])
    x, tx = _both(a)
    v, i = x.cummax(1)
    tv, ti = tx.cummax(1)
    np.testing.assert_array_equal(v.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())  # ties: the later element, as PyTorch
    np.testing.assert_array_equal(x.cummin(0).indices.numpy(), tx.cummin(0).indices.numpy())
    m = x.mode(0)
    assert type(m).__name__ == "mode" and m._fields == ("values", "indices")
    _agree(x.mode(0), tx.mode(0), x, tx)
    _agree(x.mode(1, keepdim=True), tx.mode(1, keepdim=True), x, tx)
    np.testing.assert_array_equal(x.mode().values.detach().numpy(), [3.0, 1.0, 0.5])
    np.testing.assert_array_equal(x.argsort().numpy(), tx.argsort().numpy())
    np.testing.assert_array_equal(
        x.argsort(dim=0, descending=True, stable=True).numpy(),
        tx.argsort(dim=0, descending=True, stable=True).numpy(),
    )
    np.testing.assert_array_equal(x.argsort(1).numpy(), x.sort(1).indices.numpy())
    assert x.count_nonzero().item() == 12 and x.count_nonzero(dim=(0, 1)).dtype == gt.int64
    ints = np.array([[4, 4, 1, 1, 7], [2, 9, 9, 2, 2]])
    mi, ti2 = gt.mode(ints, 1), torch.mode(torch.from_numpy(ints), 1)
    np.testing.assert_array_equal(mi.values.numpy(), ti2.values.numpy())
    np.testing.assert_array_equal(mi.indices.numpy(), ti2.indices.numpy())


@settings(max_examples=60, deadline=None)
@given(case=values_and_dim(st.sampled_from([0.0, 1.0, 1.0, 2.0, -3.0, 2.5])))
def test_mode_matches_pytorch_smallest_of_the_most_frequent_at_its_last_place(case):
    a, dim = case
    if a.ndim and a.shape[dim] == 0:
        with pytest.raises(ValueError, match="mode: dim .* is empty"):
            gt.mode(a, dim)
        return
    x, tx = _both(a)
    ours, theirs = _agree(x.mode(dim), tx.mode(dim), x, tx)
    np.testing.assert_array_equal(ours, theirs)


def test_nansum_and_nanmean_give_no_gradient_to_nan():
    a = np.array([[1.5, NAN, -0.5], [NAN, NAN, 2.0]])
    x, tx = _both(a)
    for op, kw in (
        ("nansum", {}),
        ("nanmean", {"dim": 1}),
        ("nanmean", {"dim": 1, "keepdim": True}),
    ):
        ours, theirs = _agree(getattr(x, op)(**kw), getattr(torch, op)(tx, **kw), x, tx)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
        assert (ours[np.isnan(a)] == 0).all()
    assert gt.nansum(np.array([1, 2], np.int32)).dtype == gt.int64
    with pytest.raises(TypeError, match="nanmean: expected a floating point tensor"):
        gt.nanmean(np.array([1, 2]))


def test_nanmean_of_an_all_nan_slice_is_nan_with_zero_gradient():
    x, tx = _both([[NAN, 1.0], [NAN, 2.0]])
    ours, theirs = _agree(x.nanmean(0), tx.nanmean(0), x, tx)
    assert np.isnan(theirs[:, 0]).all()  # PyTorch: 0 * inf
    np.testing.assert_array_equal(ours[:, 0], 0)
    np.testing.assert_allclose(ours[:, 1], theirs[:, 1])


def test_empty_scans():
    x = gt.zeros((2, 0), dtype=gt.float64, requires_grad=True)
    for op in ("cumsum", "cumprod", "logcumsumexp"):
        y = getattr(x, op)(1)
        assert y.shape == (2, 0)
        assert gt.grad(y.sum(), [x])[0].shape == (2, 0)
    v, i = x.cummax(1)
    assert v.shape == i.shape == (2, 0)
    assert gt.grad(v.sum(), [x])[0].shape == (2, 0)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda x: gt.cumsum(x, 2),
            ValueError,
            r"^cumsum: dim 2 is out of range for a tensor of 2",
        ),
        (lambda x: x.cumprod(-3), ValueError, r"^cumprod: dim -3 is out of range"),
        (lambda x: x.cummax(1.0), TypeError, r"^cummax: dim must be an int"),
        (lambda x: x.cummin(True), TypeError, r"^cummin: dim must be an int"),
        (lambda x: gt.cumsum(x), TypeError, r"^cumsum"),
        (lambda x: x.logcumsumexp(5), ValueError, r"^logcumsumexp: dim 5"),
        (lambda x: x.argsort(2), ValueError, r"^argsort: dim 2"),
        (lambda x: x.mode(2), ValueError, r"^mode: dim 2"),
        (lambda x: x.count_nonzero(3), ValueError, r"^count_nonzero: axis 3"),
        (lambda x: x.nansum(dim=2), ValueError, r"^nansum: axis 2"),
        (lambda x: gt.logcumsumexp(gt.tensor([1, 2]), 0), TypeError, r"^logcumsumexp: expected a"),
    ],
)
def test_bad_arguments_are_refused_naming_the_op(call, error, match):
    with pytest.raises(error, match=match):
        call(gt.ones((3, 4)))


@pytest.mark.cuda
def test_on_the_gpu_values_match_the_cpu_and_nothing_waits_for_the_device():
    import cupy

    a = np.array([[2.0, 0.0, 3.0, 3.0, -1.0], [1.0, 1.0, NAN, 0.5, 0.0]])
    calls = [
        lambda t: t.cumsum(1),
        lambda t: t.cumprod(1),
        lambda t: t.cummax(1).values,
        lambda t: t.cummin(0).values,
        lambda t: t.logcumsumexp(1),
        lambda t: t.mode(1).values,
        lambda t: t.nansum(1),
        lambda t: t.nanmean(0),
    ]
    for fn in calls:
        xc = gt.tensor(a, requires_grad=True)
        xg = gt.tensor(a, device="cuda", requires_grad=True)
        if hasattr(cupy, "reset_sync_count"):
            cupy.reset_sync_count()
        yc, yg = fn(xc), fn(xg)
        (gg,) = gt.grad(yg, [xg], gt.ones(yg.shape, dtype=yg.dtype, device="cuda"))
        if hasattr(cupy, "sync_count"):
            assert cupy.sync_count() == 0, dict(cupy.SYNCS)
        (gc,) = gt.grad(yc, [xc], gt.ones(yc.shape, dtype=yc.dtype))
        np.testing.assert_allclose(yg.detach().cpu().numpy(), yc.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(gg.cpu().numpy(), gc.numpy(), rtol=1e-12)
    xg = gt.tensor(a, device="cuda")
    for name, kw in (("argsort", {"dim": 1, "descending": True}), ("count_nonzero", {"dim": 0})):
        got = getattr(xg, name)(**kw)
        assert got.device == xg.device
        np.testing.assert_array_equal(got.cpu().numpy(), getattr(gt.tensor(a), name)(**kw).numpy())
    assert xg.cummax(1).indices.device == xg.device
