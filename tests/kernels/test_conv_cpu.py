"""conv2d's im2col / col2im loops against the array path's unfold / fold, and the op on them."""

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import kernels
from gradtensor.ops import conv

# (x shape, kernel, stride, dilation, padding as (top, bottom, left, right))
CASES = [
    ((2, 3, 7, 6), (3, 2), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 2, 9, 8), (3, 3), (2, 1), (1, 2), (1, 2, 0, 1)),
    ((1, 4, 5, 5), (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
    ((3, 1, 6, 7), (2, 2), (3, 2), (2, 1), (1, 0, 1, 1)),
]


def _sizes(shape, k, s, d, p):
    return conv._blocks("test", shape[2:], k, d, p, s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("shape", "k", "s", "d", "p"), CASES)
def test_im2col_and_col2im_are_unfold_and_fold(dtype, shape, k, s, d, p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    size = _sizes(shape, k, s, d, p)
    got = kernels.im2col(x, k, s, d, p, size)
    want = conv._unfold_arrays(np, x, kernel_size=k, dilation=d, padding=p, stride=s)
    assert got.dtype == x.dtype and np.array_equal(got, want)
    c = rng.standard_normal(want.shape).astype(dtype)
    back = kernels.col2im(c, shape, k, s, d, p, size)
    folded = conv._fold_arrays(np, c, output_size=shape[2:], kernel_size=k, dilation=d,
                               padding=p, stride=s)  # fmt: skip
    assert back.shape == shape and back.dtype == x.dtype
    np.testing.assert_allclose(back, folded, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize(("shape", "k", "s", "d", "p"), CASES)
def test_col2im_is_im2cols_transpose(shape, k, s, d, p):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im adds each block back."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    size = _sizes(shape, k, s, d, p)
    cols = kernels.im2col(x, k, s, d, p, size)
    c = rng.standard_normal(cols.shape)
    back = kernels.col2im(c, shape, k, s, d, p, size)
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)


def test_blocks_arrays_are_handed_out_again_only_once_nobody_holds_them():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6))
    args = ((3, 3), (1, 1), (1, 1), (0, 0, 0, 0), (4, 4))
    first = kernels.im2col(x, *args)
    held = first.copy()
    second = kernels.im2col(x * 2, *args)
    assert second is not first and np.array_equal(first, held)  # the first is still held
    del second
    third = kernels.im2col(x * 3, *args)  # the second's array, free again
    assert np.array_equal(first, held) and np.array_equal(third, 3 * held)
    view = third[0]
    del third
    fourth = kernels.im2col(x, *args)  # a view holds the third's array: not handed out
    assert np.array_equal(view, 3 * held[0]) and np.array_equal(fourth, held)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "padding", "kernel_way"),
    [((4, 6, 14, 14), (16, 6, 5, 5), 0, True), ((2, 4, 8, 8), (4, 4, 3, 3), 1, True)],
    ids=["col2im", "g as a convolution"],
)
def test_the_op_agrees_with_and_without_kernels(x_shape, w_shape, padding, kernel_way):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1])]
    impl = conv._conv2d_gemm.impls[0]
    x, w, b = arrays
    pads = (padding,) * 4
    chosen = impl.accepts(x, w, b, stride=(1, 1), padding=pads, dilation=(1, 1))
    assert chosen == kernel_way
    results = []
    for on in (True, False):
        leaves = [gt.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
        with gt.use_kernels(on):
            y = F.conv2d(*leaves, padding=padding)
            (y * y).sum().backward()
        results.append([y.data] + [t.grad.data for t in leaves])
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_what_the_loops_do_not_take_goes_to_the_array_path():
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32)
    assert kernels.conv_accepts(x, w)
    assert not kernels.conv_accepts(x.astype(np.float16), w.astype(np.float16))
    assert not kernels.conv_accepts(x, w.astype(np.float64))
    assert not kernels.conv_accepts(x.tolist(), w)


# (x shape, kernel, stride, dilation, padding): max_pool2d's windows, overlapping ones included
POOLS = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (1, 1), (0, 0, 0, 0)),
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), (1, 2, 1, 2)),  # ceil_mode's extra padding at the end
    ((2, 2, 8, 7), (3, 2), (2, 1), (2, 1), (1, 1, 0, 0)),
    ((1, 1, 5, 5), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("shape", "k", "s", "d", "p"), POOLS)
def test_max_pool_loops_are_the_array_paths_window_max_and_its_gradient(dtype, shape, k, s, d, p):
    """The same maxima and places (the first maximum, the first NaN; ties, -inf and the padding
    included), and the gradient at those places."""
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)  # rounded: many ties
    x.flat[::7] = -np.inf
    x.flat[5] = np.nan
    args = dict(kernel_size=k, dilation=d, padding=p, stride=s)
    size = _sizes(shape, k, s, d, p)
    y, at = kernels.max_pool2d_forward(x, k, s, d, p, size)
    want_y, want_at = conv._window_max(np, x, **args)
    assert y.dtype == x.dtype and at.dtype == want_at.dtype
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(at, want_at)
    g = rng.standard_normal(y.shape).astype(dtype)
    g.flat[0] = np.inf  # goes to one place only: nowhere else does it make a NaN
    gx = kernels.max_pool2d_backward(g, at, shape, k, s, d, p)
    want = conv._max_pool2d_grad(g, None, x, aux=want_at, **args)
    assert gx.shape == shape and gx.dtype == x.dtype
    np.testing.assert_allclose(gx, want, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_max_pool_op_agrees_with_and_without_kernels_to_second_order():
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal((2, 3, 7, 6))
    results = []
    for on in (True, False):
        x = gt.tensor(x0, requires_grad=True)
        with gt.use_kernels(on):
            y = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
            (gx,) = gt.autograd.grad((y * y).sum(), x, create_graph=True)
            (gx * gx).sum().backward()
        assert (y.grad_fn.impl is not None) == on  # the node says which ran
        results.append([y.data, gx.data, x.grad.data])
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)
