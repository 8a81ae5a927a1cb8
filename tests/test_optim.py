"""Optimizers and schedulers, step by step against PyTorch from identical weights and gradients."""

import math

import numpy as np
import pytest

import gradtensor as gt
from gradtensor import nn, optim
from gradtensor.optim import lr_scheduler

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the optimizer update rules")

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def _pair(seed=0):
    """The same starting weights as gradtensor Parameters and torch leaf tensors."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [nn.Parameter(gt.tensor(a)) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _grad(p, step, i):
    """A gradient that depends on the weights (so state feedback matters) and on the step."""
    d = np.asarray(p.data, dtype=np.float64)
    noise = np.random.default_rng(100 * step + i).standard_normal(d.shape)
    return (d**3 - 0.5 * d + 0.3 * noise).astype(np.float32)


def _run(make_ours, make_theirs, steps=6, skip=None):
    ours, theirs = _pair()
    opt_g = make_ours(ours)
    opt_t = make_theirs(theirs)
    for step in range(steps):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            if skip is not None and i == skip and step % 2 == 0:
                p.grad, q.grad = None, None  # a parameter without a gradient is left alone
                continue
            g = _grad(p, step, i)
            p.grad = gt.tensor(g)
            q.grad = torch.tensor(g)
        opt_g.step()
        opt_t.step()
        for p, q in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(
                p.data, q.detach().numpy(), rtol=2e-5, atol=2e-6, err_msg=f"step {step}"
            )
    return ours, opt_g


CASES = {
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd_momentum_dampening_wd": (
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2),
    ),
    "sgd_nesterov_wd": (
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    ),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adam_wd_betas": (
        lambda ps: optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    "adam_amsgrad": (
        lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
        lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True),
    ),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01), lambda ps: torch.optim.AdamW(ps, lr=0.01)),
    "adamw_amsgrad_wd": (
        lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.3, amsgrad=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.3, amsgrad=True),
    ),
    "rmsprop": (lambda ps: optim.RMSprop(ps, lr=0.01), lambda ps: torch.optim.RMSprop(ps, lr=0.01)),
    "rmsprop_centered_momentum_wd": (
        lambda ps: optim.RMSprop(
            ps, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.05
        ),
        lambda ps: torch.optim.RMSprop(
            ps, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.05
        ),
    ),
    "rmsprop_momentum": (
        lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.9),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.9),
    ),
    "rmsprop_centered": (
        lambda ps: optim.RMSprop(ps, lr=0.01, centered=True),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True),
    ),
}


@pytest.mark.parametrize("kernels", [True, False], ids=["fused", "array_ops"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_update_matches_torch(case, kernels):
    make_ours, make_theirs = CASES[case]
    with gt.use_kernels(kernels):
        _run(make_ours, make_theirs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_update_equals_array_ops_bit_for_bit(case, dtype):
    """The one-pass kernels do the array-op update's arithmetic in the same order and dtype."""
    make_ours, _ = CASES[case]
    runs = []
    for kernels in (True, False):
        rng = np.random.default_rng(3)
        ps = [nn.Parameter(gt.tensor(rng.standard_normal(s).astype(dtype))) for s in SHAPES]
        opt = make_ours(ps)
        with gt.use_kernels(kernels):
            for step in range(5):
                for i, p in enumerate(ps):
                    g = _grad(p, step, i).astype(dtype)
                    if step == 3 and i == 0:
                        g.flat[0] = np.nan  # a NaN gradient must come out as NaN either way
                    p.grad = gt.tensor(g)
                opt.step()
        state = [np.asarray(t.data) for s in opt.state.values() for t in s.values() if
                 isinstance(t, gt.Tensor)]  # fmt: skip
        runs.append([p.data.copy() for p in ps] + state)
    for fused, plain in zip(*runs, strict=True):
        np.testing.assert_array_equal(fused, plain)
    assert np.isnan(runs[0][0].flat[0])


