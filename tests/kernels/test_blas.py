"""kernels.blas: the GEMM behind the CPU kernels gives NumPy's results for every layout it takes."""

import importlib.metadata
import os
import subprocess
import sys

import numpy as np
import pytest

from gradtensor.kernels import blas


def _mkl_installed():
    if sys.platform != "linux":  # kernels.blas looks for libmkl_rt.so, the Linux library
        return False
    try:
        importlib.metadata.distribution("mkl")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(autouse=True)
def _every_size_to_blas(monkeypatch):
    """Tiny operands exercise the BLAS path too, not only the small-size shortcut."""
    monkeypatch.setattr(blas, "SMALL_MACS", 0)


def _layout(a, order):
    """a itself (C) or a transposed view of a C-contiguous copy of a.T (F)."""
    return np.ascontiguousarray(a) if order == "C" else np.ascontiguousarray(a.T).T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("orders", ["CC", "CF", "FC", "FF"])
@pytest.mark.parametrize("mkn", [(1, 1, 1), (5, 37, 19), (130, 64, 257), (1, 7, 3), (6, 1, 4)])
def test_matmul_matches_numpy(mkn, orders, dtype):
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a = _layout(rng.standard_normal((m, k)).astype(dtype), orders[0])
    b = _layout(rng.standard_normal((k, n)).astype(dtype), orders[1])
    out = np.full((m, n), np.nan, dtype)
    assert blas.matmul(a, b, out) is out
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, want, rtol=rtol, atol=rtol)


def test_what_blas_cannot_take_goes_to_numpy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 12)).astype(np.float32)
    strided = a[:, ::2]  # neither C- nor F-contiguous
    b = rng.standard_normal((6, 5)).astype(np.float32)
    out = np.empty((8, 5), np.float32)
    np.testing.assert_allclose(blas.matmul(strided, b, out), strided @ b, rtol=1e-5)
    empty = blas.matmul(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32),
                        np.full((3, 4), np.nan, np.float32))  # fmt: skip
    np.testing.assert_array_equal(empty, np.zeros((3, 4), np.float32))
    i, j = np.ones((2, 3), np.int64), np.ones((3, 2), np.int64)
    ints = blas.matmul(i, j, np.empty((2, 2), np.int64))
    np.testing.assert_array_equal(ints, np.full((2, 2), 3))
    sq = rng.standard_normal((4, 4)).astype(np.float32)
    want = sq @ sq
    np.testing.assert_allclose(blas.matmul(sq, sq.copy(), sq), want, rtol=1e-5)  # out is an input


def test_small_products_go_to_numpy(monkeypatch):
    monkeypatch.setattr(blas, "SMALL_MACS", 1 << 17)

    def refuse(*args):
        raise AssertionError("a small product reached the BLAS")

    monkeypatch.setitem(blas._GEMM, np.dtype(np.float32), (1, 0))  # addresses never called
    monkeypatch.setattr(blas, "_gemm", refuse)
    a, b = np.ones((32, 64), np.float32), np.ones((64, 63), np.float32)  # 129024 MACs
    np.testing.assert_array_equal(blas.matmul(a, b, np.empty((32, 63), np.float32)), a @ b)
    big = np.ones((64, 64), np.float32)
    with pytest.raises(AssertionError, match="reached the BLAS"):
        blas.matmul(big, big, np.empty((64, 64), np.float32))


@pytest.mark.skipif(
    not _mkl_installed(), reason="needs the optional `mkl` wheel on Linux (libmkl_rt.so)"
)
@pytest.mark.skipif(
    os.environ.get("GRADTENSOR_BLAS", "").strip().lower() == "numpy",
    reason="GRADTENSOR_BLAS=numpy asks for NumPy's BLAS",
)
def test_mkl_is_used_when_installed_on_an_intel_cpu(monkeypatch):
    on_intel = blas.cpu_vendor() == "GenuineIntel"
    assert blas.NAME.startswith("mkl ") == on_intel, blas.REASON
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "GenuineIntel")
    assert blas._choose() == ("mkl", "auto: MKL on an Intel CPU", True)
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "AuthenticAMD")
    amd = "auto: NumPy's BLAS for products on this AuthenticAMD CPU, MKL in row blocks"
    assert blas._choose() == ("numpy", amd, True)
    monkeypatch.setenv("GRADTENSOR_BLAS", "mkl")
    assert blas._choose() == ("mkl", "GRADTENSOR_BLAS=mkl", True)
    monkeypatch.setenv("GRADTENSOR_BLAS", "numpy")
    assert blas._choose() == ("numpy", "GRADTENSOR_BLAS=numpy", False)
    prev = blas.select("mkl")
    try:
        assert blas.NAME.startswith("mkl ")
        assert blas.cblas_gemm(np.dtype(np.float32)) is not None
        assert blas.set_threads_local is not None
    finally:
        blas.select(prev)


def test_numpy_blas_without_mkl(monkeypatch):
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "GenuineIntel")
    monkeypatch.setattr(blas, "_mkl", lambda: None)
    assert blas._choose() == ("numpy", "auto: MKL is not installed (the mkl extra)", False)
    monkeypatch.setenv("GRADTENSOR_BLAS", "mkl")
    with pytest.raises(ImportError, match="GRADTENSOR_BLAS=mkl, but Intel MKL could not be"):
        blas._choose()


def test_select_switches_between_what_is_there():
    prev = blas.select("numpy", row_blocks=False)
    try:
        assert blas.NAME == "numpy"
        assert blas.cblas_gemm(np.dtype(np.float32)) is None  # compiled code cannot reach it
        assert blas.set_threads_local is None
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        np.testing.assert_array_equal(blas.matmul(a, a.T, np.empty((2, 2), np.float32)), a @ a.T)
        unknown = r"blas.select: 'openblas' is not available here; expected one of \['numpy'"
        with pytest.raises(ValueError, match=unknown):
            blas.select("openblas")
    finally:
        blas.select(prev)
    assert blas.NAME == prev


def _name_with(env_value):
    env = dict(os.environ, GRADTENSOR_BLAS=env_value)
    code = "from kernels import blas; print(blas.NAME)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_numpy_chosen_by_the_environment_loads_no_mkl():
    env = dict(os.environ, GRADTENSOR_BLAS="numpy")
    code = "from kernels import blas; print(blas.NAME, blas.ROW_BLOCKS, blas._mkl_state)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["numpy", "None", "[]"]


def test_environment_variable_chooses_numpy_and_rejects_nonsense():
    done = _name_with("numpy")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "numpy"
    done = _name_with("openblas-please")
    assert done.returncode != 0
    assert "GRADTENSOR_BLAS='openblas-please': expected auto, mkl or numpy" in done.stderr


@pytest.mark.skipif(not _mkl_installed(), reason="the mkl wheel is not installed")
def test_the_mkl_gemm_is_compiled_once_and_loaded_from_the_cache_after(tmp_path):
    """Products on MKL go through one compiled GEMM: a second process loads it, compiling none."""
    code = (
        "import numpy as np; from gradtensor.kernels import blas; blas.select('mkl'); "
        "a = np.arange(4096.0, dtype=np.float32).reshape(64, 64); out = np.empty_like(a); "
        "blas.matmul(a, a, out); assert np.allclose(out, a @ a, rtol=1e-5); "
        "s = blas._gemm.stats; print(len(s.cache_hits), len(s.cache_misses))"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )  # fmt: skip
        for _ in range(2)
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr
    assert runs[0].stdout.split() == ["0", "1"] and "compiling kernels" in runs[0].stderr
    assert runs[1].stdout.split() == ["1", "0"] and "compiling" not in runs[1].stderr
