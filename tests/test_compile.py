"""gt.compile: a recorded step replayed on arrays gives the eager step's numbers bit for bit,
records again when a guard fails, and refuses (or, with fallback=True, runs eagerly) what it
cannot replay."""

from __future__ import annotations

import collections
import logging

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn as nn
import gradtensor.nn.functional as F

OPTIMIZERS = {
    "sgd": lambda ps: gt.optim.SGD(ps, lr=0.05),
    "sgd-nesterov-wd": lambda ps: gt.optim.SGD(
        ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "adam": lambda ps: gt.optim.Adam(ps, lr=1e-2),
    "adamw-amsgrad": lambda ps: gt.optim.AdamW(ps, lr=1e-2, amsgrad=True),
    "rmsprop": lambda ps: gt.optim.RMSprop(ps, lr=1e-2, momentum=0.5),
}


def _data(n: int, batch: int, dtype: str, seed: int = 0) -> list:
    r = np.random.default_rng(seed)
    return [
        (
            gt.tensor(r.standard_normal((batch, 6)).astype(dtype)),
            gt.tensor(r.integers(0, 3, batch)),
        )
        for _ in range(n)
    ]


def _twins(build):
    """Two identical (model, optimizer) pairs: one runs eagerly, the other compiled."""
    out = []
    for _ in range(2):
        gt.manual_seed(0)
        out.append(build())
    return out


def _same_params(m1: nn.Module, m2: nn.Module) -> None:
    for (name, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        assert np.array_equal(p1.data, p2.data), name
    for (name, b1), (_, b2) in zip(m1.named_buffers(), m2.named_buffers()):
        assert np.array_equal(b1.data, b2.data), name


def _train_step(model, opt, x, y, clip=None):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    if clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_replayed_steps_equal_eager_steps_bit_for_bit(opt_name, dtype):
    def build():
        model = nn.MLP([6, 12, 12, 3], activation="tanh", dtype=dtype)
        opt = OPTIMIZERS[opt_name](model.parameters())
        return model, opt, gt.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)

    (m1, o1, s1), (m2, o2, s2) = _twins(build)
    step = gt.compile(_train_step)
    for x, y in _data(100, 16, dtype) * 1:
        l1 = _train_step(m1, o1, x, y, clip=0.5)
        l2 = step(m2, o2, x, y, clip=0.5)
        assert l2.dtype == l1.dtype and np.array_equal(l1.data, l2.data)
        s1.step()
        s2.step()  # the learning rate, read from the group at each step, changes under a replay
    _same_params(m1, m2)
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] < 0.05
    assert step.traces == 2  # recorded twice (the second agreeing with the first), then replayed


def _scheduled(train):
    """train(model, opt, x, y), then a step of the learning-rate schedule, in one function."""

    def scheduled(model, opt, sched, x, y):
        loss = train(model, opt, x, y)
        sched.step()
        return loss

    return scheduled


def test_a_scheduler_stepped_inside_the_function_is_replayed():
    def build():
        model = nn.MLP([6, 8, 3])
        opt = gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, gt.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    scheduled = _scheduled(_train_step)
    (m1, o1, s1), (m2, o2, s2) = _twins(build)
    step = gt.compile(scheduled)
    for x, y in _data(9, 8, "float32"):
        assert np.array_equal(scheduled(m1, o1, s1, x, y).data, step(m2, o2, s2, x, y).data)
        assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]
    _same_params(m1, m2)
    assert o2.param_groups[0]["lr"] == 0.1 * 0.5**4 and s2.last_epoch == 9


@pytest.mark.parametrize("activation", list(F.ACTIVATIONS))
def test_every_fused_activation_replays_exactly(activation):
    def build():
        model = nn.MLP([6, 10, 3], activation=activation)
        return model, gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_train_step)
    for x, y in _data(10, 8, "float32"):
        assert np.array_equal(_train_step(m1, o1, x, y).data, step(m2, o2, x, y).data)
    _same_params(m1, m2)


def test_a_replay_is_straight_line_code_that_checks_nothing_again(monkeypatch):
    from gradtensor.kernels import cpu, optim_cpu

    model = nn.MLP([6, 10, 10, 3])
    opt = gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = gt.compile(_train_step)
    (x, y), *rest = _data(5, 8, "float32")
    assert step.code is None
    step(model, opt, x, y)
    step(model, opt, x, y)  # the second recording, which agrees: from now on replayed
    code = step.code
    assert code.startswith("def replay(flat):") and "with errstate" in code
    assert "del " in code  # an intermediate array goes after its last use
    # The kernels' argument checks ran while recording; a replay makes none of them again.
    checks = []
    for module, name in [(cpu, "check_forward"), (cpu, "check_backward"), (optim_cpu, "_flat")]:
        real = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, real=real, **k: checks.append(1) or real(*a, **k)
        )
    eager = F.cross_entropy(model(x), y)  # eagerly, the checks run
    assert checks
    step(model, opt, *rest[0])  # the first replay plans the optimizer's kernel calls
    checks.clear()
    for x, y in rest[1:]:
        loss = step(model, opt, x, y)
    assert not checks and np.isfinite(loss.item())
    assert step.traces == 2 and eager.requires_grad


def test_a_thousand_replays_hold_no_more_memory_than_one():
    import gc
    import tracemalloc

    model = nn.MLP([6, 16, 16, 3])
    opt = gt.optim.Adam(model.parameters(), lr=1e-3)
    step = gt.compile(_train_step)
    (x, y), *_ = _data(1, 8, "float32")
    for _ in range(20):
        step(model, opt, x, y)
    tracemalloc.start()
    try:
        step(model, opt, x, y)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            step(model, opt, x, y)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024, f"{grown} bytes held after 1,000 replays"