def test_parameters_sharing_a_step_share_one_kernel_call(monkeypatch):
    """On a GPU one call is one launch for the whole list; on the CPU the same batching runs."""
    from gradtensor import kernels

    calls = []
    real = kernels.adam_update

    def counted(param, *rest, **h):
        calls.append([tuple(p.shape) for p in param])
        real(param, *rest, **h)

    monkeypatch.setattr(kernels, "adam_update", counted)
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(gt.tensor(rng.standard_normal(s).astype(np.float32))) for s in SHAPES]
    wide = nn.Parameter(gt.tensor(rng.standard_normal(3)))  # float64: a call of its own
    opt = optim.Adam([{"params": ps}, {"params": [wide], "lr": 0.1}])

    def step(with_grad):
        calls.clear()
        for p in ps + [wide]:
            p.grad = gt.ones_like(p) if any(p is q for q in with_grad) else None
        opt.step()
        return sorted(calls)

    assert step(ps + [wide]) == [[(3,)], [(4, 3), (3,), (2, 2, 2)]]
    # A parameter that missed a step has its own bias correction, so its own call.
    assert step(ps[1:]) == [[(3,), (2, 2, 2)]]
    assert step(ps) == [[(3,), (2, 2, 2)], [(4, 3)]]  # steps 3, 3 and 2
    with gt.use_kernels(False):
        assert step(ps) == []


@pytest.mark.parametrize("case", ["sgd_momentum_dampening_wd", "adam_amsgrad", "rmsprop_centered"])
def test_parameters_without_grad_are_skipped_like_torch(case):
    make_ours, make_theirs = CASES[case]
    _run(make_ours, make_theirs, skip=1)


def test_param_groups_with_their_own_lr_match_torch():
    def ours(ps):
        return optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}], lr=0.01)

    def theirs(ps):
        return torch.optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}], lr=0.01)

    _run(ours, theirs)


def test_step_keeps_identity_and_records_nothing():
    ours, _ = _pair()
    arrays = [p.data for p in ours]
    opt = optim.Adam(ours, lr=0.1)
    for p in ours:
        p.grad = gt.ones_like(p)
    before = [p._version[0] for p in ours]
    opt.step()
    for p, a, v in zip(ours, arrays, before, strict=True):
        assert p.data is a  # updated in place, not replaced
        assert p.is_leaf and p.grad_fn is None
        assert p._version[0] == v + 1


def test_step_after_saving_for_backward_is_caught():
    (w, *_), _ = _pair()
    opt = optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    w.grad = gt.ones_like(w)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_zero_grad():
    ours, _ = _pair()
    opt = optim.SGD(ours, lr=0.1)
    for p in ours:
        p.grad = gt.ones_like(p)
    g0 = ours[0].grad
    opt.zero_grad(set_to_none=False)
    assert ours[0].grad is g0 and not g0.data.any()
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


