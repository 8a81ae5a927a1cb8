"""The GEMM behind the CPU kernels: Intel MKL when the optional `mkl` wheel is installed, else
NumPy's matmul (the OpenBLAS that NumPy's wheels bundle).

Why a second BLAS: the kernels' time is nearly all GEMM, and on an AVX-512 Xeon NumPy's OpenBLAS
sgemm is markedly slower than MKL's, the BLAS PyTorch's CPU wheels link
(benchmarks/results/kernel-decisions.md).
`pip install gradtensor[mkl]` brings MKL; `GRADTENSOR_BLAS=numpy` keeps NumPy's BLAS even then,
`GRADTENSOR_BLAS=mkl` makes a missing MKL an error instead of a silent fallback.

MKL is loaded privately with ctypes (nothing is exported into the process), and its threads come
from GNU OpenMP when the system has it: that is the runtime PyTorch and Numba already use, so
the pools do not fight over the cores (Intel's OpenMP beside PyTorch's slowed a 2-thread sgemm:
benchmarks/results/kernel-decisions.md). The thread count is MKL's own default, which
threadpoolctl can limit like any BLAS.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import sys
from typing import Any

import numba
import numpy as np

__all__ = ["NAME", "cblas_gemm", "matmul", "select", "set_threads_local"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_THREADING = {"INTEL": 0, "SEQUENTIAL": 1, "GNU": 3, "TBB": 4}
_INT_MAX = 2**31 - 1  # MKL's LP64 interface: 32-bit dimensions


def _mkl_paths() -> list[str]:
    """Where the `mkl` wheel put libmkl_rt (its metadata first, then the usual prefixes)."""
    found = []
    try:
        from importlib import metadata

        dist = metadata.distribution("mkl")
        found += [str(dist.locate_file(f)) for f in dist.files or () if "libmkl_rt.so" in str(f)]
    except Exception:  # no `mkl` distribution, or metadata without a file list
        pass
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
    return [p for p in dict.fromkeys(found) if os.path.exists(p)]


def _threading_layer() -> int:
    """MKL's threading layer: the one the environment names, else GNU OpenMP when present."""
    chosen = os.environ.get("MKL_THREADING_LAYER", "").upper()
    if chosen in _THREADING:
        return _THREADING[chosen]
    try:
        ctypes.CDLL("libgomp.so.1")  # already in the process when PyTorch or Numba's OpenMP is
        return _THREADING["GNU"]
    except OSError:
        return _THREADING["INTEL"]


def _load_mkl() -> tuple[Any, str, str] | None:
    for path in _mkl_paths():
        try:
            lib = ctypes.CDLL(path)
            # Must come before any other call; returns the layer now in force.
            layer = lib.MKL_Set_Threading_Layer(_threading_layer())
            buf = ctypes.create_string_buffer(256)
            lib.mkl_get_version_string(buf, len(buf))
        except (OSError, AttributeError):
            continue
        names = {v: k.lower() for k, v in _THREADING.items()}
        return lib, buf.value.decode(errors="replace").strip(), names.get(layer, str(layer))
    return None


def _cblas_gemm(lib: Any, name: str, real: Any) -> Any:
    """cblas_<name> as a ctypes function; compiled code takes it as an argument and calls it."""
    # order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
    ptr, i = ctypes.c_void_p, ctypes.c_int
    proto = ctypes.CFUNCTYPE(None, i, i, i, i, i, i, real, ptr, i, ptr, i, real, ptr, i)
    return proto((name, lib))


def _compiled_gemm(cblas: Any, np_real: Any) -> Any:
    """out = a @ b through `cblas` (a _cblas_gemm), called from compiled code.

    Compiled, because from Python the ctypes call and three `ndarray.ctypes.data` lookups cost as
    much as a small sgemm; `cblas` is a constant here, since taken as an argument its typing adds
    to every call (benchmarks/results/kernel-decisions.md). nogil, as ctypes would: other Python
    threads run while MKL works.
    """
    one, zero, row_major = np_real(1), np_real(0), _ROW_MAJOR

    @numba.njit(nogil=True)
    def gemm(a, b, out, ta, tb, m, n, k, lda, ldb, ldc):
        cblas(row_major, ta, tb, m, n, k, one, a.ctypes, lda, b.ctypes, ldb, zero, out.ctypes, ldc)

    return gemm


def _choose() -> tuple[Any, str, str | None]:
    want = os.environ.get("GRADTENSOR_BLAS", "auto").strip().lower()
    if want not in ("auto", "mkl", "numpy"):
        raise ValueError(f"GRADTENSOR_BLAS={want!r}: expected auto, mkl or numpy")
    if want != "numpy":
        loaded = _load_mkl()
        if loaded is not None:
            lib, version, layer = loaded
            short = re.search(r"Version ([\w.]+)", version)
            return lib, f"mkl {short.group(1) if short else version}", layer
        if want == "mkl":
            raise ImportError(
                "GRADTENSOR_BLAS=mkl, but Intel MKL could not be loaded: install it with "
                "`pip install gradtensor[mkl]` (x86-64 only), or unset GRADTENSOR_BLAS"
            )
    return None, "numpy", None