def _places(arrays) -> list:
    return [a.__array_interface__["data"][0] for a in arrays]


@pytest.mark.parametrize("opt_name", ["sgd-nesterov-wd", "adam"])
def test_a_warm_replay_of_a_fused_step_allocates_no_arrays(opt_name):
    import tracemalloc

    model = nn.MLP([64, 96, 96, 10])
    opt = OPTIMIZERS[opt_name](model.parameters())
    step = gt.compile(_train_step)
    r = np.random.default_rng(0)
    x = gt.tensor(r.standard_normal((128, 64)).astype("float32"))
    y = gt.tensor(r.integers(0, 10, 128))
    for _ in range(5):
        step(model, opt, x, y)
    grads = _places(p.grad.data for p in model.parameters())
    loss = _places([step(model, opt, x, y).data])
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(1000):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            step(model, opt, x, y)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    # Every array the step makes (activations, gradients, the loss) is the one of the step
    # before: the smallest intermediate here is 48 KiB, and a step's peak is a few Python objects.
    assert max(peaks) < 16 * 1024, f"a replay allocated {max(peaks)} bytes at its peak"
    assert _places(p.grad.data for p in model.parameters()) == grads
    assert _places([step(model, opt, x, y).data]) == loss


def test_what_the_caller_keeps_from_a_replay_is_never_written_over():
    def build():
        model = nn.MLP([6, 12, 3])
        return model, gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_train_step)
    kept, want = [], []
    for x, y in _data(8, 8, "float32"):
        want.append(
            (_train_step(m1, o1, x, y).data.copy(), [p.grad.data.copy() for p in m1.parameters()])
        )
        kept.append((step(m2, o2, x, y), [p.grad for p in m2.parameters()]))
    for (loss, grads), (want_loss, want_grads) in zip(kept, want):
        assert np.array_equal(loss.data, want_loss)
        for g, w in zip(grads, want_grads):
            assert np.array_equal(g.data, w)
    _same_params(m1, m2)


def _maths_step(w, b, s):
    def step(x, t):
        w.grad = b.grad = s.grad = None
        z = x @ w
        h = (z + b) * 0.5 - z / 3.0 + s * z  # broadcast bias, numbers, a 0-d tensor
        d = abs(h - t).sqrt() - (-t)
        loss = (d * d).sum() / 7
        loss.backward()
        return loss, h

    return step


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_runs_of_elementwise_maths_replay_as_one_loop_with_eagers_numbers(monkeypatch, dtype):
    from gradtensor.kernels import fuse_cpu

    plans = []
    real = fuse_cpu.plan_elementwise
    monkeypatch.setattr(fuse_cpu, "plan_elementwise", lambda *a: plans.append(a) or real(*a))
    r = np.random.default_rng(0)
    w = gt.tensor(r.standard_normal((16, 8)), dtype=dtype, requires_grad=True)
    b = gt.tensor(r.standard_normal(8), dtype=dtype, requires_grad=True)
    s = gt.tensor(0.25, dtype=dtype, requires_grad=True)
    eager = _maths_step(w, b, s)
    step = gt.compile(eager)
    for _ in range(12):
        x = gt.tensor(r.standard_normal((32, 16)), dtype=dtype)
        t = gt.tensor(r.standard_normal((32, 8)), dtype=dtype)
        loss, h = step(x, t)
        grads = [p.grad.data.copy() for p in (w, b, s)]
        want_loss, want_h = eager(x, t)
        assert loss.dtype == want_loss.dtype == dtype
        assert np.array_equal(loss.data, want_loss.data) and np.array_equal(h.data, want_h.data)
        for g, p in zip(grads, (w, b, s)):
            assert np.array_equal(g, p.grad.data)
    # One run of maths, one loop: the forward's twelve elementwise ops between matmul and sum.
    (steps, *_), *more = plans
    assert len(steps) == 12 and not more
    stored = plans[0][2]  # what the derivatives read, and h: not every step's array
    assert 0 < len(stored) < 12


@pytest.mark.cuda
@pytest.mark.parametrize("graph", [False, True], ids=["replay", "cuda-graph"])
def test_runs_of_elementwise_maths_on_a_gpu_replay_as_one_kernel(monkeypatch, graph):
    from gradtensor.kernels import fuse_cuda

    plans = []
    real = fuse_cuda.plan_elementwise
    monkeypatch.setattr(fuse_cuda, "plan_elementwise", lambda *a: plans.append(a) or real(*a))
    r = np.random.default_rng(0)

    def tensor(shape, grad=True):
        t = gt.tensor(r.standard_normal(shape), dtype="float32").to("cuda")
        return t.requires_grad_() if grad else t

    w, b, s = tensor((16, 8)), tensor(8), tensor(())
    eager = _maths_step(w, b, s)
    step = gt.compile(eager, cuda_graph=graph)
    same = _graphed_equal if graph else np.array_equal  # (cuBLAS may differ under capture)
    for _ in range(8):
        x, t = tensor((32, 16), False), tensor((32, 8), False)
        loss, h = step(x, t)
        got = [loss.cpu().data, h.cpu().data] + [p.grad.cpu().data for p in (w, b, s)]
        want_loss, want_h = eager(x, t)
        want = [want_loss.cpu().data, want_h.cpu().data] + [p.grad.cpu().data for p in (w, b, s)]
        assert all(same(a, c) for a, c in zip(got, want))
    # One run of maths, one kernel: the forward's twelve elementwise ops between matmul and sum.
    (steps, *_), *more = plans
    assert len(steps) == 12 and not more
    if graph:
        assert len(_graphs(step)) == 1 and _launches(step) == 8 - 4


