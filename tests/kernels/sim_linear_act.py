"""kernels.cuda in Numba's CUDA simulator, on NumPy arrays and tiny shapes.

Not collected on its own (the name does not start with test_): test_cuda_sim.py runs it in a
subprocess with NUMBA_ENABLE_CUDASIM=1, which has to be set before Numba is first imported.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 before Numba is imported", allow_module_level=True)

from linear_act_reference import check_module, inputs  # noqa: E402

from gradtensor import kernels  # noqa: E402
from gradtensor.kernels import cuda as kcuda  # noqa: E402

PATHS = ["a", "b"]


def host(a):
    return np.asarray(a)


def test_simulator_is_active():
    assert kcuda.SIMULATOR
    # The simulator geometry is small enough that the shapes below cross tile edges.
    assert kcuda.TILE == 8 and kcuda.TILE_K == 4


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_float32(name, bias, path):
    check_module(kcuda, (5, 11, 9), name, bias, np.float32, np.asarray, host, path=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_float64(name, path):
    check_module(kcuda, (3, 9, 10), name, True, np.float64, np.asarray, host, path=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["relu", "gelu"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (9, 17, 3)], ids=["1x1x1", "9x17x3"])
def test_ragged_shapes(shape, name, path):
    check_module(kcuda, shape, name, True, np.float32, np.asarray, host, path=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["relu", "gelu_tanh", "sigmoid"])
def test_float16_accumulates_in_float32(name, path):
    check_module(kcuda, (4, 6, 5), name, True, np.float16, np.asarray, host, path=path)


def test_default_path_follows_the_crossover(monkeypatch):
    x, w, b, gy = inputs((4, 6, 5), np.float32)
    assert kcuda.use_path_b(4, 6, 5)
    small = kcuda.linear_act_forward(x, w, b, "gelu")
    monkeypatch.setattr(kcuda, "PATH_B_MAX_MACS", 0)
    assert not kcuda.use_path_b(4, 6, 5)
    large = kcuda.linear_act_forward(x, w, b, "gelu")
    for a, c in zip(small, large, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_inputs(path):
    x, w, b, gy = inputs((5, 7, 6), np.float32)
    x_t, w_t, gy_t = (np.ascontiguousarray(a.T).T for a in (x, w, gy))
    y, aux = kcuda.linear_act_forward(x_t, w_t, b, "tanh", path=path)
    grads = kcuda.linear_act_backward(gy_t, x_t, w_t, np.asfortranarray(aux), "tanh", path=path)
    want_y, want_aux = kcuda.linear_act_forward(x, w, b, "tanh", path=path)
    want = kcuda.linear_act_backward(gy, x, w, want_aux, "tanh", path=path)
    np.testing.assert_allclose(y, want_y, rtol=1e-6)
    for a, c in zip(grads, want, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_empty_batch(path):
    x, w, b, _ = inputs((0, 3, 4), np.float32)
    y, aux = kcuda.linear_act_forward(x, w, b, "relu", path=path)
    gy = np.zeros((0, 4), np.float32)
    gx, gw, gb = kcuda.linear_act_backward(gy, x, w, aux, "relu", path=path)
    assert y.shape == (0, 4) and gx.shape == (0, 3)
    np.testing.assert_array_equal(gw, 0)
    np.testing.assert_array_equal(gb, 0)


def test_warmup_launches_every_kernel(launches):
    kcuda.warmup((np.float32,))
    assert {name for name, _, _ in launches} == set(kcuda._kernels(np.dtype(np.float32), "relu"))


@pytest.fixture
def launches(monkeypatch):
    """(kernel name, grid, block) of every launch, as the kernels themselves receive them."""
    seen = []

    class Recorder:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, config):
            grid, block = config[0], config[1]
            seen.append((self.name, tuple(grid), tuple(block)))
            return self.kernel[config]

    built = kcuda._kernels
    monkeypatch.setattr(
        kcuda, "_kernels", lambda *key: {n: Recorder(n, k) for n, k in built(*key).items()}
    )
    return seen


@pytest.mark.parametrize("shape", [(4, 6, 5), (40, 30, 20)], ids=["path_b", "path_a"])
def test_launches_take_the_host_code_of_a_gpu_run(launches, monkeypatch, shape):
    # The default path choice and launch_sizes, the functions a GPU run calls, decide here too.
    monkeypatch.setattr(kcuda, "PATH_B_MAX_MACS", 1000)
    x, w, b, gy = inputs(shape, np.float32)
    y, aux = kcuda.linear_act_forward(x, w, b, "gelu")
    kcuda.linear_act_backward(gy, x, w, aux, "gelu")
    if kcuda.use_path_b(*shape):
        expected = {"gemm_forward", "gemm_grad_x", "gemm_grad_w"}
    else:
        expected = {"epilogue_forward", "epilogue_backward"}
    assert {name for name, _, _ in launches} == expected
    for name, grid, block in launches:
        assert (grid, block) == kcuda.launch_sizes(name, *shape)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_grid_clamped_to_the_limit_still_covers_every_tile(launches, monkeypatch, name, path):
    # A tiny stand-in for CUDA's grid limits makes every kernel stride over 3 x 3 tiles.
    monkeypatch.setattr(kcuda, "MAX_GRID", (2, 1))
    check_module(kcuda, (19, 17, 18), name, True, np.float32, np.asarray, host, path=path)
    assert launches
    for kernel, grid, _ in launches:
        assert grid[0] <= 2 and grid[1] == 1, (kernel, grid)


def test_float16_relu_mask_is_the_float32_mask():
    f32 = np.float32
    x, w, b, _ = inputs((130, 64, 257), np.float16)
    z = x.astype(f32) @ w.astype(f32).T + b.astype(f32)
    # These inputs have pre-activations whose sign a float16 product, rounded before the bias
    # is added, gets wrong; path A did that (path B is too slow here and never rounded early).
    rounded_early = (x.astype(f32) @ w.astype(f32).T).astype(np.float16).astype(f32) + b
    assert np.any((rounded_early > 0) != (z > 0))
    y, aux = kcuda.linear_act_forward(x, w, b, "relu", path="a")
    assert y.dtype == np.float16 and aux.dtype == np.float16
    np.testing.assert_array_equal(y > 0, z > 0)
    np.testing.assert_array_equal(aux > 0, z > 0)
    np.testing.assert_allclose(y.astype(f32), np.maximum(z, 0), rtol=2**-11, atol=0)


def test_rejects_bad_input():
    x, w, b, gy = inputs((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"linear_act_forward: unknown activation 'elu'"):
        kcuda.linear_act_forward(x, w, b, "elu")
    with pytest.raises(ValueError, match=r"dtypes must match, got x float32, weight float16"):
        kcuda.linear_act_forward(x, w.astype(np.float16), None, "relu")
    with pytest.raises(ValueError, match=r"unsupported dtype int64 for x; use float16, float32"):
        kcuda.linear_act_forward(x.astype(np.int64), w.astype(np.int64), None, "relu")
    with pytest.raises(ValueError, match=r"x \(2, 3\) and weight \(3, 4\) do not align"):
        kcuda.linear_act_forward(x, w.T, None, "relu")
    with pytest.raises(ValueError, match=r"path must be None, 'a' or 'b', got 'c'"):
        kcuda.linear_act_forward(x, w, b, "relu", path="c")
    with pytest.raises(ValueError, match=r"linear_act_backward: gy must have shape"):
        kcuda.linear_act_backward(gy.T, x, w, None, "identity")
    with pytest.raises(ValueError, match=r"weight must be a NumPy \(CUDA simulator\) array"):
        kcuda.linear_act_forward(x, w.tolist(), b, "relu")


@pytest.mark.parametrize("path", PATHS)
def test_backward_without_input_grad_skips_gx(path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    w = rng.standard_normal((3, 7)).astype(np.float32)
    y, aux = kcuda.linear_act_forward(x, w, None, "relu", path=path)
    gy = rng.standard_normal(host(y).shape).astype(np.float32)
    full = kcuda.linear_act_backward(gy, x, w, aux, "relu", bias=False, path=path)
    gx, gw, gb = kcuda.linear_act_backward(
        gy, x, w, aux, "relu", bias=False, input_grad=False, path=path
    )
    assert gx is None and gb is None
    np.testing.assert_allclose(host(gw), host(full[1]), rtol=1e-6)
