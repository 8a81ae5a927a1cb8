"""The GEMM behind the CPU kernels: NumPy's matmul (the OpenBLAS that NumPy's wheels bundle),
or Intel MKL where the optional `mkl` wheel is installed and the CPU is Intel's.

Why a second BLAS: the kernels' time is nearly all GEMM, and on an AVX-512 Xeon NumPy's OpenBLAS
sgemm is markedly slower than MKL's, the BLAS PyTorch's CPU wheels link; on an AMD EPYC MKL was
the slower one (benchmarks/results/kernel-decisions.md), so it is chosen by the CPU's vendor.
`GRADTENSOR_BLAS=numpy` keeps NumPy's BLAS, `GRADTENSOR_BLAS=mkl` uses MKL on any CPU and makes a
missing MKL an error instead of a silent fallback. `NAME` says which is in use and `REASON` why.

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
import numba.extending
import numpy as np

from ._numba_cache import ensure_cache

ensure_cache(__file__)  # before the cache=True GEMM below is defined

__all__ = [
    "NAME",
    "REASON",
    "available",
    "cblas_gemm",
    "cpu_vendor",
    "matmul",
    "select",
    "set_threads_local",
]

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


def _env_threads(*names: str) -> int | None:
    """The first thread limit the environment sets among `names`, if any."""
    for name in names:
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


# The most threads the kernels' own parallel passes take (None: Numba's count): OMP_NUM_THREADS
# at start, then whatever set_num_threads says.
thread_limit: int | None = _env_threads("OMP_NUM_THREADS")
_user_limit: int | None = None  # set_num_threads's n


def set_num_threads(n: int) -> None:
    """At most `n` threads for gradtensor's CPU work from now on, like torch.set_num_threads:
    the BLAS behind matrix products (NumPy's OpenBLAS, MKL), OpenMP pools, the kernels' passes."""
    global thread_limit, _user_limit
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    import threadpoolctl

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # may load an OpenMP runtime
    threadpoolctl.threadpool_limits(n)  # every BLAS and OpenMP runtime loaded so far
    if _mkl_state and _mkl_state[0] is not None:
        _mkl_state[0][0].MKL_Set_Num_Threads(n)
    thread_limit = _user_limit = n


def get_num_threads() -> int:
    """The threads gradtensor's CPU work may use now (set_num_threads, OMP_NUM_THREADS, or the
    cores this process may run on)."""
    if thread_limit is not None:
        return thread_limit
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return len(cores) if cores else os.cpu_count() or 1


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
        # Loaded privately, MKL would not see the limits a user set for the process's pools.
        limit = _user_limit or _env_threads("MKL_NUM_THREADS", "OMP_NUM_THREADS")
        if limit:
            lib.MKL_Set_Num_Threads(limit)
        names = {v: k.lower() for k, v in _THREADING.items()}
        return lib, buf.value.decode(errors="replace").strip(), names.get(layer, str(layer))
    return None


def _cblas_gemm(lib: Any, name: str, real: Any) -> Any:
    """cblas_<name> as a ctypes function; compiled code takes it as an argument and calls it."""
    # order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
    ptr, i = ctypes.c_void_p, ctypes.c_int
    proto = ctypes.CFUNCTYPE(None, i, i, i, i, i, i, real, ptr, i, ptr, i, real, ptr, i)
    return proto((name, lib))


@numba.extending.intrinsic
def _call(typingctx: Any, fn: Any, args: Any) -> Any:
    """Call the C function at address `fn` with the tuple `args`: ints become C ints, floats
    stay as they are typed, arrays pass their data pointers. Taking the address as a plain int
    keeps the callers cacheable (a ctypes function constant would be compiled in each process)
    and cheap to call (a ctypes function argument is typed again on every call)."""
    from llvmlite import ir

    def c_type(ctx: Any, t: Any) -> Any:
        if isinstance(t, numba.types.Array):
            return ir.IntType(8).as_pointer()
        return ir.IntType(32) if isinstance(t, numba.types.Integer) else ctx.get_value_type(t)

    def codegen(context: Any, builder: Any, sig: Any, llargs: Any) -> Any:
        types = sig.args[1].types
        values = numba.core.cgutils.unpack_tuple(builder, llargs[1], len(types))
        c_args = []
        for t, v in zip(types, values):
            if isinstance(t, numba.types.Array):
                ary = context.make_array(t)(context, builder, v)
                c_args.append(builder.bitcast(ary.data, ir.IntType(8).as_pointer()))
            elif isinstance(t, numba.types.Integer):
                c_args.append(builder.trunc(v, ir.IntType(32)) if t.bitwidth > 32 else v)
            else:
                c_args.append(v)
        fnty = ir.FunctionType(ir.IntType(32), [c_type(context, t) for t in types])
        ptr = builder.inttoptr(llargs[0], fnty.as_pointer())
        return builder.sext(builder.call(ptr, c_args), ir.IntType(64))

    return numba.types.int64(fn, args), codegen


@numba.njit(nogil=True, cache=True)
def _gemm(fn, set_local, a, b, out, ta, tb, m, n, k, lda, ldb, ldc, small):  # pragma: no cover
    """out = a @ b through the cblas_?gemm at address `fn`; with `small`, on the calling thread
    only (through MKL_Set_Num_Threads_Local at `set_local`, when this MKL has it: else 0).

    Compiled, because from Python the ctypes call and three `ndarray.ctypes.data` lookups cost as
    much as a small sgemm (benchmarks/results/kernel-decisions.md). nogil, as ctypes would: other
    Python threads run while MKL works.
    """
    one, zero = out.dtype.type(1), out.dtype.type(0)
    local = set_local != 0 and small
    prev = _call(set_local, (1,)) if local else 0
    _call(fn, (_ROW_MAJOR, ta, tb, m, n, k, one, a, lda, b, ldb, zero, out, ldc))
    if local:
        _call(set_local, (prev,))


def _address(fn: Any) -> int:
    return 0 if fn is None else ctypes.cast(fn, ctypes.c_void_p).value


def cpu_vendor() -> str:
    """The CPU's vendor as the kernel reports it ("GenuineIntel", "AuthenticAMD"), or ""."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


