"""Convolution and pooling against PyTorch: modules with copied weights (values, gradients, repr,
initial weights), a grid of conv2d configurations, max_pool's ties and indices, errors."""

import itertools
import math
import warnings

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TF = torch.nn.functional


def _pair(shape, seed=0, values=None):
    a = np.random.default_rng(seed).standard_normal(shape) if values is None else values
    return gt.tensor(a, dtype=gt.float64, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(a, b, what=""):
    np.testing.assert_allclose(
        a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=what
    )


def _torch_quiet(fn, *args, **kw):
    with warnings.catch_warnings():  # PyTorch warns that 'same' with even kernels copies
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kw)


# -- modules against PyTorch's, weights copied ------------------------------------------------

MODULES = [
    ("Conv1d", (4, 6, 3), {}, (2, 4, 9)),
    ("Conv1d", (4, 6, 4), dict(stride=2, padding=3, dilation=2, groups=2, bias=False), (2, 4, 11)),
    ("Conv1d", (3, 2, 4), dict(padding="same", padding_mode="circular"), (2, 3, 7)),
    ("Conv2d", (3, 5, 3), dict(padding=1), (2, 3, 6, 7)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), groups=2), (2, 4, 7, 6)),
    ("Conv2d", (2, 3, 4), dict(padding="same", dilation=(1, 2)), (1, 2, 6, 9)),
    ("Conv2d", (2, 3, 3), dict(padding=2, padding_mode="reflect", bias=False), (2, 2, 5, 5)),
    ("Conv2d", (2, 4, 3), dict(padding=1, padding_mode="replicate", stride=2), (2, 5, 6)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 4, 5)),
    ("ConvTranspose2d", (4, 2, (2, 3)), dict(stride=(1, 2), groups=2, dilation=2), (2, 4, 3, 3)),
    ("MaxPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", ((3, 2),), dict(stride=(2, 1), padding=1, dilation=(1, 2)), (2, 2, 9, 8)),
    ("AvgPool1d", (4,), dict(stride=3, padding=2, count_include_pad=False), (2, 3, 11)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    ("AvgPool2d", (2,), dict(divisor_override=3), (3, 6, 6)),
    ("AdaptiveAvgPool2d", ((3, 4),), {}, (2, 3, 7, 9)),
    ("AdaptiveAvgPool2d", ((None, 2),), {}, (2, 3, 5, 5)),
    ("Unfold", (3,), dict(padding=1, stride=2), (2, 3, 6, 5)),
    ("Fold", ((5, 6), 2), dict(dilation=(2, 1)), (2, 8, 15)),
]


@pytest.mark.parametrize("name,args,kw,shape", MODULES, ids=[m[0] for m in MODULES])
def test_module_matches_pytorch_with_copied_weights(name, args, kw, shape):
    tm = _torch_quiet(getattr(torch.nn, name), *args, **kw).double()
    m = getattr(nn, name)(*args, **kw)
    assert repr(m) == repr(tm)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    m.to(dtype=gt.float64)
    x, xt = _pair(shape)
    y, yt = m(x), _torch_quiet(tm, xt)
    _close(y, yt, f"{name} output")
    v = np.random.default_rng(1).standard_normal(yt.shape)
    y.backward(gt.tensor(v, dtype=gt.float64))
    yt.backward(torch.from_numpy(v))
    _close(x.grad, xt.grad, f"{name} input gradient")
    for (k, p), (kt, pt) in zip(m.named_parameters(), tm.named_parameters()):
        assert k == kt
        _close(p.grad, pt.grad, f"{name} gradient of {k}")


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Conv2d(6, 8, (3, 5), groups=2),
        lambda: nn.Conv1d(3, 4, 7),
        lambda: nn.ConvTranspose2d(4, 6, 3, groups=2),
    ],
)
def test_initial_weights_are_pytorchs_distribution(make):
    gt.manual_seed(0)
    m = make()
    fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and PyTorch's bias
    for p in (m.weight, m.bias):
        assert np.abs(p.detach().numpy()).max() <= bound
    w = m.weight.detach().numpy()
    assert np.abs(w).max() > 0.9 * bound  # spread over the whole range, not a narrower one
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.2)


def test_conv_transpose_output_size_picks_the_output_padding():
    m, tm = nn.ConvTranspose2d(2, 3, 3, stride=3), torch.nn.ConvTranspose2d(2, 3, 3, stride=3)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x, xt = _pair((1, 2, 4, 4))
    x, xt = x.astype(gt.float32), xt.float()
    for size in [(12, 12), (13, 14), (1, 2, 14, 12)]:
        assert m(x, output_size=size).shape == tuple(tm(xt, output_size=size).shape)
    with pytest.raises(ValueError, match="ConvTranspose2d: output_size .* is not reachable"):
        m(x, output_size=(15, 12))


def test_modules_refuse_bad_arguments_by_name():
    with pytest.raises(ValueError, match="Conv2d: in_channels .* must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2d: padding='same' needs stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv1d: padding_mode must be one of"):
        nn.Conv1d(3, 4, 3, padding_mode="wrap")
    with pytest.raises(ValueError, match="Conv2d: kernel_size must be an int or 2 ints"):
        nn.Conv2d(3, 4, (3, 3, 3))


