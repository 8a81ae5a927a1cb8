"""The one-pass optimizer kernels at the array level: what they accept and how they refuse."""

import numpy as np
import pytest

from gradtensor import kernels


def _arrays(n=3, shape=(4, 5), dtype=np.float32):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def test_sgd_update_in_place_with_momentum_and_weight_decay():
    p, g, buf = _arrays()
    p0, g0, b0 = p.copy(), g.copy(), buf.copy()
    kernels.sgd_update(p, g, buf, lr=0.1, momentum=0.9, weight_decay=0.01)
    d = g0 + p0 * np.float32(0.01)
    want_buf = b0 * np.float32(0.9) + d
    np.testing.assert_array_equal(buf, want_buf)
    np.testing.assert_array_equal(p, p0 + want_buf * np.float32(-0.1))
    np.testing.assert_array_equal(g, g0)  # the gradient is read, never written


def test_adam_update_matches_its_formula_in_float64():
    p, g, m, v = _arrays(4, dtype=np.float64)
    v = np.abs(v)
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    lr, b1, b2, eps, t = 0.01, 0.9, 0.999, 1e-8, 3
    kernels.adam_update(
        p, g, m, v, None, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=0.0,
        decoupled=False, step_size=lr / (1 - b1**t), bias_correction2_sqrt=(1 - b2**t) ** 0.5,
    )  # fmt: skip
    m1 = b1 * m0 + (1 - b1) * g
    v1 = b2 * v0 + (1 - b2) * g * g
    want = p0 - lr / (1 - b1**t) * m1 / (np.sqrt(v1) / (1 - b2**t) ** 0.5 + eps)
    np.testing.assert_allclose(m, m1, rtol=1e-14)
    np.testing.assert_allclose(v, v1, rtol=1e-14)
    np.testing.assert_allclose(p, want, rtol=1e-13)


def test_rmsprop_update_centered_with_momentum():
    p, g, sq, ga, buf = _arrays(5, dtype=np.float64)
    sq = np.abs(sq) + 10.0  # above ga^2, so the centered variance stays positive
    ga = ga * 0.5
    p0, sq0, ga0, b0 = p.copy(), sq.copy(), ga.copy(), buf.copy()
    kernels.rmsprop_update(
        p, g, sq, ga, buf, lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.0, momentum=0.5
    )
    sq1 = 0.9 * sq0 + 0.1 * g * g
    ga1 = ga0 + 0.1 * (g - ga0)
    b1 = 0.5 * b0 + g / (np.sqrt(sq1 - ga1 * ga1) + 1e-8)
    np.testing.assert_allclose(sq, sq1, rtol=1e-14)
    np.testing.assert_allclose(ga, ga1, rtol=1e-14)
    np.testing.assert_allclose(p, p0 - 0.01 * b1, rtol=1e-13)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda p, g, b: (p.astype(np.int32), g, b), "param must be a float32 or float64"),
        (lambda p, g, b: (p, g.astype(np.float64), b), "grad must be a NumPy array like param"),
        (lambda p, g, b: (p, g[:2], b), r"grad .* shape \(4, 5\)"),
        (lambda p, g, b: (p, g, np.asfortranarray(b)), "momentum_buffer must be C-contiguous"),
        (lambda p, g, b: (p.T.copy().T, g.T.copy().T, b), "param must be C-contiguous"),
        (lambda p, g, b: (p.tolist(), g, b), "param must be a NumPy array"),
    ],
)
def test_bad_arrays_are_refused_by_name(bad, match):
    p, g, b = bad(*_arrays())
    with pytest.raises(ValueError, match=match):
        kernels.sgd_update(p, g, b, lr=0.1, momentum=0.9)


def test_read_only_param_is_refused():
    p, g, b = _arrays()
    p.flags.writeable = False
    with pytest.raises(ValueError, match="param must be C-contiguous and writeable"):
        kernels.sgd_update(p, g, b, lr=0.1, momentum=0.9)


def test_a_planned_update_runs_exactly_what_the_call_runs_and_checks_when_made():
    ps, gs, bufs = _arrays(2), _arrays(2), _arrays(2)
    ps2, bufs2 = [p.copy() for p in ps], [b.copy() for b in bufs]
    run = kernels.plan_update("sgd_update", ps2, gs, bufs2, lr=0.1, momentum=0.9)
    for lr in (0.1, 0.05):  # the scalars are the run's own: a scheduler may change them
        kernels.sgd_update(ps, gs, bufs, lr=lr, momentum=0.9)
        run(gs, dict(lr=lr, momentum=0.9))
    for a, c in zip(ps + bufs, ps2 + bufs2):
        assert np.array_equal(a, c)
    with pytest.raises(ValueError, match="sgd_update: 1 gradients for 2 planned parameters"):
        run(gs[:1], dict(lr=0.1, momentum=0.9))
    one = kernels.plan_update("sgd_update", ps2[0], gs[0], bufs2[0], lr=0.1, momentum=0.9)
    one(gs[0], dict(lr=0.1, momentum=0.9))  # one array each: one gradient
    kernels.sgd_update(ps[0], gs[0], bufs[0], lr=0.1, momentum=0.9)
    assert np.array_equal(ps[0], ps2[0]) and np.array_equal(bufs[0], bufs2[0])
    with pytest.raises(ValueError, match=r"sgd_update: grad\[1\] must be a NumPy array like"):
        kernels.plan_update("sgd_update", ps, [gs[0], gs[1][:2]], None, lr=0.1)