_mkl_state: list[Any] = []  # [] until MKL is first asked for, then [(lib, name, layer) or None]


def _mkl() -> tuple[Any, str, str] | None:
    """(library, "mkl <version>", OpenMP layer) of MKL, loaded on first use; None without it."""
    if not _mkl_state:
        loaded = _load_mkl()
        if loaded is not None:
            lib, version, layer = loaded
            short = re.search(r"Version ([\w.]+)", version)
            loaded = lib, f"mkl {short.group(1) if short else version}", layer
        _mkl_state.append(loaded)
    return _mkl_state[0]


def _choose() -> tuple[str, str, bool]:
    """(the BLAS for products, why, whether the row blocks may call MKL): NumPy's unless MKL is
    installed and the CPU is Intel's, where it measured faster. On AMD's EPYC MKL measured slower
    for whole products but faster inside the kernels' row blocks, which fuse each block's GEMM
    with its epilogue while it is in cache (benchmarks/results/kernel-decisions.md)."""
    want = os.environ.get("GRADTENSOR_BLAS", "auto").strip().lower()
    if want not in ("auto", "mkl", "numpy"):
        raise ValueError(f"GRADTENSOR_BLAS={want!r}: expected auto, mkl or numpy")
    if want == "numpy":
        return "numpy", "GRADTENSOR_BLAS=numpy", False
    if want == "mkl":
        if _mkl() is None:
            raise ImportError(
                "GRADTENSOR_BLAS=mkl, but Intel MKL could not be loaded: install it with "
                "`pip install gradtensor[mkl]` (x86-64 only), or unset GRADTENSOR_BLAS"
            )
        return "mkl", "GRADTENSOR_BLAS=mkl", True
    if _mkl() is None:
        return "numpy", "auto: MKL is not installed (the mkl extra)", False
    vendor = cpu_vendor()
    if vendor != "GenuineIntel":
        why = f"auto: NumPy's BLAS for products on this {vendor or 'non-Intel'} CPU"
        return "numpy", why + ", MKL in row blocks", True
    return "mkl", "auto: MKL on an Intel CPU", True


NAME = "numpy"  # the BLAS matmul uses now: "mkl <version>" or "numpy"
REASON = ""  # why NAME was chosen at import
# The threads behind matmul now: "gnu" (GNU OpenMP, as PyTorch's and Numba's), "intel" or
# "sequential" for MKL, None for NumPy's OpenBLAS (its own pthreads).
OPENMP: str | None = None
_GEMM: dict[np.dtype, Any] = {}  # dtype -> (cblas_?gemm, set_local) addresses, BLAS in use
_COMPILED: dict[np.dtype, Any] = {}
_CBLAS: dict[np.dtype, Any] = {}  # dtype -> cblas_?gemm (ctypes), for the BLAS in use
_MKL_CBLAS: dict[np.dtype, Any] = {}
# MKL_Set_Num_Threads_Local(n) -> previous: makes MKL's calls on the calling thread use n
# threads (0: back to the global count). None unless MKL is in use.
set_threads_local: Any = None


