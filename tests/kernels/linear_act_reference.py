"""Float64 NumPy reference for the linear + activation kernels, shared by the kernel tests."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from gradtensor.kernels.activations import TABLE

SHAPES = [(1, 1, 1), (5, 37, 19), (130, 64, 257), (4096, 64, 64)]

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(v: np.ndarray) -> np.ndarray:
    # exp of the non-positive side only: no overflow warnings, no 1 - (almost 1) cancellation.
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# The activation table's maths in float64 NumPy, with erfc for an accurate normal CDF tail.
_MATHS = SimpleNamespace(
    const=float,
    where=np.where,
    maximum=np.maximum,
    exp=np.exp,
    tanh=np.tanh,
    sigmoid=_sigmoid,
    ncdf=lambda v: 0.5 * _erfc(-v / math.sqrt(2.0)),
)


def activation(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """act(z) and act'(z) in float64, from the activation table (kernels.activations)."""
    entry = TABLE[name]
    value, grad = entry.maths(_MATHS)
    y = value(z)
    return y, grad(np.ones_like(z), z if entry.saves == "input" else y)


def forward_backward(x, w, b, gy, name):
    """y, gx, gw, gb of act(x @ w.T + b), all float64."""
    x, w, gy = (np.asarray(a, np.float64) for a in (x, w, gy))
    z = x @ w.T
    if b is not None:
        z = z + np.asarray(b, np.float64)
    y, d = activation(name, z)
    gz = gy * d
    return y, gz @ w, gz.T @ x, gz.sum(axis=0)


def inputs(shape, dtype, seed=0, bias=True):
    """x, w, b, gy with a spread of pre-activations that crosses every activation's bends."""
    batch, n_in, n_out = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    # Scaled so that x @ w.T has unit variance whatever In is.
    w = (rng.standard_normal((n_out, n_in)) * (1.5 / math.sqrt(n_in))).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    gy = rng.standard_normal((batch, n_out)).astype(dtype)
    return x, w, b, gy


def assert_close(name, got, want, rtol):
    """|got - want| <= rtol * scale, where scale is the largest |want| (at least 1)."""
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert np.all(np.isfinite(got)), f"{name}: non-finite values"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= rtol * scale, f"{name}: max error {err:.3g} > {rtol:g} * {scale:.3g}"


RTOL = {np.dtype(np.float16): 2e-2, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def check_module(module, shape, name, bias, dtype, to_device, to_host, **kwargs):
    """Run forward and backward of `module` on device copies and compare with the reference."""
    x, w, b, gy = inputs(shape, dtype, bias=bias)
    dev = [None if a is None else to_device(a) for a in (x, w, b, gy)]
    y, aux = module.linear_act_forward(dev[0], dev[1], dev[2], name, **kwargs)
    gx, gw, gb = module.linear_act_backward(dev[3], dev[0], dev[1], aux, name, bias, **kwargs)
    ry, rgx, rgw, rgb = forward_backward(x, w, b, gy, name)
    rtol = RTOL[np.dtype(dtype)]
    for label, got, want in [("y", y, ry), ("gx", gx, rgx), ("gw", gw, rgw)]:
        assert got.dtype == np.dtype(dtype), f"{label} has dtype {got.dtype}"
        assert_close(label, to_host(got), want, rtol)
    if bias:
        assert gb.dtype == np.dtype(dtype)
        assert_close("gb", to_host(gb), rgb, rtol)
    else:
        assert gb is None
    if name == "identity":
        assert aux is None
    return y, aux
