"""kernels.optim_cuda in Numba's CUDA simulator, against kernels.optim_cpu, on NumPy arrays.

Not collected on its own (the name does not start with test_): test_optim_cuda.py runs it in a
subprocess with NUMBA_ENABLE_CUDASIM=1, which has to be set before Numba is first imported.
"""

import math
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 before Numba is imported", allow_module_level=True)

from gradtensor.kernels import optim_cpu as kcpu  # noqa: E402
from gradtensor.kernels import optim_cuda as kcuda  # noqa: E402

SIZES = [1, 37, 1000]
DTYPES = [np.float32, np.float64]

SGD = {
    "plain": dict(lr=0.1),
    "wd": dict(lr=0.1, weight_decay=0.01),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
}
ADAM = {
    "adam": dict(weight_decay=0.0, decoupled=False, amsgrad=False),
    "adam-l2": dict(weight_decay=0.01, decoupled=False, amsgrad=False),
    "adamw": dict(weight_decay=0.01, decoupled=True, amsgrad=False),
    "amsgrad": dict(weight_decay=0.0, decoupled=False, amsgrad=True),
    "adamw-amsgrad": dict(weight_decay=0.01, decoupled=True, amsgrad=True),
}
RMSPROP = {
    "plain": dict(centered=False, momentum=0.0, weight_decay=0.0),
    "centered": dict(centered=True, momentum=0.0, weight_decay=0.0),
    "momentum": dict(centered=False, momentum=0.9, weight_decay=0.01),
    "centered-momentum": dict(centered=True, momentum=0.9, weight_decay=0.01),
}

grid = pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
sizes = pytest.mark.parametrize("size", SIZES)
nans = pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan"])


def _arrays(n, size, dtype, nan, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(size).astype(dtype) for _ in range(n)]
    if nan:
        arrays[1][::3] = np.nan  # the gradient: NaN must flow through every state like NumPy's
    return arrays


def _check(cpu, cuda, dtype):
    for a, b in zip(cpu, cuda, strict=True):
        if a is None:
            assert b is None
        elif dtype == np.float64:
            np.testing.assert_array_equal(b, a)  # the same IEEE operations in the same order
        else:
            # The simulator runs math.sqrt in Python (float64) on float32 values: one more rounding.
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=0)


def _twice(update, state, hypers):
    copies = [None if a is None else a.copy() for a in state]
    for h in hypers:
        update(*copies, **h)
    return copies


@nans
@sizes
@grid
@pytest.mark.parametrize("name", SGD)
def test_sgd(name, dtype, size, nan):
    p, g, buf = _arrays(3, size, dtype, nan)
    h = SGD[name]
    state = [p, g, buf if h.get("momentum") else None]
    # The first step starts the buffer at the gradient; the second uses it.
    steps = [dict(h, first=bool(h.get("momentum"))), dict(h)]
    cpu = _twice(kcpu.sgd_update, state, steps)
    _check(cpu, _twice(kcuda.sgd_update, state, steps), dtype)
    np.testing.assert_array_equal(cpu[1], g)  # the gradient is read, never written


@nans
@sizes
@grid
@pytest.mark.parametrize("name", ADAM)
def test_adam(name, dtype, size, nan):
    p, g, m, v, vmax = _arrays(5, size, dtype, nan)
    v, vmax = np.abs(v), np.abs(vmax)
    c = ADAM[name]
    if nan and c["amsgrad"]:
        vmax[1::4] = np.nan  # a NaN already in the running max also wins, as in np.maximum
    state = [p, g, m, v, vmax if c["amsgrad"] else None]
    lr, b1, b2 = 1e-2, 0.9, 0.999
    steps = [
        dict(
            lr=lr,
            beta1=b1,
            beta2=b2,
            eps=1e-8,
            weight_decay=c["weight_decay"],
            decoupled=c["decoupled"],
            step_size=lr / (1 - b1**t),
            bias_correction2_sqrt=math.sqrt(1 - b2**t),
        )
        for t in (1, 2)
    ]
    _check(_twice(kcpu.adam_update, state, steps), _twice(kcuda.adam_update, state, steps), dtype)


@nans
@sizes
@grid
@pytest.mark.parametrize("name", RMSPROP)
def test_rmsprop(name, dtype, size, nan):
    p, g, sq, ga, buf = _arrays(5, size, dtype, nan)
    sq = np.abs(sq) + 10  # above ga^2, so the centered variance stays positive
    ga = ga * 0.5
    c = RMSPROP[name]
    state = [p, g, sq, ga if c["centered"] else None, buf if c["momentum"] else None]
    h = dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=c["weight_decay"], momentum=c["momentum"])
    got = _twice(kcuda.rmsprop_update, state, [h, h])
    _check(_twice(kcpu.rmsprop_update, state, [h, h]), got, dtype)