def _mkl_set_local(lib: Any) -> Any:
    try:
        return ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(("MKL_Set_Num_Threads_Local", lib))
    except AttributeError:  # an MKL without it: the kernels then keep their row blocks serial
        return None


def available() -> list[str]:
    """The names `select` takes here: "numpy", and MKL's when it loads."""
    mkl = _mkl()
    return ["numpy"] + ([mkl[1]] if mkl else [])


def _mkl_functions(mkl: tuple[Any, str, str]) -> None:
    """MKL's cblas and per-thread setting, as ctypes functions and compiled GEMMs (once)."""
    if not _COMPILED:
        local = _MKL_CBLAS["set_local"] = _mkl_set_local(mkl[0])
        for np_real, real, fn in (
            (np.float32, ctypes.c_float, "cblas_sgemm"),
            (np.float64, ctypes.c_double, "cblas_dgemm"),
        ):
            cblas = _MKL_CBLAS[np.dtype(np_real)] = _cblas_gemm(mkl[0], fn, real)
            _COMPILED[np.dtype(np_real)] = (_address(cblas), _address(local))


def select(name: str, row_blocks: bool | None = None) -> str:
    """Use "mkl" (when it loads) or "numpy" for products from now on; returns the name in use
    before. With "numpy", `row_blocks` says whether the kernels' row blocks may still call MKL
    (None: as chosen at import).

    For side-by-side measurements: `prev = blas.select("numpy"); ...; blas.select(prev)`.
    """
    global NAME, OPENMP, ROW_BLOCKS, set_threads_local
    prev = NAME
    if name.startswith("mkl") and _mkl() is not None:
        mkl = _mkl()
        _mkl_functions(mkl)
        _GEMM.update(_COMPILED)
        NAME, OPENMP = mkl[1], mkl[2]
    elif name == "numpy":
        _GEMM.clear()
        NAME, OPENMP = "numpy", None
        # MKL is loaded only when the row blocks are to call it.
        mkl = _mkl() if (_ROW_BLOCKS_AT_IMPORT if row_blocks is None else row_blocks) else None
    else:
        raise ValueError(
            f"blas.select: {name!r} is not available here; expected one of {available()}"
        )
    _CBLAS.clear()
    set_threads_local = ROW_BLOCKS = None
    if mkl is not None:
        _mkl_functions(mkl)
        _CBLAS.update((k, v) for k, v in _MKL_CBLAS.items() if k != "set_local")
        set_threads_local, ROW_BLOCKS = _MKL_CBLAS["set_local"], mkl[1]
    return prev


_chosen, REASON, _ROW_BLOCKS_AT_IMPORT = _choose()
ROW_BLOCKS: str | None = None  # the BLAS the kernels' row blocks call: MKL's name, or None
select(_chosen)


# Below this many multiply-adds NumPy's matmul is as fast or faster: a call into MKL costs more
# than NumPy's (benchmarks/results/kernel-decisions.md). NumPy's OpenBLAS runs these sizes on one
# thread, so none of its threads wake to spin beside the kernels' own.
SMALL_MACS = 1 << 17
# Below this many, MKL runs on the calling thread only: a second thread lost up to 2**18 and won
# from 2**20 (kernel-decisions.md), and a pool woken for a tiny product stalls whenever another
# process holds one of its cores.
ONE_THREAD_MACS = 1 << 19


def warmup() -> None:
    """Compile (or load from the on-disk cache) the GEMM that products call when MKL runs them."""
    for dtype, addresses in _COMPILED.items():
        a = np.ones((2, 2), dtype)
        _gemm(*addresses, a, a, np.empty_like(a), _NO_TRANS, _NO_TRANS, 2, 2, 2, 2, 2, 2, True)


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


def matmul_for(m: int, k: int, n: int) -> Any:
    """`matmul` for (m, k) @ (k, n) products, chosen once by a plan: NumPy's own for a product
    so small that `matmul` would hand it to NumPy anyway."""
    return np.matmul if m * n * k < SMALL_MACS else matmul


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
    _gemm(
        *gemm,
        a,
        b,
        out,
        fa[0],
        fb[0],
        m,
        n,
        k,
        fa[1],
        fb[1],
        max(1, n),
        m * n * k < ONE_THREAD_MACS,
    )
    return out