def test_maths_no_loop_could_be_built_for_runs_op_by_op(monkeypatch, caplog):
    from gradtensor.kernels import fuse_cpu

    def refuse(*args):
        raise RuntimeError("no loop today")

    monkeypatch.setattr(fuse_cpu, "plan_elementwise", refuse)
    r = np.random.default_rng(1)
    w = gt.tensor(r.standard_normal((16, 8)), requires_grad=True)
    b = gt.tensor(r.standard_normal(8), requires_grad=True)
    s = gt.tensor(0.5, requires_grad=True)
    eager = _maths_step(w, b, s)
    step = gt.compile(eager)
    x, t = gt.tensor(r.standard_normal((32, 16))), gt.tensor(r.standard_normal((32, 8)))
    with caplog.at_level(logging.WARNING, logger="gradtensor.compile"):
        for _ in range(3):
            loss = step(x, t)[0].data.copy()
    assert "left unfused: RuntimeError: no loop today" in caplog.text
    assert np.array_equal(loss, eager(x, t)[0].data)


@pytest.mark.cuda
def test_maths_no_gpu_kernel_could_be_built_for_runs_op_by_op(monkeypatch, caplog):
    from gradtensor.kernels import fuse_cuda

    def refuse(*args):
        raise RuntimeError("no kernel today")

    monkeypatch.setattr(fuse_cuda, "plan_elementwise", refuse)
    r = np.random.default_rng(1)
    w, b, s = (gt.tensor(r.standard_normal(shape)).to("cuda").requires_grad_()
               for shape in ((16, 8), 8, ()))  # fmt: skip
    eager = _maths_step(w, b, s)
    step = gt.compile(eager, cuda_graph=True)
    x, t = gt.tensor(r.standard_normal((32, 16))), gt.tensor(r.standard_normal((32, 8)))
    x, t = x.to("cuda"), t.to("cuda")
    with caplog.at_level(logging.WARNING, logger="gradtensor.compile"):
        for _ in range(5):
            loss = step(x, t)[0].cpu().data
    assert "left unfused: RuntimeError: no kernel today" in caplog.text
    assert _graphed_equal(loss, eager(x, t)[0].cpu().data) and _launches(step) == 1


def test_a_fused_loop_meets_special_values_as_numpy_does():
    def maths(x, y):
        return ((x / y - y * 1e30) + abs(x)).sqrt() * -x, x - y

    step = gt.compile(maths)
    special = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1e-45, 3e38, -3e38]
    x, y = np.meshgrid(special, special)
    x, y = gt.tensor(x, dtype="float32"), gt.tensor(y, dtype="float32")
    for _ in range(3):
        with np.errstate(all="ignore"):
            got = [a.data for a in step(x, y)]
            want = [a.data for a in maths(x, y)]
        for a, c in zip(got, want):
            # A NaN's sign bit is the hardware's choice of operand; everything else agrees.
            assert np.array_equal(a, c, equal_nan=True)
            assert np.array_equal(np.signbit(a) | np.isnan(a), np.signbit(c) | np.isnan(c))


def test_maths_a_loop_cannot_match_bit_for_bit_is_left_to_numpy():
    # Mixed dtypes, integers and transcendental functions are not fused; the replay still
    # gives eager's numbers.
    def maths(x, y, i):
        return (x * y + 1.0).exp() * 2.0, (i + 1) * 3, x.tanh() + 1.0

    step = gt.compile(maths)
    x = gt.tensor(np.linspace(-1, 1, 12), dtype="float32")
    y = gt.tensor(np.linspace(0, 2, 12), dtype="float64")
    i = gt.tensor(np.arange(12))
    for _ in range(3):
        for a, c in zip(step(x, y, i), maths(x, y, i)):
            assert a.dtype == c.dtype and np.array_equal(a.data, c.data)


def _grad(p):
    return None if p.grad is None else p.grad.data.copy()


@pytest.mark.parametrize("seed", range(12))
def test_random_elementwise_programs_replay_with_eagers_numbers(seed):
    # Runs of fusable maths between ops that are not (exp, tanh, sum), over broadcast operands,
    # 0-d tensors and numbers: a replay gives eager's values and gradients bit for bit.
    r = np.random.default_rng(seed)
    dtype = ["float32", "float64"][seed % 2]
    shapes = [(5, 4), (4,), (5, 1), ()]
    leaves = [gt.tensor(r.uniform(0.5, 2, s), dtype=dtype, requires_grad=True) for s in shapes]
    unary = [lambda a: -a, abs, lambda a: a.sqrt(), lambda a: a.exp() * 0.1, lambda a: a.tanh()]
    binary = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b]
    program = [(int(r.integers(0, 2)), int(r.integers(0, 5)), int(r.integers(0, 4)),
                float(r.uniform(-2, 2))) for _ in range(14)]  # fmt: skip

    def fn(x):
        for p in leaves:
            p.grad = None
        values = [x, *leaves]
        for kind, i, j, c in program:
            a = values[-1]
            if kind == 0:
                values.append(unary[i](a + c if i == 2 else a))
            else:
                other = values[1 + j] if i % 2 else c
                values.append(binary[j](a, other) if i < 3 else binary[j](other, a))
        loss = (values[-1] * values[-1]).sum()
        loss.backward()
        return loss, values[-1]

    step = gt.compile(fn)
    for _ in range(4):
        x = gt.tensor(r.uniform(0.5, 2, (5, 4)), dtype=dtype)
        with np.errstate(all="ignore"):
            got = [t.data.copy() for t in step(x)] + [_grad(p) for p in leaves]
            want = [t.data for t in fn(x)] + [_grad(p) for p in leaves]
        for a, b in zip(got, want):
            assert (a is None) == (b is None)
            assert a is None or (a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True))