def test_simulator_is_active_and_strides_the_grid():
    assert kcuda.SIMULATOR
    assert max(SIZES) > kcuda._THREADS * kcuda._MAX_BLOCKS  # the grid-stride loop goes round


def test_empty_parameter_is_a_no_op():
    p, g = np.zeros(0, np.float32), np.zeros(0, np.float32)
    kcuda.sgd_update(p, g, None, lr=0.1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda p, g, b: (p.astype(np.int32), g, b), "param must be a float32 or float64"),
        (lambda p, g, b: (p, g.astype(np.float64), b), "grad must be a .* array like param"),
        (lambda p, g, b: (p, g[:2], b), r"grad .* shape \(4, 5\)"),
        (lambda p, g, b: (p, g, np.asfortranarray(b)), "momentum_buffer must be C-contiguous"),
        # A list is a list of tensors: each entry must be an array.
        (lambda p, g, b: (p.tolist(), g, b), r"param\[0\] must be a float32 or float64"),
    ],
)
def test_bad_arrays_are_refused_by_name(bad, match):
    p, g, b = bad(*(np.ones((4, 5), np.float32) for _ in range(3)))
    with pytest.raises(ValueError, match=match):
        kcuda.sgd_update(p, g, b, lr=0.1, momentum=0.9)


def test_read_only_param_is_refused():
    p, g, b = (np.ones((4, 5), np.float32) for _ in range(3))
    p.flags.writeable = False
    with pytest.raises(ValueError, match="param must be C-contiguous and writeable"):
        kcuda.sgd_update(p, g, b, lr=0.1, momentum=0.9)