# -- conv2d on a grid of configurations -------------------------------------------------------

GRID = [
    (s, p, d, g)
    for s, p, d, g in itertools.product(
        [1, 2, (1, 3)], [0, 1, (2, 0), "same", "valid"], [1, 2], [1, 2]
    )
    if not (p == "same" and s != 1)
]


@pytest.mark.parametrize("stride,padding,dilation,groups", GRID)
def test_conv2d_grid_matches_pytorch(stride, padding, dilation, groups):
    x, xt = _pair((2, 4, 7, 8), seed=2)
    w, wt = _pair((6, 4 // groups, 3, 2), seed=3)  # an even kernel width: 'same' is asymmetric
    b, bt = _pair((6,), seed=4)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = F.conv2d(x, w, b, **args)
    yt = _torch_quiet(TF.conv2d, xt, wt, bt, **args)
    _close(y, yt, "conv2d")
    v = np.random.default_rng(5).standard_normal(yt.shape)
    gx, gw, gb = gt.grad(y, [x, w, b], gt.tensor(v, dtype=gt.float64))
    tg = torch.autograd.grad(yt, [xt, wt, bt], torch.from_numpy(v))
    for g, t, what in zip((gx, gw, gb), tg, ("input", "weight", "bias")):
        _close(g, t, f"conv2d gradient of the {what}")


def test_conv2d_second_order_matches_pytorch():
    """The gradient of a gradient (a Hessian-vector product) through unfold, fold and matmul."""
    x, xt = _pair((2, 3, 6, 6))
    w, wt = _pair((4, 3, 3, 3), seed=1)
    y = F.conv2d(x, w, stride=2, padding=1) ** 2
    (gx,) = gt.grad(y.sum(), [x], create_graph=True)
    hx, hw = gt.grad((gx * gx).sum(), [x, w])
    yt = TF.conv2d(xt, wt, stride=2, padding=1) ** 2
    (gxt,) = torch.autograd.grad(yt.sum(), [xt], create_graph=True)
    hxt, hwt = torch.autograd.grad((gxt * gxt).sum(), [xt, wt])
    _close(hx, hxt, "second derivative, input")
    _close(hw, hwt, "second derivative, weight")


def test_float32_stays_float32_and_unbatched_inputs_work():
    x = gt.randn(3, 8, 8)
    w = gt.randn(5, 3, 3, 3)
    assert F.conv2d(x, w).dtype == gt.float32 and F.conv2d(x, w).shape == (5, 6, 6)
    assert F.max_pool2d(x, 2).shape == (3, 4, 4) and F.avg_pool2d(x, 2).dtype == gt.float32
    assert F.adaptive_avg_pool2d(x, 1).dtype == gt.float32


def test_empty_batch():
    x, w = gt.zeros((0, 3, 5, 5)), gt.randn(2, 3, 3, 3, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (0, 2, 5, 5)
    y.sum().backward()
    assert w.grad.shape == w.shape and not w.grad.numpy().any()


# -- max_pool: ties, indices, NaN -------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=1, padding=1),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    ],
)
def test_max_pool2d_ties_and_indices_match_pytorch(kw):
    # Few distinct values: most windows hold ties; the gradient goes to the first max.
    vals = np.random.default_rng(0).integers(0, 3, (2, 3, 7, 8)).astype(np.float64)
    x, xt = _pair(None, values=vals)
    y, idx = F.max_pool2d(x, return_indices=True, **kw)
    yt, idxt = TF.max_pool2d(xt, return_indices=True, **kw)
    _close(y, yt)
    np.testing.assert_array_equal(idx.numpy(), idxt.numpy())
    assert idx.dtype == gt.int64 and not idx.requires_grad
    v = np.random.default_rng(1).standard_normal(yt.shape)
    y.backward(gt.tensor(v, dtype=gt.float64))
    yt.backward(torch.from_numpy(v))
    _close(x.grad, xt.grad, "max_pool2d gradient on ties")


def test_max_pool1d_ties_and_indices_match_pytorch():
    vals = np.array([[[1.0, 1, 0, 2, 2, 2, -1, 3, 3]]])
    x, xt = _pair(None, values=vals)
    y, idx = F.max_pool1d(x, 3, 2, padding=1, return_indices=True)
    yt, idxt = TF.max_pool1d(xt, 3, 2, padding=1, return_indices=True)
    _close(y, yt)
    np.testing.assert_array_equal(idx.numpy(), idxt.numpy())
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad)


def test_max_pool_propagates_nan_and_takes_infinities():
    vals = np.array([[[[1.0, np.nan, 2.0, -np.inf], [0.0, 3.0, np.inf, 5.0]]]])
    x, xt = _pair(None, values=vals)
    y, yt = F.max_pool2d(x, 2), TF.max_pool2d(xt, 2)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


# -- unfold and fold --------------------------------------------------------------------------


def test_fold_is_unfolds_adjoint():
    """<unfold(x), c> == <x, fold(c)>: each is the other's derivative."""
    rng = np.random.default_rng(0)
    args = dict(kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    x = gt.tensor(rng.standard_normal((2, 3, 7, 6)), dtype=gt.float64)
    cols = F.unfold(x, **args)
    c = gt.tensor(rng.standard_normal(cols.shape), dtype=gt.float64)
    lhs = float((cols * c).sum())
    rhs = float((x * F.fold(c, (7, 6), **args)).sum())
    assert math.isclose(lhs, rhs, rel_tol=1e-12)


def test_conv2d_equals_unfold_then_matmul():
    x, w = gt.randn(2, 3, 6, 5, dtype=gt.float64), gt.randn(4, 3, 3, 3, dtype=gt.float64)
    cols = F.unfold(x, 3, padding=1)
    y = (w.reshape(4, -1) @ cols).reshape(2, 4, 6, 5)
    np.testing.assert_allclose(F.conv2d(x, w, padding=1).numpy(), y.numpy(), rtol=1e-12)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: F.conv2d(gt.randn(1, 3, 5, 5), gt.randn(4, 4, 3, 3)),
         r"conv2d: input has 3 channels but weight expects 4 \(groups=1\)"),
        (lambda: F.conv2d(gt.randn(1, 4, 5, 5), gt.randn(4, 2, 3, 3), groups=3),
         r"conv2d: input has 4 channels but weight expects 6 \(groups=3\)"),
        (lambda: F.conv2d(gt.randn(1, 2, 3, 3), gt.randn(1, 2, 4, 4)),
         "conv2d: the kernel .* is bigger than the padded input"),
        (lambda: F.conv2d(gt.randn(1, 2, 3, 3), gt.randn(1, 2, 2, 2), dilation=3),
         "conv2d: the kernel \\(extent 4 with dilation\\) is bigger"),
        (lambda: F.conv2d(gt.randn(1, 2, 5, 5), gt.randn(3, 1, 3, 3), groups=2),
         "conv2d: groups=2 does not divide the 3 output channels"),
        (lambda: F.conv2d(gt.randn(1, 2, 5, 5), gt.randn(3, 2, 3, 3), stride=2, padding="same"),
         "conv2d: padding='same' needs stride 1"),
        (lambda: F.conv2d(gt.randn(1, 2, 5, 5), gt.randn(3, 2, 3, 3), padding="full"),
         "conv2d: padding must be 'same', 'valid', an int or ints"),
        (lambda: F.conv2d(gt.randn(1, 2, 5, 5), gt.randn(3, 2, 3, 3), stride=0),
         "conv2d: stride must be an int or 2 ints, each at least 1"),
        (lambda: F.conv2d(gt.randn(1, 2, 5, 5), gt.randn(3, 2, 3, 3), gt.randn(2)),
         r"conv2d: bias of shape \(2,\) for 3 output channels"),
        (lambda: F.conv2d(gt.ones((1, 2, 5, 5), dtype=gt.int64), gt.randn(3, 2, 3, 3)),
         "conv2d: expected floating-point tensors, got int64"),
        (lambda: F.conv1d(gt.randn(1, 2, 5, 5), gt.randn(3, 2, 3)),
         "conv1d: expected a 2-D \\(unbatched\\) or 3-D \\(batched\\) input"),
        (lambda: F.conv_transpose2d(gt.randn(1, 2, 4, 4), gt.randn(2, 2, 3, 3), stride=2,
                                    output_padding=2),
         "conv_transpose2d: output_padding \\(2, 2\\) must be smaller than stride or dilation"),
        (lambda: F.max_pool2d(gt.randn(1, 1, 4, 4), 2, padding=2),
         "max_pool2d: padding .* must be at most half of the kernel"),
        (lambda: F.avg_pool2d(gt.randn(1, 1, 2, 2), 3),
         "avg_pool2d: the kernel .* is bigger than the padded input"),
        (lambda: F.adaptive_avg_pool2d(gt.randn(1, 1, 4, 4), (2, 0)),
         "adaptive_avg_pool2d: output_size must be"),
        (lambda: F.fold(gt.randn(1, 12, 7), (5, 6), 2),
         r"fold: input of shape \(1, 12, 7\) does not match"),
        (lambda: F.unfold(gt.randn(4, 4), 2), "unfold: expected a 3-D .* or 4-D"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_naming_the_op(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_a_small_cnn_learns():
    """LeNet-like: conv, pool, conv, adaptive pool, linear; the loss falls on a fixed batch."""
    gt.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    )  # fmt: skip
    head = nn.Linear(8, 3)
    x = gt.randn(12, 1, 8, 8)
    t = gt.tensor(np.arange(12) % 3)
    x = x + gt.tensor(np.arange(12) % 3, dtype=gt.float32).reshape(12, 1, 1, 1)  # learnable
    params = list(model.parameters()) + list(head.parameters())
    opt = gt.optim.Adam(params, lr=0.05)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(head(model(x).reshape(12, 8)), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses
