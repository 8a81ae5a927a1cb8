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
        (lambda p, g, b: (p.tolist(), g, b), "param must be a float32 or float64"),
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
