"""Indexing and shape ops against PyTorch and NumPy: hypothesis properties for getitem/setitem
(every index kind) and gather/scatter, and PyTorch idioms for the ops of gradtensor/ops/indexing.py
(values, dtypes, gradients)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor.ops import REGISTRY
from gradtensor.testing import gradcheck, gradgradcheck, sample_call, twin

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TF = torch.nn.functional

FULL = slice(None)


def T(a, dtype=None, requires_grad=False):
    """A tensor of a's NumPy dtype (gt.tensor, like torch.tensor, makes floats float32)."""
    return gt.tensor(a, dtype=np.asarray(a).dtype if dtype is None else dtype,
                     requires_grad=requires_grad)  # fmt: skip


# -- random keys ------------------------------------------------------------------------------


@st.composite
def keys(draw, unique: bool = False):
    """(shape, per-dim items, key): a key of every index kind for a random shape.

    per-dim items are what each dim of x is indexed by (None/Ellipsis excluded), so the test can
    build PyTorch's equivalent of negative steps (PyTorch takes none) by flipping those dims.
    `unique`: no index array repeats a position (setitem's value would be ambiguous).
    """
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    n_arr = draw(st.integers(1, 3))  # the length every index array shares (they broadcast)
    mask_dim = draw(st.one_of(st.none(), st.integers(0, len(shape) - 1)))
    items = []
    for d, n in enumerate(shape):
        if d == mask_dim:
            items.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
            continue
        kinds = ["int", "slice", "full"] + ([] if mask_dim is not None else ["array", "list"])
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            step = draw(st.sampled_from([1, 2, 3, -1, -2]))
            start = draw(st.one_of(st.none(), st.integers(-n, n)))
            stop = draw(st.one_of(st.none(), st.integers(-n - 1, n)))
            items.append(slice(start, stop, step))
        elif kind == "full":
            items.append(FULL)
        else:
            if unique:
                k = min(n_arr, n)
                perm = draw(st.permutations(range(n)))
                idx = list(perm[:k])
                if k < n_arr:  # the arrays must share a length: fall back to a slice
                    items.append(FULL)
                    continue
            else:
                idx = draw(st.lists(st.integers(-n, n - 1), min_size=n_arr, max_size=n_arr))
            items.append(np.array(idx) if kind == "array" else idx)
    key = list(items)
    if draw(st.booleans()):  # an Ellipsis for a run of whole dims (possibly none)
        p = draw(st.integers(0, len(key)))
        k = 0
        while p + k < len(key) and key[p + k] is FULL and draw(st.booleans()):
            k += 1
        key[p : p + k] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):  # new axes anywhere
        key.insert(draw(st.integers(0, len(key))), None)
    return shape, items, tuple(key)


def _torch_key(shape, items, key):
    """PyTorch's key for `key` on x flipped along the returned dims (negative steps as flips)."""
    flips, mapped = [], {}
    for d, (n, k) in enumerate(zip(shape, items)):
        if isinstance(k, slice) and (k.step or 1) < 0:
            r = range(*k.indices(n))
            first = n - 1 - r[0] if len(r) else 0
            mapped[d] = slice(first, first + (len(r) - 1) * -k.step + 1 if len(r) else 0, -k.step)
            flips.append(d)
    out, d = [], 0
    pos = iter(range(len(items)))
    consumed = [k for k in key if k is not None and k is not Ellipsis]
    n_ell = len(items) - len(consumed)
    for k in key:
        if k is None:
            out.append(None)
        elif k is Ellipsis:
            out.append(Ellipsis)
            for _ in range(n_ell):
                next(pos)
        else:
            d = next(pos)
            k = mapped.get(d, k)
            out.append(torch.from_numpy(k) if isinstance(k, np.ndarray) else k)
    return flips, tuple(out)


def _mixes_ints_and_arrays(key):
    """Whether NumPy may order the result's axes otherwise than PyTorch: ints, or an Ellipsis,
    beside index arrays (PyTorch's order is gradtensor's)."""
    key = key if isinstance(key, tuple) else (key,)
    ints = any((isinstance(k, int) and type(k) is not bool) or k is Ellipsis for k in key)
    return ints and any(isinstance(k, (np.ndarray, list)) for k in key)