def test_closure_is_called_with_grad_enabled():
    ours, _ = _pair()
    opt = optim.SGD(ours, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = sum((p * p).sum() for p in ours)
        loss.backward()
        return loss

    with gt.no_grad():
        loss = opt.step(closure)
    assert loss.item() > 0


def test_add_param_group_and_errors():
    ours, _ = _pair()
    opt = optim.SGD(ours[:2], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [ours[2]], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [ours[0]]})
    with pytest.raises(ValueError, match="required hyperparameter 'lr'"):
        optim.SGD(ours)
    with pytest.raises(ValueError, match="lr must be non-negative"):
        optim.Adam(ours, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(ours, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(ours, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="single tensor"):
        optim.Adam(ours[0])
    x = gt.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([x * 2], lr=0.1)


@pytest.mark.parametrize(
    "case", ["sgd_nesterov_wd", "adam_amsgrad", "rmsprop_centered_momentum_wd"]
)
def test_state_dict_round_trip_resumes_exactly(case, tmp_path):
    """Training 3 steps, saving, loading into a fresh optimizer and training 3 more is the same
    as training 6 steps without stopping."""
    make = CASES[case][0]
    straight, _ = _run(make, CASES[case][1], steps=6)

    ours, _ = _pair()
    opt = make(ours)
    for step in range(3):
        for i, p in enumerate(ours):
            p.grad = gt.tensor(_grad(p, step, i))
        opt.step()
    gt.save({"opt": opt.state_dict(), "params": [p.detach() for p in ours]}, tmp_path / "o.npz")
    ckpt = gt.load(tmp_path / "o.npz")
    fresh = [nn.Parameter(t) for t in ckpt["params"]]
    opt2 = make(fresh)
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for step in range(3, 6):
        for i, p in enumerate(fresh):
            p.grad = gt.tensor(_grad(p, step, i))
        opt2.step()
    for a, b in zip(straight, fresh, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_layout_and_load_errors():
    ours, _ = _pair()
    opt = optim.Adam([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.5}])
    for p in ours:
        p.grad = gt.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert set(sd["state"]) == {0, 1, 2}
    assert sd["state"][1]["step"] == 1 and sd["state"][1]["exp_avg"].shape == (3,)
    with pytest.raises(ValueError, match="2 parameter groups"):
        optim.Adam(ours).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter group 1 has 2 parameters"):
        optim.Adam([{"params": ours[:1]}, {"params": ours[1:2]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        optim.Adam(ours).load_state_dict({"foo": 1})
    # Loaded state is a copy: stepping one optimizer leaves the other's state alone.
    opt2 = optim.Adam([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.5}])
    opt2.load_state_dict(sd)
    opt2.step()
    assert opt.state[ours[0]]["step"] == 1 and opt2.state[ours[0]]["step"] == 2


# -- schedulers ---------------------------------------------------------------------------------

SCHEDULERS = {
    "step": (
        lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    ),
    "exponential": (
        lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
    ),
    "cosine": (
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    ),
    "linear_warmup": (
        lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4),
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_matches_torch(name):
    make_ours, make_theirs = SCHEDULERS[name]
    ours, theirs = _pair()
    opt_g = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.3}], lr=0.1)
    opt_t = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.3}], lr=0.1)
    s_g, s_t = make_ours(opt_g), make_theirs(opt_t)
    assert s_g.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-12)
    for epoch in range(16):
        opt_g.step()
        opt_t.step()  # before the scheduler's step, as torch expects
        s_g.step()
        s_t.step()
        assert s_g.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-9, abs=1e-12), epoch
        assert [g["lr"] for g in opt_g.param_groups] == s_g.get_last_lr()


def test_scheduler_state_dict_resumes():
    ours, _ = _pair()
    opt = optim.SGD(ours, lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    opt2 = optim.SGD(ours, lr=1.0)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(sd)
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert sched.get_last_lr()[0] == pytest.approx((1 + math.cos(math.pi * 5 / 10)) / 2)


def test_scheduler_drives_the_update():
    p = nn.Parameter(gt.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    steps = []
    for _ in range(3):
        p.grad = gt.ones(1)
        before = p.item()
        opt.step()
        steps.append(before - p.item())
        sched.step()
    assert steps == [1.0, 0.5, 0.25]


# -- large and non-contiguous parameters ------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["sgd_nesterov_wd", "adam_amsgrad", "adamw", "rmsprop_centered_momentum_wd"]
)
def test_large_parameter_matches_torch(case):
    make_ours, make_theirs = CASES[case]
    rng = np.random.default_rng(0)
    start = rng.standard_normal((700, 300)).astype(np.float32)
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(4)]
    p = nn.Parameter(gt.tensor(start))
    q = torch.tensor(start, requires_grad=True)
    opt, topt = make_ours([p]), make_theirs([q])
    for g in grads:
        p.grad, q.grad = gt.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=2e-5, atol=2e-6)


def test_non_contiguous_parameter_is_updated_in_place():
    base = gt.zeros(60, 50)
    p = nn.Parameter(gt.Tensor._make(base.data.T))  # a transposed view: not C-contiguous
    opt = optim.Adam([p], lr=1.0)
    p.grad = gt.ones(50, 60)
    opt.step()
    np.testing.assert_allclose(base.data, -1.0, rtol=1e-6)


