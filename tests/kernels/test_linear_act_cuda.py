"""kernels.cuda on a real GPU with CuPy arrays (skipped, with the reason, where there is none)."""

import numpy as np
import pytest
from linear_act_reference import SHAPES, check_module, inputs

from gradtensor import kernels

try:
    import cupy
except ImportError:
    cupy = None


def _why_no_gpu():
    if cupy is None:
        return "CuPy is not installed"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy raises its own error types when the driver is missing
        return f"no CUDA GPU is available ({type(e).__name__}: {e})"
    return None if count > 0 else "no CUDA GPU is available"


NO_GPU = _why_no_gpu()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(NO_GPU is not None, reason=str(NO_GPU))]

PATHS = ["a", "b"]


@pytest.fixture(scope="module")
def kcuda():

    assert not kernels.cuda.SIMULATOR
    return kernels.cuda


def dev(a):
    return cupy.asarray(a)


def host(a):
    return cupy.asnumpy(a)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(kcuda, shape, name, bias, dtype, path):
    check_module(kcuda, shape, name, bias, dtype, dev, host, path=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_float16(kcuda, name, path):
    check_module(kcuda, (130, 64, 257), name, True, np.float16, dev, host, path=path)


@pytest.mark.parametrize("path", [None, *PATHS])
def test_top_level_dispatches_cupy(kcuda, path):
    x, w, b, gy = (dev(a) for a in inputs((33, 20, 17), np.float32))
    y, aux = kernels.linear_act_forward(x, w, b, "gelu")
    assert isinstance(y, cupy.ndarray)
    gx, gw, gb = kernels.linear_act_backward(gy, x, w, aux, "gelu")
    want_y, _ = kcuda.linear_act_forward(x, w, b, "gelu", path=path)
    np.testing.assert_allclose(host(y), host(want_y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_runs_on_the_current_stream(kcuda, path):
    x, w, b, gy = (dev(a) for a in inputs((257, 65, 33), np.float32))
    want_y, want_aux = kcuda.linear_act_forward(x, w, b, "relu", path=path)
    want = kcuda.linear_act_backward(gy, x, w, want_aux, "relu", path=path)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        y, aux = kcuda.linear_act_forward(x, w, b, "relu", path=path)
        got = kcuda.linear_act_backward(gy, x, w, aux, "relu", path=path)
    stream.synchronize()
    np.testing.assert_allclose(host(y), host(want_y), rtol=1e-6)
    for a, c in zip(got, want, strict=True):
        np.testing.assert_allclose(host(a), host(c), rtol=1e-5, atol=1e-5)


def test_rejects_host_arrays(kcuda):
    x, w, b, _ = inputs((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"linear_act_forward: weight must be a CUDA array"):
        kcuda.linear_act_forward(dev(x), w, None, "relu")