@settings(max_examples=150, deadline=None)
@given(case=keys(), seed=st.integers(0, 2**16))
def test_getitem_matches_numpy_values_and_pytorch_gradients(case, seed):
    shape, items, key = case
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape)
    x = T(x0, requires_grad=True)
    y = x[key]
    if not _mixes_ints_and_arrays(key):  # NumPy's axes order differs there; PyTorch's below
        np.testing.assert_array_equal(y.detach().numpy(), x0[key])
    flips, tkey = _torch_key(shape, items, key)
    xt = torch.tensor(x0, requires_grad=True)
    yt = (xt.flip(flips) if flips else xt)[tkey]
    assert y.shape == tuple(yt.shape)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    g = rng.standard_normal(y.shape)
    y.backward(T(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    case=keys(unique=True),
    seed=st.integers(0, 2**16),
    drop=st.integers(0, 2),
    ones=st.booleans(),
    inplace=st.booleans(),
)
def test_setitem_matches_pytorch_values_and_gradients_to_x_and_value(
    case, seed, drop, ones, inplace
):
    shape, items, key = case
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape)
    target = x0[key].shape if not _mixes_ints_and_arrays(key) else None
    flips, tkey = _torch_key(shape, items, key)
    xt = torch.tensor(x0, requires_grad=True)
    base = (xt * 1).flip(flips) if flips else xt * 1
    target = tuple(base[tkey].shape) if target is None else target
    # A value that broadcasts: leading dims dropped, some dims of size 1.
    vshape = tuple(1 if ones and i % 2 else n for i, n in enumerate(target))[
        min(drop, len(target)) :
    ]
    v0 = rng.standard_normal(vshape)
    vt = torch.tensor(v0, requires_grad=True)
    base[tkey] = vt
    yt = base.flip(flips) if flips else base

    x = T(x0, requires_grad=True)
    v = T(v0, requires_grad=True)
    if inplace:
        y = x * 1
        y[key] = v  # Tensor.__setitem__: the in-place path
    else:
        y = gt.setitem(x, v, key)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    if not _mixes_ints_and_arrays(key):
        want = x0.copy()
        want[key] = v0
        np.testing.assert_array_equal(y.detach().numpy(), want)
    g = rng.standard_normal(shape)
    gx, gv = gt.grad(y, [x, v], T(g))
    tgx, tgv = torch.autograd.grad(yt, [xt, vt], torch.from_numpy(g))
    np.testing.assert_allclose(gx.numpy(), tgx.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gv.numpy(), tgv.numpy(), rtol=1e-12, atol=1e-12)


def test_setitem_of_a_leaf_that_needs_no_grad_with_a_value_that_does():
    x = gt.zeros(4, 3, dtype=gt.float64)
    v = T([1.0, 2.0, 3.0], dtype=gt.float64, requires_grad=True)
    x[np.array([True, False, True, False])] = v * 2
    x.sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(x.detach().numpy()[2], [2.0, 4.0, 6.0])


def test_ints_are_taken_before_index_arrays_as_in_pytorch():
    x0 = np.arange(24.0).reshape(2, 3, 4)
    x, xt = T(x0), torch.tensor(x0)
    for key in [(1, FULL, [0, 2]), (FULL, 1, FULL, None), ([0, 1], FULL, -1), (0, [1, 2], [0, 3])]:
        assert x[key].shape == tuple(xt[key].shape), key
        np.testing.assert_array_equal(x[key].numpy(), xt[key].numpy())
    # gradients reach both x and the value, second order included
    v = T(np.ones((3, 2)), requires_grad=True)
    xg = T(x0, requires_grad=True)
    assert gradcheck(lambda a, b: gt.setitem(a, b * b, (1, FULL, [0, 2])), [xg, v])
    assert gradgradcheck(lambda a, b: gt.setitem(a, b * b, (1, FULL, [0, 2])), [xg, v])


# -- gather / scatter -------------------------------------------------------------------------


@st.composite
def gather_cases(draw, unique: bool = False):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    d = dim % len(shape)
    ishape = tuple(draw(st.integers(0 if i != d else 1, n)) for i, n in enumerate(shape))
    if unique:  # distinct positions along dim for each line, so scatter is deterministic
        ishape = ishape[:d] + (min(ishape[d], shape[d]),) + ishape[d + 1 :]
        seed = draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        idx = np.argsort(rng.random(ishape[:d] + (shape[d],) + ishape[d + 1 :]), axis=d)
        idx = np.take(idx, np.arange(ishape[d]), axis=d)
    else:
        idx = np.array(draw(st.lists(st.integers(0, shape[d] - 1), min_size=int(np.prod(ishape)),
                                     max_size=int(np.prod(ishape))))).reshape(ishape)  # fmt: skip
    return shape, dim, idx.astype(np.int64)