class _Counted:
    """A kernel that counts its launches and the tensors each one is given."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, []

    def __getitem__(self, config):
        launch = self.kernel[config]

        def run(n, *args):
            self.launches.append(n)
            return launch(n, *args)

        return run


def _sizes(count):
    return [(0, 1, 37, 1000, 5, 64)[k % 6] for k in range(count)]


LISTS = {
    "sgd": (
        "_sgd", "sgd_update", 3, dict(lr=0.1, momentum=0.9, weight_decay=0.01, first=False)
    ),
    "adam": (
        "_adam", "adam_update", 5,
        dict(
            lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True,
            step_size=0.1, bias_correction2_sqrt=0.05,
        ),
    ),
    "rmsprop": (
        "_rmsprop", "rmsprop_update", 5,
        dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=0.9),
    ),
}  # fmt: skip


@pytest.mark.parametrize("count", [1, 3, "many"])
@pytest.mark.parametrize("name", LISTS)
def test_a_list_of_tensors_is_one_launch_per_few_and_updates_each_like_the_cpu(
    name, count, monkeypatch
):
    kernel, fn, n_lists, h = LISTS[name]
    per = kcuda.per_launch(n_lists)
    count = per + 3 if count == "many" else count
    rows = []
    for k, size in enumerate(_sizes(count)):
        arrays = _arrays(n_lists, size, np.float32, nan=False, seed=k)
        if name == "adam":
            arrays[3:] = [np.abs(a) for a in arrays[3:]]  # second moments are not negative
        elif name == "rmsprop":
            arrays[2], arrays[3] = np.abs(arrays[2]) + 10, arrays[3] * 0.5  # sq above ga^2
        rows.append(arrays)
    columns = [[row[j] for row in rows] for j in range(n_lists)]
    counted = _Counted(getattr(kcuda, kernel))
    monkeypatch.setattr(kcuda, kernel, counted)
    got = [[a.copy() for a in column] for column in columns]
    getattr(kcuda, fn)(*got, **h)
    # Every tensor is updated as the CPU updates it alone; the gradients are only read.
    for k, row in enumerate(rows):
        want = [a.copy() for a in row]
        getattr(kcpu, fn)(*want, **h)
        _check(want, [column[k] for column in got], np.float32)
        np.testing.assert_array_equal(got[1][k], row[1])
    # One launch per `per` tensors; a chunk of only empty tensors launches nothing.
    chunks = [_sizes(count)[i : i + per] for i in range(0, count, per)]
    assert counted.launches == [len(c) for c in chunks if max(c) > 0]


def test_list_arguments_are_checked_tensor_by_tensor_before_any_update():
    ps = [np.ones(3, np.float32), np.ones((2, 2), np.float32)]
    gs = [np.ones(3, np.float32), np.ones((2, 2), np.float64)]
    before = [p.copy() for p in ps]
    with pytest.raises(ValueError, match=r"grad\[1\] must be a .* array like param\[1\]"):
        kcuda.sgd_update(ps, gs, None, lr=0.1)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p, b)  # the first tensor was not updated either
    with pytest.raises(ValueError, match="grad must be a list of 2 arrays, as param is"):
        kcuda.sgd_update(ps, gs[:1], None, lr=0.1)
    with pytest.raises(ValueError, match="momentum_buffer must be a list of 2 arrays"):
        kcuda.sgd_update(ps, [np.ones(3, np.float32), np.ones((2, 2), np.float32)], ps[0], lr=0.1)
    with pytest.raises(ValueError, match="grad must be one array, as param is"):
        kcuda.sgd_update(ps[0], [gs[0]], None, lr=0.1)
    kcuda.sgd_update([], [], None, lr=0.1)  # an empty list updates nothing


def test_the_device_checks_optimizer_part_runs(monkeypatch):
    """benchmarks/gpu_check.py's optimizer check, on NumPy in place of CuPy: its plumbing works
    and it reports every update as agreeing with the CPU."""
    import contextlib
    import sys
    import types
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    monkeypatch.syspath_prepend(str(root / "benchmarks"))
    fake = types.SimpleNamespace(asarray=np.array, asnumpy=np.asarray)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    import gpu_check

    class Stream(contextlib.nullcontext):
        def synchronize(self):
            pass

    result = gpu_check._check_optimizers(Stream(), largest=300)  # small: the simulator is slow
    assert len(result) == 6 and set(result.values()) == {"ok"}, result


def _launched(fn, state, hypers, dtype):
    """`_twice`, through launch_update: one scalars array, rewritten before each launch (as a
    CUDA graph's step writes them), the launch reading what is there when it runs."""
    copies = [None if a is None else a.copy() for a in state]
    in_use = tuple(a is not None for a in copies[2:])
    scalars = np.zeros(len(kcuda.update_scalars(fn, dtype, in_use, **hypers[0])), dtype)
    for h in hypers:
        scalars[...] = kcuda.update_scalars(fn, dtype, in_use, **h)
        kcuda.launch_update(fn, *copies, scalars=scalars)
    return copies


@grid
@pytest.mark.parametrize(
    "fn, n, steps",
    [
        ("sgd_update", 3, [dict(lr=0.1, momentum=0.9, first=True, weight_decay=0.01),
                           dict(lr=0.05, momentum=0.9, weight_decay=0.01)]),
        ("adam_update", 5, [dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                                 decoupled=True, step_size=1e-2 / (1 - 0.9**t),
                                 bias_correction2_sqrt=math.sqrt(1 - 0.999**t))
                            for t in (1, 2, 3)]),
        ("rmsprop_update", 5, [dict(lr=lr, alpha=0.9, eps=1e-8, weight_decay=0.0, momentum=0.5)
                               for lr in (1e-2, 5e-3)]),
    ],
)  # fmt: skip
def test_an_update_reads_its_scalars_from_a_gpu_array_at_each_launch(fn, n, steps, dtype):
    state = _arrays(n, 1000, dtype, nan=False)
    if fn != "sgd_update":
        state[2] = np.abs(state[2]) + 10  # second moments (Adam's m stays signed)
        state[3] = np.abs(state[3])
    if fn == "rmsprop_update":
        state[3] = None  # not centered
    want = _twice(getattr(kcuda, fn), state, steps)
    got = _launched(fn, state, steps, dtype)
    for a, b in zip(want, got):
        if a is not None:
            np.testing.assert_array_equal(b, a)  # the same kernel, the same scalars


def test_a_scalars_array_that_does_not_fit_is_refused_by_name():
    p, g, b = _arrays(3, 10, np.float32, nan=False)
    for bad, match in [
        (np.zeros(8, np.float64), r"sgd_update: scalars .* float32 .*\(8,\).* got float64"),
        (np.zeros(7, np.float32), r"got float32 \(7,\)"),
        ([0.0] * 8, "got list"),
    ]:
        with pytest.raises(ValueError, match=match):
            kcuda.launch_update("sgd_update", p, g, b, scalars=bad)


def test_a_planned_update_on_the_gpu_takes_the_gradients_and_scalars_as_the_cpus_does(
    monkeypatch,
):
    from gradtensor import kernels

    monkeypatch.setattr(kernels, "_optim_module", lambda fn, param: kcuda)  # the simulator's
    ps, gs, bufs = ([_arrays(1, n, np.float32, nan=False, seed=k)[0] for n in (5, 64)]
                    for k in range(3))  # fmt: skip
    got_ps, got_bufs = [p.copy() for p in ps], [b.copy() for b in bufs]
    run = kernels.plan_update("sgd_update", got_ps, gs, got_bufs, lr=0.1, momentum=0.9)
    for lr in (0.1, 0.05):  # the scalars are the run's own: a scheduler may change them
        kcpu.sgd_update(ps, gs, bufs, lr=lr, momentum=0.9)
        run(gs, dict(lr=lr, momentum=0.9))
    for want, got in zip(ps + bufs, got_ps + got_bufs):
        np.testing.assert_allclose(got, want, rtol=1e-6)