def test_kernels_off_replays_the_array_path_exactly():
    def build():
        model = nn.MLP([6, 10, 3], activation="gelu")
        return model, gt.optim.Adam(model.parameters(), lr=1e-2)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_train_step)
    with gt.use_kernels(False):
        for x, y in _data(10, 8, "float32"):
            assert np.array_equal(_train_step(m1, o1, x, y).data, step(m2, o2, x, y).data)
    _same_params(m1, m2)


def test_dropout_draws_a_new_mask_at_every_replay_as_eager_does():
    def build():
        model = nn.MLP([6, 32, 3], dropout=0.5)
        return model, gt.optim.SGD(model.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_train_step)
    data = _data(15, 8, "float32")
    gt.manual_seed(1)
    eager = [_train_step(m1, o1, x, y).item() for x, y in data]
    gt.manual_seed(1)
    compiled = [step(m2, o2, x, y).item() for x, y in data]
    assert eager == compiled
    _same_params(m1, m2)
    # A replay that reused the recorded mask would give the recorded loss again on the same batch.
    x, y = data[0]
    losses = {step(m2, o2, x, y).item() for _ in range(4)}
    assert len(losses) > 1


def test_batch_norm_running_statistics_and_the_eval_switch():
    def build():
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        return model, gt.optim.SGD(model.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_train_step)
    for x, y in _data(12, 8, "float32"):
        assert np.array_equal(_train_step(m1, o1, x, y).data, step(m2, o2, x, y).data)
    _same_params(m1, m2)  # running mean, variance and the batch count included
    assert step.traces == 2
    infer = gt.compile(lambda m, x: m(x))
    x = _data(1, 8, "float32", seed=5)[0][0]
    m1.eval()
    m2.eval()
    with gt.no_grad():
        assert np.array_equal(m1(x).data, infer(m2, x).data)
        assert np.array_equal(m1(x).data, infer(m2, x).data)
        m2.train()
        infer(m2, x)  # the module switched back to train mode: recorded again
        assert infer.traces == 3
        m2.eval()
        infer(m2, x)  # eval mode's recording is still there
    assert infer.traces == 3