def _np_gather(x, dim, idx):
    out = np.empty(idx.shape)
    d = dim % x.ndim
    for pos in np.ndindex(*idx.shape):
        src = list(pos)
        src[d] = idx[pos]
        out[pos] = x[tuple(src)]
    return out


def _np_scatter(x, dim, idx, src, add):
    out = x.copy()
    d = dim % x.ndim
    for pos in np.ndindex(*idx.shape):
        dst = list(pos)
        dst[d] = idx[pos]
        out[tuple(dst)] = out[tuple(dst)] + src[pos] if add else src[pos]
    return out


@settings(max_examples=80, deadline=None)
@given(case=gather_cases(), seed=st.integers(0, 2**16))
def test_gather_matches_numpy_values_and_pytorch_gradients(case, seed):
    shape, dim, idx = case
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape)
    x, xt = T(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    y, yt = gt.gather(x, dim, T(idx)), torch.gather(xt, dim, torch.from_numpy(idx))
    np.testing.assert_array_equal(y.detach().numpy(), _np_gather(x0, dim, idx))
    g = rng.standard_normal(idx.shape)
    y.backward(T(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(case=gather_cases(unique=True), seed=st.integers(0, 2**16), add=st.booleans())
def test_scatter_matches_numpy_values_and_pytorch_gradients(case, seed, add):
    shape, dim, idx = case
    rng = np.random.default_rng(seed)
    x0, s0 = rng.standard_normal(shape), rng.standard_normal(idx.shape)
    x, s = T(x0, requires_grad=True), T(s0, requires_grad=True)
    xt, st_ = torch.tensor(x0, requires_grad=True), torch.tensor(s0, requires_grad=True)
    op, top = (gt.scatter_add, torch.scatter_add) if add else (gt.scatter, torch.scatter)
    y, yt = op(x, dim, idx, s), top(xt, dim, torch.from_numpy(idx), st_)
    np.testing.assert_allclose(y.detach().numpy(), _np_scatter(x0, dim, idx, s0, add), rtol=1e-15)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-15)
    g = rng.standard_normal(shape)
    gx, gs = gt.grad(y, [x, s], T(g))
    tgx, tgs = torch.autograd.grad(yt, [xt, st_], torch.from_numpy(g))
    np.testing.assert_allclose(gx.numpy(), tgx.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gs.numpy(), tgs.numpy(), rtol=1e-12, atol=1e-12)


def test_scatter_add_adds_up_repeats_and_scatter_reads_only_the_index_corner_of_src():
    x = gt.zeros(2, 3, dtype=gt.float64)
    src = T(np.arange(1.0, 13.0).reshape(3, 4), requires_grad=True)
    idx = np.array([[0, 0, 2], [1, 1, 1]])
    y = x.scatter_add(1, idx, src[:2, :3])
    np.testing.assert_array_equal(y.detach().numpy(), [[3.0, 0.0, 3.0], [0.0, 18.0, 0.0]])
    z = gt.scatter(x, 0, np.array([[1, 0]]), src)  # src bigger than the index, as PyTorch allows
    np.testing.assert_array_equal(z.detach().numpy(), [[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    (gs,) = gt.grad(z.sum(), [src])
    want = np.zeros((3, 4))
    want[0, :2] = 1.0
    np.testing.assert_array_equal(gs.numpy(), want)
    np.testing.assert_array_equal(gt.scatter(x, 1, np.array([[2], [0]]), value=7.0).numpy(),
                                  [[0.0, 0.0, 7.0], [7.0, 0.0, 0.0]])  # fmt: skip


# -- PyTorch idioms for the new ops -----------------------------------------------------------


def _both(x0, requires_grad=True):
    return T(x0, requires_grad=requires_grad), torch.tensor(x0, requires_grad=requires_grad)


def _same(y, yt, xs, xts, rtol=1e-12):
    """Values, shapes, dtypes and (for float results) gradients of y and PyTorch's yt agree."""
    assert y.shape == tuple(yt.shape)
    assert str(y.dtype) == str(yt.dtype).removeprefix("torch."), (y.dtype, yt.dtype)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=1e-14)
    if y.requires_grad:
        g = np.random.default_rng(0).standard_normal(y.shape)
        grads = gt.grad(y, xs, T(g, dtype=y.dtype), allow_unused=True)
        tgrads = torch.autograd.grad(yt, xts, torch.tensor(g, dtype=yt.dtype), allow_unused=True)
        for a, b, t in zip(grads, tgrads, xs):
            assert (a is None) == (b is None), "a gradient on one side only"
            a = np.zeros(t.shape) if a is None else a.numpy()
            b = np.zeros(t.shape) if b is None else b.numpy()
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)


PADS = [
    ((2, 3), (1, 2), "constant", None),
    ((2, 3, 4), (1, 0, 2, 3), "constant", -2.5),
    ((2, 5), (-2, 1), "constant", 1.0),
    ((1, 2, 3, 4, 5), (1, 1, 0, 2, 3, 0), "constant", None),
    ((3, 4), (3, 2), "reflect", None),
    ((2, 3, 4), (1, 2), "reflect", None),
    ((1, 2, 4, 5), (4, 3, 1, 3), "reflect", None),
    ((1, 2, 3, 3, 2), (1, 1, 2, 2, 1, 0), "reflect", None),
    ((2, 3), (4, 5), "replicate", None),
    ((1, 2, 3, 4), (2, 0, 1, 3), "replicate", None),
    ((2, 2, 3, 2, 2), (1, 2, 0, 1, 2, 2), "replicate", None),
    ((2, 3), (3, 2), "circular", None),
    ((1, 2, 3, 4), (4, 1, 3, 2), "circular", None),
    ((1, 1, 2, 3, 2), (1, 1, 1, 1, 2, 0), "circular", None),
]


@pytest.mark.parametrize("shape,pads,mode,value", PADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pad_matches_pytorch_in_every_mode(shape, pads, mode, value, dtype):
    x0 = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    x, xt = _both(x0)
    kw = {} if value is None else {"value": value}
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    _same(F.pad(x, pads, mode=mode, **kw), TF.pad(xt, pads, mode=mode, **kw), [x], [xt], rtol)
    assert gt.pad is F.pad


def test_pad_of_an_int_tensor_keeps_its_dtype_and_refuses_what_pytorch_refuses():
    x = T([[1, 2], [3, 4]])
    y = gt.pad(x, (1, 1), value=7)
    assert y.dtype == gt.int64 and y.numpy().tolist() == [[7, 1, 2, 7], [7, 3, 4, 7]]
    with pytest.raises(ValueError, match="pad: reflect padding"):
        gt.pad(gt.ones(1, 3), (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="pad: circular padding"):
        gt.pad(gt.ones(1, 3), (4, 0), mode="circular")


@pytest.mark.parametrize(
    "shape,shifts,dims",
    [((5,), 2, None), ((3, 4), -5, None), ((3, 4), 1, 0), ((3, 4), (1, -2), (0, 1)),
     ((2, 3, 4), (7, 1), (-1, 0)), ((0, 3), 2, 0), ((3, 4), (1, 1), (1, 1))],
)  # fmt: skip
def test_roll_matches_pytorch(shape, shifts, dims):
    x, xt = _both(np.random.default_rng(2).standard_normal(shape))
    _same(x.roll(shifts, dims), torch.roll(xt, shifts, dims), [x], [xt])
    np.testing.assert_array_equal(gt.roll(x, shifts, dims).detach().numpy(),
                                  np.roll(x.detach().numpy(), shifts, dims))  # fmt: skip


def test_repeat_interleave_matches_pytorch():
    x0 = np.random.default_rng(3).standard_normal((2, 3))
    x, xt = _both(x0)
    _same(x.repeat_interleave(2), xt.repeat_interleave(2), [x], [xt])
    _same(x.repeat_interleave(3, dim=0), xt.repeat_interleave(3, dim=0), [x], [xt])
    r = np.array([2, 0, 1])
    _same(gt.repeat_interleave(x, T(r), dim=1),
          torch.repeat_interleave(xt, torch.from_numpy(r), dim=1), [x], [xt])  # fmt: skip
    _same(gt.repeat_interleave(x, T([2]), dim=-1),
          torch.repeat_interleave(xt, torch.tensor([2]), dim=-1), [x], [xt])  # fmt: skip
    counts = gt.repeat_interleave(T([1, 0, 3]))
    assert counts.dtype == gt.int64 and counts.numpy().tolist() == [0, 2, 2, 2]
    with pytest.raises(ValueError, match="repeat_interleave: 2 repeats for a dim of size 3"):
        x.repeat_interleave(T([1, 2]), dim=1)


@pytest.mark.parametrize("k", [-2, 0, 1, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.bool_])
def test_tril_triu_match_pytorch_with_dtypes(k, dtype):
    x0 = (np.random.default_rng(4).standard_normal((2, 3, 4)) * 3).astype(dtype)
    grad = dtype in (np.float64, np.float32)
    x, xt = _both(x0, requires_grad=grad)
    _same(x.tril(k), xt.tril(k), [x], [xt])
    _same(gt.triu(x, diagonal=k), torch.triu(xt, diagonal=k), [x], [xt])


def test_diag_diagonal_trace_match_pytorch():
    rng = np.random.default_rng(5)
    for k in (-2, -1, 0, 1, 3):
        v, vt = _both(rng.standard_normal(3))
        _same(v.diag(k), vt.diag(k), [v], [vt])
        m, mt = _both(rng.standard_normal((3, 4)))
        _same(gt.diag(m, k), torch.diag(mt, k), [m], [mt])
    x, xt = _both(rng.standard_normal((2, 3, 4, 5)))
    for offset, d1, d2 in [(0, 0, 1), (1, 2, 3), (-1, 3, 1), (2, -1, 0), (9, 0, 1)]:
        _same(x.diagonal(offset, d1, d2), xt.diagonal(offset, d1, d2), [x], [xt])
    m, mt = _both(rng.standard_normal((3, 4)))
    _same(m.trace(), mt.trace(), [m], [mt])
    i = T([[1, 2], [3, 4]])
    assert i.trace().dtype == gt.int64 and int(i.trace().item()) == 5
    assert gt.diag(T([1, 2])).dtype == gt.int64


def test_gather_index_select_narrow_unbind_match_pytorch():
    rng = np.random.default_rng(6)
    x, xt = _both(rng.standard_normal((3, 4, 5)))
    idx = np.array([3, 0, 0, 2])
    _same(x.index_select(1, T(idx)), xt.index_select(1, torch.from_numpy(idx)), [x], [xt])
    _same(x.index_select(-1, idx), xt.index_select(-1, torch.from_numpy(idx)), [x], [xt])
    gi = rng.integers(0, 4, (3, 2, 5))
    _same(x.gather(1, T(gi)), xt.gather(1, torch.from_numpy(gi)), [x], [xt])
    _same(x.narrow(2, -3, 2), xt.narrow(2, -3, 2), [x], [xt])
    _same(gt.narrow(x, 0, 1, 0), torch.narrow(xt, 0, 1, 0), [x], [xt])
    parts, tparts = x.unbind(1), xt.unbind(1)
    assert len(parts) == len(tparts) == 4
    for p, tp in zip(parts, tparts):
        _same(p, tp, [x], [xt])
    with pytest.raises(IndexError, match="gather: index 4 is out of bounds for dim 1 of size 4"):
        x.gather(1, T(np.full((1, 1, 1), 4)))


def test_masked_fill_and_masked_select_match_pytorch():
    rng = np.random.default_rng(7)
    x, xt = _both(rng.standard_normal((3, 4)))
    m = rng.random((3, 4)) > 0.5
    _same(x.masked_fill(T(m), -1.5), xt.masked_fill(torch.from_numpy(m), -1.5), [x], [xt])
    v, vt = _both(np.array(2.5))
    _same(x.masked_fill(m[0], v), xt.masked_fill(torch.from_numpy(m[0]), vt), [x, v], [xt, vt])
    _same(x.masked_select(T(m)), xt.masked_select(torch.from_numpy(m)), [x], [xt])
    col = m[:, :1]
    _same(gt.masked_select(x[:1], col), torch.masked_select(xt[:1], torch.from_numpy(col)), [x],
          [xt])  # fmt: skip
    i = T([[1, 2], [3, 4]])
    it = torch.tensor([[1, 2], [3, 4]])
    mm = np.array([True, False])
    _same(i.masked_fill(mm, 9.7), it.masked_fill(torch.from_numpy(mm), 9.7), [], [])
    with pytest.raises(TypeError, match="masked_fill: the mask must be a bool tensor"):
        x.masked_fill(T(m.astype(np.int64)), 0.0)


def test_one_hot_matches_pytorch_and_has_no_gradient():
    c = np.array([[0, 3], [2, 2]])
    y, yt = F.one_hot(T(c)), TF.one_hot(torch.from_numpy(c))
    _same(y, yt, [], [])
    _same(gt.one_hot(T(c), num_classes=6), TF.one_hot(torch.from_numpy(c), 6), [], [])
    assert not y.requires_grad and y.dtype == gt.int64
    with pytest.raises(ValueError, match=r"one_hot: class values must be in \[0, 3\)"):
        gt.one_hot(T([0, 3]), 3)
    with pytest.raises(ValueError, match="one_hot: cannot infer the number of classes"):
        gt.one_hot(gt.zeros(0, dtype=gt.int64))


def test_nonzero_and_argwhere_match_pytorch():
    x0 = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    x, xt = T(x0, requires_grad=True), torch.tensor(x0)
    _same(x.nonzero(), xt.nonzero(), [], [])
    _same(gt.argwhere(x), torch.argwhere(xt), [], [])
    for a, b in zip(x.nonzero(as_tuple=True), xt.nonzero(as_tuple=True)):
        _same(a, b, [], [])
    for v in (0.0, 3.0):
        got, want = T(v).nonzero(as_tuple=True), torch.tensor(v).nonzero(as_tuple=True)
        assert [t.numpy().tolist() for t in got] == [t.numpy().tolist() for t in want]
        _same(T(v).nonzero(), torch.tensor(v).nonzero(), [], [])
    assert not x.nonzero().requires_grad


def test_stacks_meshgrid_and_ravel_match_pytorch():
    rng = np.random.default_rng(8)
    shapes = [[(3,), (3,)], [(2, 3), (1, 3)], [(), ()], [(2, 3, 2), (2, 3, 1)]]
    for fn in ("vstack", "hstack", "dstack"):
        for ss in shapes:
            pairs = [_both(rng.standard_normal(s)) for s in ss]
            xs, xts = [p[0] for p in pairs], [p[1] for p in pairs]
            try:
                want = getattr(torch, fn)(xts)
            except RuntimeError:
                continue  # shapes PyTorch refuses too
            _same(getattr(gt, fn)(xs), want, xs, xts)
    a, at = _both(rng.standard_normal(3))
    b, bt = _both(rng.standard_normal(2))
    c, ct = _both(np.array(0.5))
    for grids, tgrids in [
        (gt.meshgrid(a, b), torch.meshgrid(at, bt, indexing="ij")),  # PyTorch's default
        (gt.meshgrid([a, b, c], indexing="xy"), torch.meshgrid([at, bt, ct], indexing="xy")),
    ]:
        assert len(grids) == len(tgrids)
        for g, tg in zip(grids, tgrids):
            _same(g, tg, [a, b], [at, bt])
    x, xt = _both(rng.standard_normal((2, 3)))
    _same(x.T.ravel(), xt.T.ravel(), [x], [xt])


def test_second_order_gradients_through_the_new_ops():
    rng = np.random.default_rng(9)
    x = T(rng.standard_normal((3, 4)), requires_grad=True)
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    fns = [
        lambda t: gt.gather(t * t, 1, idx),
        lambda t: gt.scatter_add(t, 1, idx, (t * t)[:, :2]),
        lambda t: F.pad(t * t, (2, 1), mode="reflect"),
        lambda t: gt.roll(t * t, (1, 2), (0, 1)),
        lambda t: gt.tril(t * t, 1),
        lambda t: gt.diag(t * t).sum() * gt.trace(t),
    ]
    for fn in fns:
        assert gradgradcheck(fn, [x])


def test_the_records_numpy_twins_agree_on_their_samples():
    """The NumPy twins in this family's records give the op's value on each sample."""
    names = [n for n in REGISTRY if REGISTRY[n].numpy is not None and _mine(n)]
    assert len(names) > 20
    for name in names:
        op = REGISTRY[name]
        for sample in op.samples:
            fn, xs = sample_call(op, sample)
            out = fn(*xs)
            args = [a.detach().numpy() if isinstance(a, gt.Tensor) else
                    [t.detach().numpy() for t in a] if isinstance(a, list) and a and
                    isinstance(a[0], gt.Tensor) else a for a in fn.args]  # fmt: skip
            want = twin(op, np, "numpy")(*args, **sample.kwargs)
            outs = out if isinstance(out, (list, tuple)) else [out]
            wants = want if isinstance(want, (list, tuple)) else [want]
            for o, w in zip(outs, wants, strict=True):
                np.testing.assert_allclose(o.detach().numpy(), w, err_msg=f"{name}: {sample}")


def _mine(name: str) -> bool:
    fn = getattr(REGISTRY[name], "fn", None) or getattr(REGISTRY[name], "fwd", None)
    return getattr(fn, "__module__", "").endswith(("ops.shape", "ops.indexing"))