_MKL, _MKL_NAME, _MKL_OPENMP = _choose()
NAME = _MKL_NAME  # the BLAS matmul uses now: "mkl <version>" or "numpy"
# The threads behind matmul now: "gnu" (GNU OpenMP, as PyTorch's and Numba's), "intel" or
# "sequential" for MKL, None for NumPy's OpenBLAS (its own pthreads).
OPENMP: str | None = None
_GEMM: dict[np.dtype, Any] = {}  # dtype -> compiled GEMM, for the BLAS in use
_COMPILED: dict[np.dtype, Any] = {}
_CBLAS: dict[np.dtype, Any] = {}  # dtype -> cblas_?gemm (ctypes), for the BLAS in use
_MKL_CBLAS: dict[np.dtype, Any] = {}


# MKL_Set_Num_Threads_Local(n) -> previous: makes MKL's calls on the calling thread use n
# threads (0: back to the global count). None unless MKL is in use.
def _mkl_set_local() -> Any:
    try:
        return ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(("MKL_Set_Num_Threads_Local", _MKL))
    except AttributeError:  # an MKL without it: the kernels then keep their row blocks serial
        return None


_MKL_SET_LOCAL = None if _MKL is None else _mkl_set_local()
set_threads_local: Any = None


def select(name: str) -> str:
    """Use "mkl" (when it loaded) or "numpy" from now on; returns the name in use before.

    For side-by-side measurements: `prev = blas.select("numpy"); ...; blas.select(prev)`.
    """
    global NAME, OPENMP, set_threads_local
    prev = NAME
    if name.startswith("mkl") and _MKL is not None:
        if not _COMPILED:
            for np_real, real, fn in (
                (np.float32, ctypes.c_float, "cblas_sgemm"),
                (np.float64, ctypes.c_double, "cblas_dgemm"),
            ):
                cblas = _MKL_CBLAS[np.dtype(np_real)] = _cblas_gemm(_MKL, fn, real)
                _COMPILED[np.dtype(np_real)] = _compiled_gemm(cblas, np_real)
        _GEMM.update(_COMPILED)
        _CBLAS.update(_MKL_CBLAS)
        set_threads_local = _MKL_SET_LOCAL
        NAME, OPENMP = _MKL_NAME, _MKL_OPENMP
    elif name == "numpy":
        _GEMM.clear()
        _CBLAS.clear()
        set_threads_local = None
        NAME, OPENMP = "numpy", None
    else:
        raise ValueError(
            f"blas.select: {name!r} is not available here; expected 'numpy'"
            + (f" or {_MKL_NAME!r}" if _MKL is not None else "")
        )
    return prev


select(NAME)


# Below this many multiply-adds NumPy's matmul is as fast or faster: a call into MKL costs more
# than NumPy's (benchmarks/results/kernel-decisions.md). NumPy's OpenBLAS runs these sizes on one
# thread, so none of its threads wake to spin beside the kernels' own.
SMALL_MACS = 1 << 17


def cblas_gemm(dtype: np.dtype) -> Any | None:
    """cblas_?gemm of the BLAS in use for `dtype`, for compiled kernels to call; None when that
    BLAS is NumPy's (which compiled code cannot reach)."""
    return _CBLAS.get(dtype)


def _operand(a: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D operand, or None if BLAS cannot read it."""
    rows, cols = a.shape
    if a.flags.c_contiguous:
        return _NO_TRANS, max(1, cols)
    if a.flags.f_contiguous:  # a transposed view of a C-contiguous array
        return _TRANS, max(1, rows)
    return None


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a @ b for 2-D arrays of one float dtype, into a C-contiguous out; returns out."""
    gemm = _GEMM.get(out.dtype)
    m, k = a.shape
    n = b.shape[1]
    if m * n * k < SMALL_MACS:
        return np.matmul(a, b, out=out)
    fa, fb = _operand(a), _operand(b)
    if (
        gemm is None
        or fa is None
        or fb is None
        or a.dtype != out.dtype
        or b.dtype != out.dtype
        or not out.flags.c_contiguous
        or not out.flags.writeable
        or min(m, n, k) == 0
        or max(m, n, k) > _INT_MAX
        or np.may_share_memory(out, a)
        or np.may_share_memory(out, b)
    ):
        return np.matmul(a, b, out=out)
    gemm(a, b, out, fa[0], fb[0], m, n, k, fa[1], fb[1], max(1, n))
    return out
