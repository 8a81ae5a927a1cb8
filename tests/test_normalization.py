"""Normalization layers and embeddings held to PyTorch's modules over several training steps:
outputs, gradients, running statistics, eval mode, state_dict, padding rows, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradtensor as gt
import gradtensor.nn as nn
import gradtensor.nn.functional as F


def _copy_into(ours: nn.Module, theirs: torch.nn.Module) -> None:
    """torch's state (random affine parameters first) into our module, through load_state_dict."""
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p))
    ours.load_state_dict({k: _gt(v.numpy()) for k, v in theirs.state_dict().items()})


def _gt(a, **kw):
    """A tensor of a's values in a's dtype (gt.tensor makes float64 arrays float32, as torch)."""
    return gt.tensor(a, dtype=np.asarray(a).dtype, **kw)


def _close(a, b, rtol=1e-10, atol=1e-12, what=""):
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    np.testing.assert_allclose(a.detach().numpy(), b, rtol=rtol, atol=atol, err_msg=what)


def _steps(ours, theirs, shape, dtype=np.float64, steps=4, lr=0.1):
    """Forward and backward in train mode `steps` times, then an eval forward and backward; a
    plain SGD step on both sides between steps (no optimizer) so each step sees new parameters."""
    rng = np.random.default_rng(0)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    for step in range(steps + 1):
        training = step < steps
        ours.train(training)
        theirs.train(training)
        xa = (rng.standard_normal(shape) * 2 + rng.standard_normal()).astype(dtype)
        va = rng.standard_normal(shape).astype(dtype)
        x = _gt(xa, requires_grad=True)
        xt = torch.tensor(xa, requires_grad=True)
        y, yt = ours(x), theirs(xt)
        assert y.dtype == np.dtype(str(yt.dtype).removeprefix("torch."))
        _close(y, yt, **tol, what=f"output at step {step}")
        ps, pts = list(ours.parameters()), list(theirs.parameters())
        gs = gt.grad(y, [x] + ps, _gt(va))
        gts = torch.autograd.grad(yt, [xt] + pts, torch.tensor(va))
        for k, (g, gt_) in enumerate(zip(gs, gts)):
            _close(g, gt_, **tol, what=f"gradient {k} at step {step}")
        for (name, b), (tname, bt) in zip(ours.named_buffers(), theirs.named_buffers()):
            assert name == tname
            _close(b, bt, **tol, what=f"{name} after step {step}")
            assert b.dtype == np.dtype(str(bt.dtype).removeprefix("torch."))
        with gt.no_grad(), torch.no_grad():
            for p, pt, g, gt_ in zip(ps, pts, gs[1:], gts[1:]):
                p._write(p.data - lr * g.data)
                pt -= lr * gt_


BN_CASES = [
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 3), {}),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5), {"momentum": None}),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5), {"affine": False, "eps": 1e-3}),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3), {"track_running_stats": False}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (2, 3, 4, 5), {}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 2, 3, 3), {"momentum": 0.5, "bias": False}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (2, 4, 3, 3), {"momentum": None}),
]


@pytest.mark.parametrize("ours,theirs,shape,kw", BN_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_matches_torch_over_training_steps_then_eval(ours, theirs, shape, kw, dtype):
    tdtype = getattr(torch, np.dtype(dtype).name)
    m, mt = ours(shape[1], **kw, dtype=dtype), theirs(shape[1], **kw, dtype=tdtype)
    assert list(m.state_dict()) == list(mt.state_dict())
    assert repr(m).split("(")[0] == repr(mt).split("(")[0]
    _copy_into(m, mt)
    _steps(m, mt, shape, dtype)
    if kw.get("track_running_stats", True):
        assert int(m.num_batches_tracked.item()) == 4


def test_batchnorm_state_dict_round_trip_into_torch():
    m = nn.BatchNorm2d(3)
    m.train()
    for _ in range(3):
        m(gt.randn(4, 3, 2, 2, dtype=gt.float32))
    sd = m.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    mt = torch.nn.BatchNorm2d(3)
    mt.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in sd.items()})
    for k, v in mt.state_dict().items():
        assert v.dtype == getattr(torch, str(sd[k].dtype))
        np.testing.assert_array_equal(v.numpy(), sd[k].numpy())
    assert int(mt.num_batches_tracked) == 3
    # and back: eval outputs agree after the round trip
    m2 = nn.BatchNorm2d(3)
    m2.load_state_dict({k: _gt(v.numpy()) for k, v in mt.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2)).astype(np.float32)
    _close(m2.eval()(_gt(x)), mt.eval()(torch.tensor(x)), rtol=1e-6, atol=1e-6)