def test_gradient_accumulation_without_zero_grad():
    def build():
        model = nn.MLP([6, 8, 3])
        return model, gt.optim.SGD(model.parameters(), lr=0.1)

    def accumulate(model, x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(accumulate)
    for i, (x, y) in enumerate(_data(12, 8, "float32")):
        accumulate(m1, x, y)
        step(m2, x, y)
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert np.array_equal(p1.grad.data, p2.grad.data)
        if i % 4 == 3:
            for opt in (o1, o2):
                opt.step()
                opt.zero_grad()
    _same_params(m1, m2)


def test_a_replay_hands_out_gradients_of_their_own():
    # d(x + x)/dx and two leaves that get the same gradient array: each .grad owns its memory.
    a, b = gt.ones(3, requires_grad=True), gt.ones(3, requires_grad=True)

    def fn(a, b):
        a.grad = b.grad = None
        (a + b).sum().backward()

    step = gt.compile(fn)
    for _ in range(3):
        step(a, b)
        assert not np.shares_memory(a.grad.data, b.grad.data)
        a.grad.data[0] = 7.0
        assert b.grad.data[0] == 1.0


def test_guards_record_again_and_the_cache_is_bounded(caplog):
    model = nn.MLP([6, 8, 3])
    opt = gt.optim.SGD(model.parameters(), lr=0.1)
    step = gt.compile(_train_step, max_traces=2)
    (x, y), (x2, y2) = _data(1, 8, "float32")[0], _data(1, 5, "float32")[0]

    def calls(*args, n=2):
        for _ in range(n):
            step(model, opt, *args)
        return step.traces

    with caplog.at_level(logging.DEBUG, logger="gradtensor.compile"):
        assert calls(x, y, n=3) == 2  # recorded twice, then replayed
        assert calls(x2, y2) == 4  # a new batch size
        assert calls(x.double(), y) == 6  # a new dtype; the oldest recording is dropped
        assert calls(x2, y2) == 6 and calls(x, y) == 8
        xr = x.clone().requires_grad_(True)  # a new requires_grad
        assert calls(xr, y, n=3) == 10 and xr.grad is not None
    assert sum(map(len, step.cache.values())) == 2
    assert "records again: new argument shapes" in caplog.text


def test_a_new_memory_layout_records_again_and_computes_right():
    """A replay's kernel calls were planned for the layouts recorded: a transposed view or a
    parameter laid out anew is another recording, never a misread."""
    gt.manual_seed(0)
    model = nn.MLP([6, 6, 3])
    step = gt.compile(lambda x: model(x))
    x = gt.randn(6, 6)
    for _ in range(3):
        assert np.array_equal(step(x).data, model(x).data)
    xt = x.clone()
    xt.data = np.asfortranarray(x.data)  # the same shape and values, column-major
    assert np.array_equal(step(xt).data, model(xt).data) and step.traces == 3
    w = model.layers[0].weight
    w.data = np.asfortranarray(w.data)  # the values, laid out anew
    assert np.array_equal(step(x).data, model(x).data) and step.traces == 4


def test_a_parameter_replaced_with_another_records_again():
    lin = nn.Linear(6, 3)
    fwd = gt.compile(lambda x: lin(x).sum())
    x = gt.ones(2, 6)
    for _ in range(3):
        assert fwd(x).item() == lin(x).sum().item()
    assert fwd.traces == 2
    lin.weight = nn.Parameter(gt.ones(3, 6) * 2)  # a new tensor of the same shape
    assert fwd(x).item() == lin(x).sum().item() and fwd.traces == 3
    lin.weight = nn.Parameter(gt.ones(4, 6))
    lin.bias = nn.Parameter(gt.zeros(4))
    for _ in range(3):
        assert fwd(x).item() == 48.0


def test_an_outside_array_replaced_by_one_alike_is_read_by_the_replay_without_recording():
    lin = nn.Linear(6, 3)
    fwd = gt.compile(lambda x: lin(x).sum())
    x = gt.ones(2, 6)
    for _ in range(3):
        fwd(x)
    lin.weight.data = np.full((3, 6), 2.0, np.float32)  # the same shape, dtype and layout
    assert fwd(x).item() == lin(x).sum().item() and fwd.traces == 2
    lin.weight.data = np.full((3, 6), 3.0, np.float32)
    assert fwd(x).item() == lin(x).sum().item() and fwd.traces == 2
    lin.weight.requires_grad_(np.True_)  # equal to what was recorded, another object
    for _ in range(3):
        assert fwd(x).item() == lin(x).sum().item() and fwd.traces == 2


def test_a_namedtuple_result_comes_back_as_that_namedtuple():
    Result = collections.namedtuple("Result", "loss rows")
    lin = nn.Linear(6, 3)
    fwd = gt.compile(lambda x: Result(lin(x).sum(), x.shape[0]))
    x = gt.ones(2, 6)
    for _ in range(3):  # recorded, recorded again, replayed
        got = fwd(x)
        assert type(got) is Result and got.rows == 2
        assert got.loss.item() == lin(x).sum().item()


def test_every_change_to_a_module_or_a_tensor_it_reads_is_seen_between_replays():
    """The guards skip what they found unchanged: each way of changing a module or a tensor
    read from outside must still make the next call record again."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.register_buffer("s", gt.ones(4))

        def forward(self, x):
            return (self.a(x) * self.s).sum()

    net = Net()
    fwd = gt.compile(lambda x: net(x))
    x = gt.ones(3, 4)
    changes = [
        lambda: setattr(net, "a", nn.Linear(4, 4)),  # a submodule replaced
        lambda: setattr(net, "s", gt.full((4,), 2.0)),  # a buffer replaced
        lambda: net.register_buffer("s", gt.full((4,), 3.0)),
        lambda: net.eval(),
        lambda: setattr(net.a, "training", True),  # a plain assignment of the mode
        lambda: net.a.register_parameter("bias", nn.Parameter(gt.ones(4))),
        lambda: net.a.weight.requires_grad_(False),
    ]
    for change in [lambda: None, *changes]:
        before = fwd.traces
        change()
        for _ in range(3):
            assert fwd(x).item() == pytest.approx(net(x).item())
        assert fwd.traces == before + 2  # recorded anew (twice, to agree), then replayed


def test_a_costly_recording_is_announced_and_a_cheap_one_is_not(monkeypatch, caplog):
    import importlib

    compile_module = importlib.import_module("gradtensor.compile")  # gt.compile is the function
    model = nn.MLP([6, 10, 10, 3])
    opt = gt.optim.SGD(model.parameters(), lr=0.1)
    (x, y), *_ = _data(1, 8, "float32")
    with caplog.at_level("WARNING", logger="gradtensor.compile"):
        step = gt.compile(_train_step)
        step(model, opt, x, y)
        step(model, opt, x, y)
        assert not caplog.records  # an MLP step's recording costs a few milliseconds
        monkeypatch.setattr(compile_module, "ANNOUNCE_S", 0.0)
        slow = gt.compile(_train_step)
        slow(model, opt, x, y)
    (record,) = caplog.records
    assert "recording _train_step cost" in record.getMessage() and "ms" in record.getMessage()


def test_a_compiled_function_inside_another_ones_recording_runs_eagerly():
    """The outer recording must see the inner function's ops: a replay on arrays would hide
    them, and the outer replay would then skip that work."""
    lin = nn.Linear(4, 3)
    inner = gt.compile(lambda x: lin(x).tanh())
    x = gt.ones(2, 4)
    for _ in range(3):
        inner(x)  # agreed and replayed on its own
    outer = gt.compile(lambda x: inner(x * 2).sum())
    for k in range(4):
        x = gt.full((2, 4), float(k))
        assert outer(x).item() == pytest.approx(lin(x * 2).tanh().sum().item())
    assert outer.traces == 2


def test_what_a_replay_could_not_recompute_is_caught_by_the_second_recording():
    def relu_by_hand(x):  # a mask computed from x's array, outside the ops
        return (x * gt.tensor(x.detach().data > 0)).sum()

    f = gt.compile(relu_by_hand)
    assert f(gt.tensor([1.0, -2.0, 3.0])).item() == 4.0
    with pytest.raises(gt.CompileError, match="cannot be replayed: recorded twice .* differs"):
        f(gt.tensor([-1.0, 2.0, 3.0]))
    g = gt.compile(relu_by_hand, fallback=True)
    assert [g(gt.tensor(v)).item() for v in ([1.0, -2.0], [-1.0, 2.0], [3.0, 4.0])] == [1, 2, 7]
    assert "cannot be replayed" in g.eager_reason


@pytest.mark.parametrize(
    "read, what",
    [
        (lambda t: t.item(), r"item\(\)"),
        (lambda t: bool(t > 0), r"item\(\)"),
        (lambda t: float(t), r"item\(\)"),
        (lambda t: t.tolist(), r"tolist\(\)"),
        (lambda t: t.detach().numpy(), r"numpy\(\)"),
        (lambda t: np.asarray(t.detach()), "NumPy's conversion"),
    ],
)
def test_reading_values_while_recording_names_the_call(read, what):
    def fn(x):
        y = (x * 2).sum()
        read(y)
        return y

    with pytest.raises(gt.CompileError, match=f"compile: .*fn reads a tensor's values with {what}"):
        gt.compile(fn)(gt.ones(3))


def test_fallback_runs_eagerly_every_time():
    calls = []

    def fn(x):
        calls.append(1)
        y = (x * 2).sum()
        return y * 2 if y.item() > 0 else y

    step = gt.compile(fn, fallback=True)
    assert step(gt.ones(3)).item() == 12.0
    assert step(-gt.ones(3)).item() == -6.0  # the branch taken eagerly, at every call
    assert len(calls) == 2 and "item()" in step.eager_reason


def test_what_cannot_be_recorded_is_refused_with_its_name():
    x = gt.ones(3, requires_grad=True)

    def second_order(x):
        (g,) = gt.autograd.grad((x**3).sum(), [x], create_graph=True)
        return g.sum()

    with pytest.raises(gt.CompileError, match="create_graph"):
        gt.compile(second_order)(x)

    class Square(gt.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return 2 * a * g

    with pytest.raises(gt.CompileError, match="custom Function"):
        gt.compile(lambda x: Square.apply(x).sum().backward())(x)
    with pytest.raises(gt.CompileError, match=r"uniform_"):
        gt.compile(lambda t: t.uniform_())(gt.zeros(3))


def test_outputs_keep_their_structure_and_carry_no_graph():
    lin = nn.Linear(4, 2)

    def fn(x, scale):
        y = lin(x) * scale
        return {"y": y, "parts": (y.sum(), 7, None)}

    step = gt.compile(fn)
    x = gt.ones(3, 4)
    for scale in (1.0, 1.0, 1.0, 2.0):
        out = step(x, scale)
        assert np.array_equal(out["y"].data, (lin(x) * scale).data)
        assert out["parts"][1:] == (7, None) and not out["y"].requires_grad
    assert step.traces == 3  # a new Python number is a new recording, like a new shape


def test_random_tensors_made_inside_the_step_are_drawn_again():
    noisy = gt.compile(lambda x: x + gt.randn(*x.shape))
    x = gt.zeros(4)
    gt.manual_seed(3)
    first = [noisy(x).data.copy() for _ in range(3)]
    gt.manual_seed(3)
    again = [(x + gt.randn(4)).data for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], first[2])


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="compile: expected a function"):
        gt.compile(3)
    with pytest.raises(ValueError, match="compile: max_traces must be a positive int"):
        gt.compile(lambda: None, max_traces=0)


def test_decorator_forms_and_eager_errors_pass_through():
    @gt.compile(fallback=True)
    def f(x):
        return x + 1

    assert f(gt.ones(2)).tolist() == [2.0, 2.0]

    @gt.compile
    def g(x):
        return x @ x

    with pytest.raises(ValueError, match="matmul"):
        g(gt.ones(2, 3))
    assert g.traces == 0 and g(gt.ones(2, 2)).tolist() == [[2.0, 2.0], [2.0, 2.0]]


@pytest.mark.cuda
def test_a_replayed_gpu_step_equals_eager_and_never_waits_for_the_gpu():
    import cupy

    def build():
        model = nn.MLP([6, 12, 3], dropout=0.25).to("cuda")
        return model, gt.optim.Adam(model.parameters(), lr=1e-2)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_train_step)
    data = [(x.to("cuda"), y.to("cuda")) for x, y in _data(6, 8, "float32")]
    gt.manual_seed(7)  # the GPU's generators too
    eager = [_train_step(m1, o1, x, y, clip=1.0) for x, y in data]
    gt.manual_seed(7)
    sync = getattr(cupy, "reset_sync_count", None)
    compiled = []
    for i, (x, y) in enumerate(data):
        if i == 2 and sync is not None:
            sync()  # from the first replay on
        compiled.append(step(m2, o2, x, y, clip=1.0))
    if sync is not None:
        assert cupy.sync_count() == 0, dict(cupy.SYNCS)
    assert [a.item() for a in eager] == [b.item() for b in compiled]
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(p1.cpu().data, p2.cpu().data)


def _graphed_equal(a, b) -> bool:
    """A graphed step's number against eager's: bit for bit on the stand-in; on a GPU within
    float32 rounding, since cuBLAS may pick another algorithm while a stream captures."""
    import cupy

    a, b = np.asarray(a), np.asarray(b)
    if hasattr(cupy, "reset_sync_count"):
        return np.array_equal(a, b)
    return np.allclose(a, b, rtol=1e-5, atol=1e-7)


def _gpu_data(n: int) -> list:
    return [(x.to("cuda"), y.to("cuda")) for x, y in _data(n, 8, "float32", seed=3)]


def _gpu_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


@pytest.mark.cuda
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_a_cuda_graph_replays_the_step_with_eagers_numbers(opt_name):
    import cupy

    def build():
        model = nn.MLP([6, 12, 12, 3]).to("cuda")
        return model, OPTIMIZERS[opt_name](model.parameters())

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_gpu_step, cuda_graph=True)
    sync = getattr(cupy, "reset_sync_count", None)
    data = _gpu_data(10)
    want = [_gpu_step(m1, o1, x, y) for x, y in data]
    got = []
    for i, (x, y) in enumerate(data):
        if i == 2 and sync is not None:
            sync()  # from the first replay on: capturing and launching never wait for the GPU
        got.append(step(m2, o2, x, y))
    if sync is not None:
        assert cupy.sync_count() == 0, dict(cupy.SYNCS)
    assert _graphed_equal([a.item() for a in got], [b.item() for b in want])
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert _graphed_equal(p1.cpu().data, p2.cpu().data)
    # Two recordings, two warm replays, then every call is one launch of the captured graph
    # (which the stand-in runs without the replay's Python code, as a GPU would): forward,
    # backward, clipping and the optimizer's update, whose changing scalars (Adam's bias
    # corrections) the graph reads from GPU memory.
    assert len(_graphs(step)) == 1 and _launches(step) == 10 - 4


def _graphs(step) -> list:
    """The CUDA graph regions of the newest replay of `step`."""
    from gradtensor.compile import _GraphRegion

    (trace,) = [t for ts in step.cache.values() for t in ts if t.agreed]
    return [f for f in trace.run.__globals__.values() if isinstance(f, _GraphRegion)]


def _launches(step) -> int:
    """How often the newest replay of `step` launched its CUDA graphs."""
    return sum(g.launches for g in _graphs(step))


@pytest.mark.cuda
def test_a_cuda_graph_takes_each_steps_learning_rate_and_recaptures_for_new_settings():
    def build():
        model = nn.MLP([6, 12, 3]).to("cuda")
        opt = gt.optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, gt.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    scheduled = _scheduled(_gpu_step)
    (m1, o1, s1), (m2, o2, s2) = _twins(build)
    step = gt.compile(scheduled, cuda_graph=True)
    for i, (x, y) in enumerate(_gpu_data(14)):
        if i == 9:  # a setting the graph holds fixed: the update is planned and captured anew
            for o in (o1, o2):
                o.param_groups[0]["weight_decay"] = 0.1
        want = scheduled(m1, o1, s1, x, y).cpu().data
        assert _graphed_equal(step(m2, o2, s2, x, y).cpu().data, want), i
        assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert _graphed_equal(p1.cpu().data, p2.cpu().data)
        assert o1.state[p1]["step"] == o2.state[p2]["step"] == 14
    # Launched at steps 4 to 8 with the learning rate halved twice on the way; at step 9 the
    # new weight decay makes a new plan: two warm runs, then launched again from step 11.
    assert len(_graphs(step)) == 1 and _launches(step) == 5 + 3


class _LoopKernels:
    """The one-pass update kernels as a CUDA graph meets them, for the CuPy stand-in:
    `launch_update` is a device operation (a capture notes it, each launch runs it again) that
    runs the CPU loop on the arrays' memory with the scalars found in `scalars` as it runs."""

    def __init__(self):
        from cupy_standin._core import _device_op

        from gradtensor.kernels import optim_cpu

        self.cpu, self.launches = optim_cpu, []
        self.launch_update = _device_op(self._launch)
        self.update_scalars = optim_cpu.update_scalars

    def update_accepts(self, arrays):
        d = arrays[0]
        return d.dtype.char in "fd" and all(
            a is None or (a.dtype == d.dtype and a.shape == d.shape and a.flags.c_contiguous)
            for a in arrays
        )

    def _launch(self, fn, *columns, scalars):
        self.launches.append(fn)
        loop = self.cpu._UPDATES[fn][2]
        for t, p in enumerate(columns[0]):
            row = [p._a.reshape(-1) if c is None else c[t]._a.reshape(-1) for c in columns]
            loop(*row, scalars._a)


@pytest.mark.cuda
@pytest.mark.parametrize("groups", [1, 2], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("opt_name", ["sgd-nesterov-wd", "adam", "adamw-amsgrad", "rmsprop"])
def test_a_cuda_graph_launches_the_one_pass_update_with_scalars_from_gpu_memory(
    opt_name, groups, monkeypatch
):
    import cupy

    if not hasattr(cupy, "reset_sync_count"):
        pytest.skip("the stand-in's loop kernels stand for the GPU's; a GPU runs its own")
    from gradtensor.optim import optimizer

    def build():
        model = nn.MLP([6, 12, 12, 3]).to("cuda")
        opt = OPTIMIZERS[opt_name](model.parameters())
        if groups == 2:  # the last layer in a group of its own, at a tenth of the rate
            ps = list(model.parameters())
            first = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
            opt = type(opt)([dict(first, params=ps[:4]), dict(first, params=ps[4:],
                                                              lr=first["lr"] / 10)])  # fmt: skip
        return model, opt

    (m1, o1), (m2, o2) = _twins(build)
    loops = _LoopKernels()
    monkeypatch.setattr(optimizer, "active_kernels", lambda: loops)
    step = gt.compile(_gpu_step, cuda_graph=True)
    for x, y in _gpu_data(10):
        want = _gpu_step(m1, o1, x, y).cpu().data  # the array ops (no eager kernel here)
        assert np.array_equal(step(m2, o2, x, y).cpu().data, want)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(p1.cpu().data, p2.cpu().data)  # the loops match them bit for bit
    # One launch per group each time: two warm replays, the capture (which the stand-in runs and
    # then undoes), and six launches of the graph, each running it again with that step's
    # scalars.
    assert _launches(step) == 6 and loops.launches == [o2._kernel] * groups * (2 + 1 + 6)


@pytest.mark.cuda
def test_an_update_a_graph_cannot_hold_runs_between_graphs():
    class Plain(gt.optim.SGD):  # an update of its own, with no GPU scalars: run on the host
        @staticmethod
        def _apply(d, g, b, s, t, h):
            gt.optim.SGD._apply(d, g, b, s, t, h)

    def build():
        model = nn.MLP([6, 12, 3]).to("cuda")
        return model, Plain(model.parameters(), lr=0.1, momentum=0.9)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_gpu_step, cuda_graph=True)
    for x, y in _gpu_data(8):
        want = _gpu_step(m1, o1, x, y).cpu().data
        assert _graphed_equal(step(m2, o2, x, y).cpu().data, want)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert _graphed_equal(p1.cpu().data, p2.cpu().data)
    assert len(_graphs(step)) == 1 and _launches(step) == 8 - 4


@pytest.mark.cuda
def test_a_cuda_graph_never_writes_over_what_the_caller_holds():

    def build():
        model = nn.MLP([6, 12, 3]).to("cuda")
        return model, gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_gpu_step, cuda_graph=True)
    kept, want = [], []
    for i, (x, y) in enumerate(_gpu_data(9)):
        loss = _gpu_step(m1, o1, x, y)
        want.append((loss.cpu().data, [p.grad.cpu().data for p in m1.parameters()]))
        loss = step(m2, o2, x, y)
        kept.append((loss, [p.grad for p in m2.parameters()] if i >= 6 else []))
    for (loss, grads), (want_loss, want_grads) in zip(kept, want):
        assert _graphed_equal(loss.cpu().data, want_loss)
        for g, w in zip(grads, want_grads):
            assert _graphed_equal(g.cpu().data, w)
    # Steps 4 to 6 launched the graph; from step 6 on the caller holds each step's gradients,
    # so steps 7 and 8 ran the work into arrays of their own.
    assert _launches(step) == 3


