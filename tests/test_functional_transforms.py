"""gt.autograd.functional against torch.autograd.functional on the same functions."""

import numpy as np
import pytest

import gradtensor as gt
from gradtensor.autograd import functional as AF

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TAF = torch.autograd.functional


def f_gt(x, y):
    return gt.tanh(x @ y).sum(axis=0) * x[0, 0]


def f_torch(x, y):
    return torch.tanh(x @ y).sum(dim=0) * x[0, 0]


def scalar_gt(x, y):
    return (gt.sin(x) * y).sum() + (x * x * y).sum() ** 2


def scalar_torch(x, y):
    return (torch.sin(x) * y).sum() + (x * x * y).sum() ** 2


rng = np.random.default_rng(0)
XA, YA = rng.standard_normal((3, 2)), rng.standard_normal((2, 4))
SA, TA = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))


def gts(*arrays):
    return tuple(gt.tensor(a, dtype=gt.float64) for a in arrays)


def ths(*arrays):
    return tuple(torch.tensor(a) for a in arrays)


def close(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            close(u, v)
    else:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def test_vjp():
    v = rng.standard_normal(4)
    out, res = AF.vjp(f_gt, gts(XA, YA), gt.tensor(v, dtype=gt.float64))
    tout, tres = TAF.vjp(f_torch, ths(XA, YA), torch.tensor(v))
    close(out, tout)
    close(res, tres)


def test_jvp():
    vx, vy = rng.standard_normal(XA.shape), rng.standard_normal(YA.shape)
    out, res = AF.jvp(f_gt, gts(XA, YA), gts(vx, vy))
    tout, tres = TAF.jvp(f_torch, ths(XA, YA), ths(vx, vy))
    close(out, tout)
    close(res, tres)


def test_jacobian():
    close(AF.jacobian(f_gt, gts(XA, YA)), TAF.jacobian(f_torch, ths(XA, YA)))
    single = AF.jacobian(lambda x: gt.exp(x) * 2, gt.tensor(SA, dtype=gt.float64))
    close(single, TAF.jacobian(lambda x: torch.exp(x) * 2, torch.tensor(SA)))
    assert single.shape == (2, 3, 2, 3)


def test_hessian():
    close(AF.hessian(scalar_gt, gts(SA, TA)), TAF.hessian(scalar_torch, ths(SA, TA)))


def test_hvp():
    vs = rng.standard_normal(SA.shape), rng.standard_normal(TA.shape)
    out, res = AF.hvp(scalar_gt, gts(SA, TA), gts(*vs))
    tout, tres = TAF.hvp(scalar_torch, ths(SA, TA), ths(*vs))
    close(out, tout)
    close(res, tres)


def test_transforms_leave_caller_tensors_alone():
    x = gt.tensor(SA, dtype=gt.float64, requires_grad=True)
    AF.jacobian(lambda t: t * t, x)
    assert x.grad is None