def test_a_subclass_with_only_an_array_update_still_steps():
    """Optimizer subclasses need _prepare and _apply; the fused kernel path is optional."""

    class SignSGD(optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def _prepare(self, p, group, state):
            return [p.data, p.grad.data], dict(lr=group["lr"])

        @staticmethod
        def _apply(d, g, s, t, h):
            np.sign(g, out=s)
            d -= h["lr"] * s

    p = nn.Parameter(gt.tensor(np.array([1.0, -2.0, 3.0], np.float32)))
    p.grad = gt.tensor(np.array([0.5, -0.1, 0.0], np.float32))
    SignSGD([p], lr=0.25).step()
    np.testing.assert_array_equal(p.data, np.array([0.75, -1.75, 3.0], np.float32))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda: gt.ones(1), ValueError, r"shape \(1,\)"),
        (lambda: gt.ones(3, dtype=gt.float64), TypeError, "dtype float64"),
        (lambda: np.ones(3, np.float32), TypeError, "is a ndarray"),
    ],
)
def test_step_refuses_a_gradient_that_does_not_fit_and_changes_nothing(bad, error, match):
    good = nn.Parameter(gt.ones(2))
    p = nn.Parameter(gt.ones(3))
    opt = optim.Adam([good, p], lr=0.1)
    good.grad = gt.ones(2)
    p.grad = bad()
    with pytest.raises(error, match=f"Adam.step: the .grad of parameter 1 .*{match}"):
        opt.step()
    np.testing.assert_array_equal(good.detach().numpy(), [1.0, 1.0])
    assert opt.state.get(good) in (None, {})


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_float16_adam_steps_where_the_gradient_is_zero(cls):
    # eps = 1e-8 is 0 in float16: a zero gradient would make the step 0 / 0.
    p = nn.Parameter(gt.tensor([1.0, 2.0, 3.0], dtype=gt.float16))
    opt = cls([p], lr=0.1, weight_decay=0.0)
    for _ in range(3):
        p.grad = gt.tensor([0.5, 0.0, -0.5], dtype=gt.float16)
        opt.step()
    got = p.detach().numpy()
    assert np.isfinite(got).all() and got.dtype == np.float16
    assert got[1] == 2.0 and got[0] < 1.0 and got[2] > 3.0


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.01)])  # fmt: skip
def test_a_reused_step_plan_sees_every_change_between_steps(make):
    """An eager step reuses the plan of the step before; a parameter or its state replaced, a
    changed learning rate, a gradient the kernels cannot take and a parameter they cannot
    update must each be seen, with the array ops' results bit for bit."""

    def run(kernels):
        rng = np.random.default_rng(5)
        ps = [nn.Parameter(gt.tensor(rng.standard_normal(s).astype(np.float32))) for s in SHAPES]
        opt = make(ps)
        with gt.use_kernels(kernels):
            for step in range(9):
                for i, p in enumerate(ps):
                    p.grad = gt.tensor(_grad(p, step, i).astype(np.float32))
                if step == 2:
                    ps[2].data = ps[2].data.copy()  # another array for the same parameter
                if step == 3:
                    opt.param_groups[0]["lr"] *= 0.5
                if step == 4:  # a transposed gradient: not C-contiguous
                    ps[2].grad = gt.Tensor._make(np.ascontiguousarray(ps[2].grad.data.T).T)
                if step == 5:  # a parameter the kernels cannot update in place
                    ps[0].data = np.asfortranarray(ps[0].data)
                if step == 6:
                    opt.load_state_dict(opt.state_dict())  # its state: other arrays
                opt.step()
        state = [np.asarray(t.data) for s in opt.state.values() for t in s.values() if
                 isinstance(t, gt.Tensor)]  # fmt: skip
        return [p.data.copy() for p in ps] + state

    for planned, plain in zip(run(True), run(False), strict=True):
        np.testing.assert_array_equal(planned, plain)


def test_an_optimizer_with_a_step_plan_deep_copies_and_pickles_and_its_copy_steps_its_own():
    import copy
    import pickle

    rng = np.random.default_rng(1)
    ps = [nn.Parameter(gt.tensor(rng.standard_normal(s).astype(np.float32))) for s in SHAPES]
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    for step in range(2):  # the second step reuses the first's plan
        for i, p in enumerate(ps):
            p.grad = gt.tensor(_grad(p, step, i))
        opt.step()
    twin_ps, twin = copy.deepcopy((ps, opt))
    assert pickle.loads(pickle.dumps(opt)).state_dict()["param_groups"][0]["lr"] == 0.1
    before = [p.data.copy() for p in ps]
    for i, p in enumerate(twin_ps):
        p.grad = gt.tensor(_grad(p, 2, i))
    twin.step()  # the copy updates its own parameters, not the original's
    for p, b in zip(ps, before, strict=True):
        np.testing.assert_array_equal(p.data, b)
    for i, p in enumerate(ps):
        p.grad = gt.tensor(_grad(p, 2, i))
    opt.step()
    for p, q in zip(ps, twin_ps, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