@pytest.mark.cuda
def test_what_a_cuda_graph_cannot_capture_runs_without_one(monkeypatch, caplog):

    def build():
        model = nn.MLP([6, 12, 3], dropout=0.25).to("cuda")
        return model, gt.optim.SGD(model.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_gpu_step, cuda_graph=True)
    data = _gpu_data(6)
    gt.manual_seed(5)
    want = [_gpu_step(m1, o1, x, y).cpu().data for x, y in data]
    gt.manual_seed(5)
    with caplog.at_level(logging.WARNING, logger="gradtensor.compile"):
        got = [step(m2, o2, x, y).cpu().data for x, y in data]
    # Dropout's draw runs on the host between two graphs, which never replay a draw.
    assert all(map(np.array_equal, got, want)) and len(_graphs(step)) == 2
    assert _launches(step) == 2 * (6 - 4)

    # A capture that fails is announced, and the step goes on without a graph.
    real = gt.backend.cuda_runtime()

    class NoCapture:
        def __getattr__(self, name):
            return getattr(real, name)

        class Stream(real.Stream):
            def begin_capture(self, mode=None):
                raise RuntimeError("no capture today")

    monkeypatch.setattr(gt.backend, "cuda_runtime", NoCapture)
    model = nn.MLP([6, 8, 3]).to("cuda")
    twin = nn.MLP([6, 8, 3]).to("cuda")
    twin.load_state_dict(model.state_dict())
    opts = [gt.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)]
    step = gt.compile(_gpu_step, cuda_graph=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gradtensor.compile"):
        for x, y in _gpu_data(6):
            a, b = step(model, opts[0], x, y), _gpu_step(twin, opts[1], x, y)
            assert np.array_equal(a.cpu().data, b.cpu().data)
    assert "CUDA graph capture failed" in caplog.text and "no capture today" in caplog.text


@pytest.mark.cuda
def test_a_cuda_graph_captures_again_once_a_parameter_is_another_array():
    def build():
        model = nn.MLP([6, 12, 3]).to("cuda")
        return model, gt.optim.SGD(model.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(build)
    step = gt.compile(_gpu_step, cuda_graph=True)
    for i, (x, y) in enumerate(_gpu_data(12)):
        if i == 6:  # a new array for a weight, with the same values, layout and optimizer
            for m in (m1, m2):
                m.layers[0].weight.data = m.layers[0].weight.data.copy()
        want = _gpu_step(m1, o1, x, y).cpu().data
        assert _graphed_equal(step(m2, o2, x, y).cpu().data, want)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert _graphed_equal(p1.cpu().data, p2.cpu().data)
    # Launched at steps 4 and 5; after the swap two plain runs, then captured again: 8 to 11.
    assert _launches(step) == 2 + 4
