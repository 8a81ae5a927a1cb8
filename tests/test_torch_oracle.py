"""PyTorch as an independent oracle: every op with a PyTorch twin in its record gives the same
values and gradients on the record's sample inputs (float64), and the same result dtypes."""

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor.ops import REGISTRY
from gradtensor.testing import sample_call, twin

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TF = torch.nn.functional

# Ops with no PyTorch twin of the same meaning, and why.
NO_TWIN = {
    "getitem_grad": "internal derivative of getitem (checked through getitem's gradients)",
    "astype": "dtype conversion; PyTorch's .to(dtype) is checked in test_tensor.py",
    "to_device": "CPU-only here; device moves are checked in test_devices.py",
}


def _twin(name):
    """The op's PyTorch twin, from its record next to its definition."""
    return twin(REGISTRY[name], torch)


WITH_TWIN = sorted(n for n in REGISTRY if _twin(n) is not None)


def test_every_differentiable_op_has_a_twin_or_a_reason():
    missing = [
        n
        for n, op in REGISTRY.items()
        if getattr(op, "differentiable", True)
        and op.samples
        and n not in WITH_TWIN
        and n not in NO_TWIN
    ]
    assert not missing, f"ops with neither a PyTorch twin nor a reason: {missing}"


def _to_torch(a, leaves):
    if isinstance(a, gt.Tensor):
        t = torch.tensor(a.data, requires_grad=a.requires_grad and a.dtype.kind == "f")
        leaves.append(t)
        return t
    if isinstance(a, list) and a and all(isinstance(x, gt.Tensor) for x in a):
        return [_to_torch(x, leaves) for x in a]
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    if isinstance(a, tuple):
        return tuple(_to_torch(x, leaves) for x in a)
    return a


CASES = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name in WITH_TWIN
    for i in range(len(REGISTRY[name].samples))
]


@pytest.mark.parametrize("name,i", CASES)
def test_values_and_gradients_match_pytorch(name, i):
    op = REGISTRY[name]
    fn, xs = sample_call(op, op.samples[i])
    out = fn(*xs)
    outs = out if isinstance(out, (list, tuple)) else [out]

    leaves = []
    targs = [_to_torch(a, leaves) for a in fn.args]
    tkw = {k: _to_torch(v, []) for k, v in fn.kwargs.items()}
    tout = _twin(name)(*targs, **tkw)
    touts = list(tout) if isinstance(tout, (list, tuple)) else [tout]

    assert len(outs) == len(touts)
    rng = np.random.default_rng(1)
    vs = [rng.standard_normal(o.shape) for o in outs]
    for o, to in zip(outs, touts):
        assert o.shape == tuple(to.shape), f"{name}: shape {o.shape} vs PyTorch {tuple(to.shape)}"
        np.testing.assert_allclose(o.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)

    gt_live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if gt_live:
        grads = gt.grad(
            [o for o, _ in gt_live],
            xs,
            [gt.tensor(v, dtype=gt.float64) for _, v in gt_live],
            allow_unused=True,
        )
        tgrads = torch.autograd.grad(
            [to for to, o in zip(touts, outs) if o.requires_grad],
            leaves,
            [torch.from_numpy(v) for o, v in zip(outs, vs) if o.requires_grad],
            allow_unused=True,
        )
        for k, (g, tg) in enumerate(zip(grads, tgrads)):
            gv = np.zeros(xs[k].shape) if g is None else g.numpy()
            tv = np.zeros(xs[k].shape) if tg is None else tg.numpy()
            np.testing.assert_allclose(
                gv, tv, rtol=1e-9, atol=1e-12, err_msg=f"{name}: gradient of input {k}"
            )


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 3.0)])
def test_softplus_beta_and_threshold_match_pytorch(beta, threshold):
    x0 = np.linspace(-30.0, 30.0, 25)
    x = gt.tensor(x0, dtype=gt.float64, requires_grad=True)
    y = F.softplus(x, beta, threshold)
    y.sum().backward()
    xt = torch.tensor(x0, requires_grad=True)
    yt = TF.softplus(xt, beta, threshold)
    yt.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,i", CASES)
def test_result_dtypes_match_pytorch_in_float32(name, i):
    op = REGISTRY[name]
    fn, xs = sample_call(op, op.samples[i], dtype=np.float32)
    out = fn(*xs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    targs = [_to_torch(a, []) for a in fn.args]
    tkw = {k: _to_torch(v, []) for k, v in fn.kwargs.items()}
    tout = _twin(name)(*targs, **tkw)
    touts = list(tout) if isinstance(tout, (list, tuple)) else [tout]
    got = [str(o.dtype) for o in outs]
    want = [str(t.dtype).removeprefix("torch.") for t in touts]
    assert got == want, f"{name}: result dtypes {got}, PyTorch's {want}"