def test_batchnorm_without_running_stats_has_no_buffers_and_uses_batch_stats_in_eval():
    m = nn.BatchNorm1d(3, track_running_stats=False).eval()
    assert list(m.state_dict()) == ["weight", "bias"]
    x = gt.randn(5, 3)
    mt = torch.nn.BatchNorm1d(3, track_running_stats=False).eval()
    _close(m(x), mt(torch.tensor(x.numpy())), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.1, 0.7])
def test_functional_batch_norm_updates_running_stats_in_place_as_torch(momentum):
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((6, 4, 3))
    rm, rv = gt.zeros(4, dtype=gt.float64), gt.ones(4, dtype=gt.float64)
    rmt, rvt = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    version = rm._version[0]
    for _ in range(3):
        y = F.batch_norm(_gt(xa), rm, rv, training=True, momentum=momentum)
        yt = torch.nn.functional.batch_norm(
            torch.tensor(xa), rmt, rvt, training=True, momentum=momentum
        )
        _close(y, yt)
        xa = xa * 1.5 + 0.3
    _close(rm, rmt)
    _close(rv, rvt)  # the unbiased variance, as PyTorch's
    assert rm._version[0] > version  # written in place: a graph that saved it would refuse it


def test_batch_norm_second_order_matches_torch():
    rng = np.random.default_rng(3)
    xa, wa, va = rng.standard_normal((5, 3, 2)), rng.standard_normal(3), rng.standard_normal(3)
    x, w = _gt(xa, requires_grad=True), _gt(wa, requires_grad=True)
    xt, wt = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    y = (F.batch_norm(x, None, None, w, training=True) ** 3).sum()
    yt = (torch.nn.functional.batch_norm(xt, None, None, wt, training=True) ** 3).sum()
    (gx,) = gt.grad(y, [x], create_graph=True)
    (gxt,) = torch.autograd.grad(yt, [xt], create_graph=True)
    _close(gx, gxt)
    hs = gt.grad((gx.sum(axis=(0, 2)) * _gt(va)).sum(), [x, w])
    hts = torch.autograd.grad((gxt.sum(dim=(0, 2)) * torch.tensor(va)).sum(), [xt, wt])
    for h, ht in zip(hs, hts):
        _close(h, ht, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "shape,normalized,kw",
    [((4, 5), 5, {}), ((2, 3, 4), (3, 4), {"eps": 1e-3}), ((3, 4), [4], {"bias": False}),
     ((2, 3, 4), 4, {"elementwise_affine": False})],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layernorm_matches_torch_over_training_steps(shape, normalized, kw, dtype):
    tdtype = getattr(torch, np.dtype(dtype).name)
    m = nn.LayerNorm(normalized, **kw, dtype=dtype)
    mt = torch.nn.LayerNorm(normalized, **kw, dtype=tdtype)
    assert list(m.state_dict()) == list(mt.state_dict())
    _copy_into(m, mt)
    _steps(m, mt, shape, dtype)


@pytest.mark.parametrize(
    "groups,shape,kw",
    [(3, (2, 6, 4), {}), (1, (3, 4), {}), (4, (2, 4, 3, 3), {"eps": 1e-3}), (2, (2, 4, 5),
     {"affine": False}), (2, (3, 6), {"bias": False})],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_groupnorm_matches_torch_over_training_steps(groups, shape, kw, dtype):
    tdtype = getattr(torch, np.dtype(dtype).name)
    m = nn.GroupNorm(groups, shape[1], **kw, dtype=dtype)
    mt = torch.nn.GroupNorm(groups, shape[1], **kw, dtype=tdtype)
    assert list(m.state_dict()) == list(mt.state_dict())
    _copy_into(m, mt)
    _steps(m, mt, shape, dtype)


@pytest.mark.parametrize(
    "kw",
    [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
     {"padding_idx": 0, "scale_grad_by_freq": True}],
)  # fmt: skip
def test_embedding_gradients_match_torch_with_padding_and_frequencies(kw):
    m, mt = (
        nn.Embedding(6, 3, **kw, dtype=gt.float64),
        torch.nn.Embedding(6, 3, **kw, dtype=torch.float64),
    )
    if "padding_idx" in kw:  # the padding row starts at zero in both
        pad = kw["padding_idx"] % 6
        assert m.padding_idx == mt.padding_idx == pad
        np.testing.assert_array_equal(m.weight.detach().numpy()[pad], 0)
        np.testing.assert_array_equal(mt.weight.detach().numpy()[pad], 0)
    with torch.no_grad():
        mt.weight.copy_(torch.randn(6, 3, dtype=torch.float64))  # a nonzero padding row too
    m.weight._write(mt.weight.detach().numpy())
    idx = np.array([[0, 2, 2, 5], [5, 2, 1, 0], [2, 2, 2, 3]])
    rng = np.random.default_rng(4)
    for _ in range(3):
        v = rng.standard_normal((3, 4, 3))
        y, yt = m(gt.tensor(idx)), mt(torch.tensor(idx))
        _close(y, yt, rtol=1e-13, atol=1e-15)
        (g,) = gt.grad(y, [m.weight], _gt(v))
        (gt_,) = torch.autograd.grad(yt, [mt.weight], torch.tensor(v))
        _close(g, gt_, rtol=1e-14, atol=1e-15)
        with gt.no_grad(), torch.no_grad():
            m.weight._write(m.weight.data - 0.5 * g.data)
            mt.weight -= 0.5 * gt_
        idx = (idx + 1) % 6


def test_embedding_backward_is_an_index_add_of_the_rows():
    # the backward node is getitem_grad: a zero matrix with rows added at the indices
    w = gt.randn(1000, 4, dtype=gt.float64, requires_grad=True)
    idx = np.array([3, 7, 3])
    y = F.embedding(idx, w, padding_idx=7)
    assert y.grad_fn.fn.name == "embedding"
    v = gt.ones(3, 4, dtype=gt.float64, requires_grad=True)
    (g,) = gt.grad(y, [w], v, create_graph=True)
    assert g.grad_fn.fn.name == "getitem_grad"
    (gv,) = gt.grad((g * g).sum(), [v])  # and it is differentiable: d/dv sum(g^2)
    np.testing.assert_array_equal(gv.numpy(), [[4] * 4, [0] * 4, [4] * 4])
    want = np.zeros((1000, 4))
    want[3] = 2
    np.testing.assert_array_equal(g.detach().numpy(), want)


def test_embedding_inf_gradient_at_the_padding_row_is_zero_not_nan():
    w = gt.randn(4, 2, dtype=gt.float64, requires_grad=True)
    y = F.embedding(np.array([1, 2]), w, padding_idx=1)
    (g,) = gt.grad(y, [w], gt.tensor([[np.inf, 1.0], [2.0, 3.0]]))
    np.testing.assert_array_equal(g.numpy(), [[0, 0], [0, 0], [2, 3], [0, 0]])


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm_renormalizes_the_rows_looked_up_in_place_as_torch(norm_type):
    wa = np.random.default_rng(5).standard_normal((6, 4)) * 2
    w, wt = _gt(wa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    idx = np.array([[1, 3], [3, 0]])
    y = F.embedding(idx, w, max_norm=1.5, norm_type=norm_type)
    yt = torch.nn.functional.embedding(torch.tensor(idx), wt, max_norm=1.5, norm_type=norm_type)
    _close(y, yt, rtol=1e-12, atol=1e-14)
    _close(w, wt, rtol=1e-12, atol=1e-14)  # rows 0, 1, 3 scaled, the others untouched
    np.testing.assert_array_equal(w.detach().numpy()[[2, 4, 5]], wa[[2, 4, 5]])


def test_embedding_from_pretrained_is_frozen_unless_told():
    e = nn.Embedding.from_pretrained(gt.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert not e.weight.requires_grad
    np.testing.assert_array_equal(e(np.array([1, 1])).numpy(), [[3, 4], [3, 4]])
    assert nn.Embedding.from_pretrained(gt.ones(3, 2), freeze=False).weight.requires_grad
    assert list(nn.Embedding(5, 2).state_dict()) == ["weight"]


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.embedding(np.array([0, 12]), gt.randn(10, 3)), IndexError,
         "embedding: index 12 is out of range for 10 embeddings"),
        (lambda: F.embedding(np.array([-1]), gt.randn(10, 3)), IndexError,
         "embedding: index -1 is out of range for 10 embeddings"),
        (lambda: nn.Embedding(10, 3)(gt.tensor([[1, 10]])), IndexError,
         "embedding: index 10 is out of range for 10 embeddings"),
        (lambda: F.embedding(np.array([0.0]), gt.randn(10, 3)), TypeError,
         "embedding: the index must hold integers"),
        (lambda: nn.Embedding(4, 2, padding_idx=4), ValueError, "Embedding: padding_idx 4"),
        (lambda: F.batch_norm(gt.randn(2, 4), gt.zeros(3), gt.ones(3)), ValueError,
         "batch_norm: running_mean has 3 elements but the input has 4 channels"),
        (lambda: F.batch_norm(gt.randn(2, 4), gt.zeros(4), gt.ones(5)), ValueError,
         "batch_norm: running_var has 5 elements but the input has 4 channels"),
        (lambda: F.batch_norm(gt.randn(2, 4), None, None, gt.ones(2), training=True),
         ValueError, "batch_norm: weight has 2 elements but the input has 4 channels"),
        (lambda: nn.BatchNorm1d(3)(gt.randn(1, 3)), ValueError,
         "batch_norm: expected more than 1 value per channel when training"),
        (lambda: nn.BatchNorm2d(3)(gt.randn(2, 3, 4)), ValueError,
         "BatchNorm2d: expected 4-D input, got 3-D input"),
        (lambda: nn.BatchNorm1d(3)(gt.randn(2, 3, 4, 4)), ValueError,
         "BatchNorm1d: expected 2-D or 3-D input, got 4-D input"),
        (lambda: F.batch_norm(gt.randn(2, 3), None, None, training=True, eps=0.0), ValueError,
         "batch_norm: eps must be positive when training, got 0.0"),
        (lambda: F.batch_norm(gt.randn(2, 3), None, None), ValueError,
         "batch_norm: running_mean and running_var must be given when not training"),
        (lambda: nn.LayerNorm(4)(gt.randn(2, 5)), ValueError,
         r"layer_norm: normalized_shape \(4,\) does not match the input's trailing dims"),
        (lambda: F.layer_norm(gt.randn(2, 3), [2, 3], gt.ones(3)), ValueError,
         r"layer_norm: weight has shape \(3,\), not the normalized shape \(2, 3\)"),
        (lambda: F.group_norm(gt.randn(2, 6, 3), 4), ValueError,
         "group_norm: num_groups 4 does not divide the 6 channels"),
        (lambda: nn.GroupNorm(4, 6), ValueError, "GroupNorm: num_groups 4 does not divide"),
    ],
)  # fmt: skip
def test_errors_name_the_op_and_say_what_is_wrong(call, error, match):
    with pytest.raises(error, match=match):
        call()
