"""CUDA linear + activation kernels (Numba-CUDA on CuPy arrays; NumPy arrays in the simulator).

Two ways to the same result, chosen per shape by `use_path_b`:
  A: cuBLAS GEMMs (through CuPy) plus one fused Numba kernel per direction: bias + activation
     forward, and act' with the bias-gradient column sums (a block reduction) backward.
  B: hand-written tiled GEMMs with the epilogue fused into them: bias + activation applied to
     the accumulators before the store, and act' applied while the gy tiles are loaded.
All launches go to CuPy's current stream without a host synchronisation, so a sequence of calls
can be captured in a CUDA graph. float16 is stored as float16 and computed in float32, both
paths keeping the pre-activation in float32 until the single rounding at the store (as cuBLASLt's
epilogues do); path B's activations that save their input apply to the stored pre-activation, the
value their backward reads. Every kernel walks its tiles with a grid stride, so `launch_sizes`
can clamp any shape's grid to CUDA's limits; it is the one place launch geometry comes from, on a
GPU and in the simulator alike.

Under NUMBA_ENABLE_CUDASIM=1 the same kernels run in Numba's simulator on NumPy arrays (no CuPy,
no GPU), which is how CI tests them.
"""

from __future__ import annotations

import math
import warnings
from types import FunctionType
from typing import Any

import numba
import numpy as np
from numba import cuda

from ._api import ACTIVATIONS, AUX_KIND, check_backward, check_forward
from .activations import TABLE

__all__ = [
    "ACTIVATIONS",
    "SIMULATOR",
    "launch_sizes",
    "linear_act_backward",
    "linear_act_forward",
    "use_path_b",
    "warmup",
]

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

# Path B below this many multiply-adds per GEMM (B * In * Out), path A above: path A's extra
# launches and z/gz round trip dominate small layers; path B's gw kernel (no split-K) starves the
# GPU when B is large and In*Out small. PROVISIONAL AND UNMEASURED, never run on a GPU: measure
# and replace (benchmarks/results/kernel-decisions.md).
PATH_B_MAX_MACS = 1 << 22

# Tiled GEMM geometry: a block of THREADS x THREADS threads computes a (THREADS*REG)^2 tile,
# each thread a REG x REG block of accumulators in registers; K advances TILE_K at a time.
# The simulator runs every thread as a Python thread, so it gets a smaller geometry: same code,
# and tiny test shapes still cross several tiles and ragged edges. The GPU values (here and for
# the epilogues) are untuned, never measured on a GPU (benchmarks/results/kernel-decisions.md).
THREADS, REG, TILE_K = (4, 2, 4) if SIMULATOR else (16, 4, 16)
TILE = THREADS * REG
_NT = THREADS * THREADS
# Each thread loads TILE * TILE_K / _NT elements of each operand tile.
_LOADS = TILE * TILE_K // _NT
assert TILE * TILE_K % _NT == 0

# Epilogue-kernel geometry (path A): 32 columns x 8 rows of threads.
_EW_X, _EW_Y = (8, 4) if SIMULATOR else (32, 8)
_MAX_ROW_BLOCKS = 4 if SIMULATOR else 256

# CUDA's limits on gridDim.x and gridDim.y (gridDim.y, like z, stops at 65535).
MAX_GRID = (2**31 - 1, 65535)


def _compute_type(dtype: np.dtype) -> Any:
    return numba.float64 if dtype == np.float64 else numba.float32


@cuda.jit(device=True)
def _where(c, a, b):
    return a if c else b


@cuda.jit(device=True)
def _maximum(a, b):
    return b if a < b else a  # a NaN in a passes through


@cuda.jit(device=True)
def _exp(v):
    return math.exp(v)


@cuda.jit(device=True)
def _tanh(v):
    return math.tanh(v)


class _Maths:
    """The activation table's maths namespace (kernels.activations) as device functions whose
    arithmetic is in one float type: no mixed-precision constants."""

    def __init__(self, nt: Any):
        half, one = nt(0.5), nt(1.0)
        inv_sqrt2 = nt(1.0 / math.sqrt(2.0))

        @cuda.jit(device=True)
        def sigmoid(v):
            return one / (one + math.exp(-v))

        @cuda.jit(device=True)
        def ncdf(v):
            # erfc keeps the negative tail accurate where 1 + erf(v) would cancel.
            return half * math.erfc(-v * inv_sqrt2)

        self.const, self.where, self.maximum = nt, _where, _maximum
        self.exp, self.tanh, self.sigmoid, self.ncdf = _exp, _tanh, sigmoid, ncdf


def _build(ct: Any, activation: str) -> dict[str, Any]:
    """Compile-ready kernels of one activation whose arithmetic is in float type `ct` (float16
    storage uses f32)."""
    nt = np.float64 if ct == numba.float64 else np.float32
    zero = nt(0.0)
    saves = AUX_KIND[activation]
    writes_gz = saves is not None  # identity: gz is gy itself
    keeps_input = saves == "input"
    value, grad = (
        cuda.jit(device=True)(f) if isinstance(f, FunctionType) else f
        for f in TABLE[activation].maths(_Maths(nt))
    )

    # --- path A: elementwise epilogues around cuBLAS ------------------------------------------

    @cuda.jit
    def epilogue_forward(z, bias, has_bias, keep_z, y):
        """With keep_z: z += bias and y = act(z); without: z = act(z + bias), y unused.

        z may be float32 under a float16 y: the activation then sees the unrounded sum.
        """
        # One array is never passed twice: the simulator copies each argument back separately.
        rows, cols = z.shape
        c0, r0 = cuda.grid(2)
        cs, rs = cuda.gridsize(2)
        for r in range(r0, rows, rs):
            for c in range(c0, cols, cs):
                v = ct(z[r, c])
                if has_bias:
                    v += ct(bias[c])
                if keep_z:
                    z[r, c] = v
                    y[r, c] = value(v)
                else:
                    z[r, c] = value(v)

    @cuda.jit
    def epilogue_backward(gy, aux, gz, partial):
        """gz = gy * act'(aux); partial[blockIdx.y, c] = this block-row's column sums of gz."""
        sums = cuda.shared.array((_EW_Y, _EW_X), ct)
        rows, cols = gy.shape
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        for c0 in range(cuda.blockIdx.x * _EW_X, cols, cuda.gridDim.x * _EW_X):
            c = c0 + tx
            acc = zero
            if c < cols:
                for r in range(cuda.blockIdx.y * _EW_Y + ty, rows, cuda.gridDim.y * _EW_Y):
                    g = grad(ct(gy[r, c]), ct(aux[r, c]))
                    if writes_gz:
                        gz[r, c] = g
                    acc += g
            sums[ty, tx] = acc
            cuda.syncthreads()
            # Tree reduction over the block's rows; _EW_Y is a power of two. After its last
            # barrier only sums[0, tx] is read, by its own writer, so the next column may reuse it.
            step = _EW_Y // 2
            while step > 0:
                if ty < step:
                    sums[ty, tx] += sums[ty + step, tx]
                cuda.syncthreads()
                step //= 2
            if ty == 0 and c < cols:
                partial[cuda.blockIdx.y, c] = sums[0, tx]

    # --- path B: tiled GEMMs with fused epilogues ---------------------------------------------

    @cuda.jit(device=True)
    def tile_product(a_tile, b_tile, acc, tx, ty):
        """acc += a_tile.T @ b_tile for this thread's REG x REG block (rows ty+i*THREADS)."""
        a = cuda.local.array(REG, ct)
        b = cuda.local.array(REG, ct)
        for kk in range(TILE_K):
            # Strided ownership: consecutive tx read consecutive shared words, no bank conflict.
            for i in range(REG):
                a[i] = a_tile[kk, ty + i * THREADS]
            for j in range(REG):
                b[j] = b_tile[kk, tx + j * THREADS]
            for i in range(REG):
                for j in range(REG):
                    acc[i, j] += a[i] * b[j]

    @cuda.jit
    def gemm_forward(x, w, bias, has_bias, y, z):
        """y = act(x @ w.T + bias), and z = the pre-activation when the activation saves its input;
        one tile at a time."""
        a_tile = cuda.shared.array((TILE_K, TILE), ct)
        b_tile = cuda.shared.array((TILE_K, TILE), ct)
        acc = cuda.local.array((REG, REG), ct)
        m, k = x.shape
        n = w.shape[0]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * THREADS + tx
        for row0 in range(cuda.blockIdx.y * TILE, m, cuda.gridDim.y * TILE):
            for col0 in range(cuda.blockIdx.x * TILE, n, cuda.gridDim.x * TILE):
                for i in range(REG):
                    for j in range(REG):
                        acc[i, j] = zero
                for k0 in range(0, k, TILE_K):
                    for step in range(_LOADS):
                        # Consecutive threads take consecutive k: coalesced reads of x and w.
                        e = tid + step * _NT
                        r = e // TILE_K
                        kk = e % TILE_K
                        gk = k0 + kk
                        inside_k = gk < k
                        a_in = inside_k and row0 + r < m
                        b_in = inside_k and col0 + r < n
                        a_tile[kk, r] = ct(x[row0 + r, gk]) if a_in else zero
                        b_tile[kk, r] = ct(w[col0 + r, gk]) if b_in else zero
                    cuda.syncthreads()
                    tile_product(a_tile, b_tile, acc, tx, ty)
                    cuda.syncthreads()
                for i in range(REG):
                    r = row0 + ty + i * THREADS
                    for j in range(REG):
                        c = col0 + tx + j * THREADS
                        if r < m and c < n:
                            v = acc[i, j]
                            if has_bias:
                                v += ct(bias[c])
                            if keeps_input:
                                z[r, c] = v
                            else:
                                y[r, c] = value(v)
                if keeps_input:
                    # A second pass, reading z back: with a GELU's erfc in the loop above the
                    # compiler would not unroll it, and acc would leave the registers.
                    for i in range(REG):
                        r = row0 + ty + i * THREADS
                        for j in range(REG):
                            c = col0 + tx + j * THREADS
                            if r < m and c < n:
                                y[r, c] = value(ct(z[r, c]))

    @cuda.jit
    def gemm_grad_x(gy, aux, w, gx):
        """gx = (gy * act'(aux)) @ w, with act' applied as the gy tiles are loaded."""
        a_tile = cuda.shared.array((TILE_K, TILE), ct)
        b_tile = cuda.shared.array((TILE_K, TILE), ct)
        acc = cuda.local.array((REG, REG), ct)
        m, k = gy.shape
        n = w.shape[1]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * THREADS + tx
        for row0 in range(cuda.blockIdx.y * TILE, m, cuda.gridDim.y * TILE):
            for col0 in range(cuda.blockIdx.x * TILE, n, cuda.gridDim.x * TILE):
                for i in range(REG):
                    for j in range(REG):
                        acc[i, j] = zero
                for k0 in range(0, k, TILE_K):
                    for step in range(_LOADS):
                        e = tid + step * _NT
                        # gy is (B, Out) row-major: walk k (= Out) fastest.
                        r = e // TILE_K
                        kk = e % TILE_K
                        gr, gk = row0 + r, k0 + kk
                        if gr < m and gk < k:
                            a_tile[kk, r] = grad(ct(gy[gr, gk]), ct(aux[gr, gk]))
                        else:
                            a_tile[kk, r] = zero
                        # w is (Out, In) row-major: walk the output column fastest.
                        kk = e // TILE
                        c = e % TILE
                        gk = k0 + kk
                        b_in = gk < k and col0 + c < n
                        b_tile[kk, c] = ct(w[gk, col0 + c]) if b_in else zero
                    cuda.syncthreads()
                    tile_product(a_tile, b_tile, acc, tx, ty)
                    cuda.syncthreads()
                for i in range(REG):
                    r = row0 + ty + i * THREADS
                    for j in range(REG):
                        c = col0 + tx + j * THREADS
                        if r < m and c < n:
                            gx[r, c] = acc[i, j]

    @cuda.jit
    def gemm_grad_w(gy, aux, x, gw, gb, want_gb):
        """gw = (gy * act'(aux)).T @ x; the blocks on the first column of tiles also sum gb."""
        a_tile = cuda.shared.array((TILE_K, TILE), ct)
        b_tile = cuda.shared.array((TILE_K, TILE), ct)
        acc = cuda.local.array((REG, REG), ct)
        batch, m = gy.shape
        n = x.shape[1]
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * THREADS + tx
        # At least one column of tiles, even for In == 0, so that gb is still summed.
        n_cols = n if n > 0 else 1
        for row0 in range(cuda.blockIdx.y * TILE, m, cuda.gridDim.y * TILE):
            for col0 in range(cuda.blockIdx.x * TILE, n_cols, cuda.gridDim.x * TILE):
                sums_gb = want_gb and col0 == 0 and tid < TILE
                gb_acc = zero
                for i in range(REG):
                    for j in range(REG):
                        acc[i, j] = zero
                for k0 in range(0, batch, TILE_K):
                    for step in range(_LOADS):
                        e = tid + step * _NT
                        # Both operands are walked along their contiguous axis: Out for gy, In
                        # for x.
                        kk = e // TILE
                        c = e % TILE
                        gk = k0 + kk
                        if gk < batch and row0 + c < m:
                            g = grad(ct(gy[gk, row0 + c]), ct(aux[gk, row0 + c]))
                            a_tile[kk, c] = g
                        else:
                            a_tile[kk, c] = zero
                        b_in = gk < batch and col0 + c < n
                        b_tile[kk, c] = ct(x[gk, col0 + c]) if b_in else zero
                    cuda.syncthreads()
                    if sums_gb:
                        for kk in range(TILE_K):
                            gb_acc += a_tile[kk, tid]
                    tile_product(a_tile, b_tile, acc, tx, ty)
                    cuda.syncthreads()
                if sums_gb and row0 + tid < m:
                    gb[row0 + tid] = gb_acc
                for i in range(REG):
                    r = row0 + ty + i * THREADS
                    for j in range(REG):
                        c = col0 + tx + j * THREADS
                        if r < m and c < n:
                            gw[r, c] = acc[i, j]

    return {
        "epilogue_forward": epilogue_forward,
        "epilogue_backward": epilogue_backward,
        "gemm_forward": gemm_forward,
        "gemm_grad_x": gemm_grad_x,
        "gemm_grad_w": gemm_grad_w,
    }


_KERNELS: dict[tuple[Any, str], dict[str, Any]] = {}


def _kernels(dtype: np.dtype, activation: str) -> dict[str, Any]:
    """One activation's kernels for `dtype`, built on first use (each compiles on first launch)."""
    key = (_compute_type(dtype), activation)
    if key not in _KERNELS:
        _KERNELS[key] = _build(*key)
    return _KERNELS[key]


# --- host side -------------------------------------------------------------------------------


def _xp() -> Any:
    """The array module of this path: NumPy in the simulator, CuPy on a GPU."""
    if SIMULATOR:
        return np
    try:
        import cupy
    except ImportError as e:
        raise ImportError("kernels.cuda needs CuPy on a GPU (or NUMBA_ENABLE_CUDASIM=1)") from e
    return cupy


def _array_type() -> tuple[tuple[type, ...], str]:
    return ((np.ndarray,), "NumPy (CUDA simulator)") if SIMULATOR else ((_xp().ndarray,), "CuPy")


def _as_cupy(fn: str, named: dict[str, Any]) -> dict[str, Any]:
    """CuPy views of __cuda_array_interface__ objects; host arrays are refused, never copied."""
    if SIMULATOR:
        return named
    xp = _xp()
    out = {}
    for name, a in named.items():
        if a is None or isinstance(a, (bool, xp.ndarray)):
            out[name] = a
        elif hasattr(type(a), "__cuda_array_interface__"):
            out[name] = xp.asarray(a)
        else:
            raise ValueError(
                f"{fn}: {name} must be a CUDA array (CuPy), got "
                f"{type(a).__module__}.{type(a).__qualname__}"
            )
    return out


def _launch_args(stream_arrays: list[Any]) -> tuple[Any, list[Any]]:
    """The stream to launch on and the arrays as Numba sees them, without host syncs."""
    if SIMULATOR:
        return 0, stream_arrays
    xp = _xp()
    stream = cuda.external_stream(xp.cuda.get_current_stream().ptr)
    # sync=False: Numba would otherwise wait on the stream named in each array's interface from
    # the host; ordering is already guaranteed because everything runs on this one stream.
    return stream, [cuda.as_cuda_array(a, sync=False) for a in stream_arrays]


def _blocks(n: int, per_block: int, limit: int) -> int:
    return max(1, min(limit, -(-n // per_block)))


def launch_sizes(
    kernel: str, batch: int, n_in: int, n_out: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) of `kernel` for a (batch, In) x (Out, In) layer, within CUDA's limits.

    Every launch takes its geometry from here, so the simulator runs what a GPU would run.
    """
    max_x, max_y = MAX_GRID
    if kernel in ("epilogue_forward", "epilogue_backward"):
        # Few row blocks: each keeps one row of partial column sums in the backward.
        rows = _blocks(batch, _EW_Y, min(_MAX_ROW_BLOCKS, max_y))
        return (_blocks(n_out, _EW_X, max_x), rows), (_EW_X, _EW_Y)
    rows, cols = {
        "gemm_forward": (batch, n_out),
        "gemm_grad_x": (batch, n_in),
        "gemm_grad_w": (n_out, n_in),
    }[kernel]
    return (_blocks(cols, TILE, max_x), _blocks(rows, TILE, max_y)), (THREADS, THREADS)


def _launch(
    kernels: dict[str, Any], name: str, shape: tuple[int, int, int], stream: Any, *args
) -> None:
    """Launch kernels[name] for a layer of shape (batch, In, Out) with `launch_sizes`."""
    grid, block = launch_sizes(name, *shape)
    # Small grids are intended here (path B on small layers), not a mistake worth a warning on
    # every call; with warnings as errors (pytest) it would even fail the call. Matched by text:
    # numba-cuda and Numba's built-in target raise it with different warning classes.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Grid size .* under-utilization")
        kernels[name][grid, block, stream](*args)


def use_path_b(batch: int, n_in: int, n_out: int) -> bool:
    """Whether the fused tiled GEMM (path B) serves this shape; see PATH_B_MAX_MACS."""
    return batch * n_in * n_out <= PATH_B_MAX_MACS


def _check_path(fn: str, path: str | None) -> None:
    if path not in (None, "a", "b"):
        raise ValueError(f"{fn}: path must be None, 'a' or 'b', got {path!r}")


def linear_act_forward(
    x: Any, weight: Any, bias: Any | None, activation: str, *, path: str | None = None
) -> tuple[Any, Any | None]:
    """y, aux = act(x @ weight.T + bias) on the GPU; path forces "a" or "b" (tests, benchmarks)."""
    fn = "linear_act_forward"
    _check_path(fn, path)
    arrays = _as_cupy(fn, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = arrays["x"], arrays["weight"], arrays["bias"]
    array_types, kind = _array_type()
    check_forward(x, weight, bias, activation, array_types, kind, DTYPES)
    xp = _xp()
    x, weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    batch, n_in = x.shape
    n_out = weight.shape[0]
    shape = (batch, n_in, n_out)
    saves = AUX_KIND[activation]
    keep_z = saves == "input"
    has_bias = bias is not None
    # A one-element stand-in keeps a single kernel signature for the no-bias case.
    b = xp.ascontiguousarray(bias) if has_bias else xp.zeros(1, x.dtype)
    k = _kernels(x.dtype, activation)
    if path == "b" or (path is None and use_path_b(batch, n_in, n_out)):
        y = xp.empty((batch, n_out), x.dtype)
        z = xp.empty_like(y) if keep_z else y
        if batch and n_out:
            z_arg = z if keep_z else xp.empty((1, 1), x.dtype)
            stream, (dx, dw, db, dy, dz) = _launch_args([x, weight, b, y, z_arg])
            args = (dx, dw, db, has_bias, dy, dz)
            _launch(k, "gemm_forward", shape, stream, *args)
        aux = z if keep_z else y
    else:
        # float16 is multiplied into float32 and stays there through bias and activation: a
        # float16 product rounded before the bias is added flips ReLU masks next to zero.
        wide = np.float64 if x.dtype == np.float64 else np.float32
        z = xp.matmul(x.astype(wide, copy=False), weight.T.astype(wide, copy=False))
        if saves is None and not has_bias:
            return z.astype(x.dtype, copy=False), None
        # y apart from z when the pre-activation is kept or z is float32 under a float16 y;
        # otherwise act(z + bias) is written over z.
        apart = keep_z or z.dtype != x.dtype
        y = xp.empty(z.shape, x.dtype) if apart else z
        if batch and n_out:
            y_arg = y if apart else xp.empty((1, 1), x.dtype)
            stream, (dz, db, dy) = _launch_args([z, b, y_arg])
            _launch(k, "epilogue_forward", shape, stream, dz, db, has_bias, apart, dy)
        aux = z.astype(x.dtype, copy=False) if keep_z else y
    return y, (None if saves is None else aux)


def linear_act_backward(
    gy: Any,
    x: Any,
    weight: Any,
    aux: Any | None,
    activation: str,
    bias: bool = True,
    input_grad: bool = True,
    *,
    path: str | None = None,
) -> tuple[Any | None, Any, Any | None]:
    """gx, gw, gb of linear_act_forward on the GPU; path forces "a" or "b".

    input_grad=False skips gx (returned as None).
    """
    fn = "linear_act_backward"
    _check_path(fn, path)
    arrays = _as_cupy(fn, {"gy": gy, "x": x, "weight": weight, "aux": aux})
    gy, x, weight, aux = arrays["gy"], arrays["x"], arrays["weight"], arrays["aux"]
    array_types, kind = _array_type()
    check_backward(gy, x, weight, aux, activation, bias, array_types, kind, DTYPES)
    identity = AUX_KIND[activation] is None
    xp = _xp()
    gy, x, weight = xp.ascontiguousarray(gy), xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    # Identity reads no aux; gy stands in so that every launch has one signature.
    aux = gy if identity else xp.ascontiguousarray(aux)
    batch, n_in = x.shape
    n_out = weight.shape[0]
    shape = (batch, n_in, n_out)
    dtype = x.dtype
    k = _kernels(dtype, activation)
    acc_dtype = np.float64 if dtype == np.float64 else np.float32
    if path == "b" or (path is None and use_path_b(batch, n_in, n_out)):
        gx = xp.zeros((batch, n_in), dtype) if input_grad else None
        gw = xp.zeros((n_out, n_in), dtype)
        gb = xp.zeros(max(n_out, 1), acc_dtype)
        if input_grad and batch and n_in:
            stream, (dgy, daux, dw, dgx) = _launch_args([gy, aux, weight, gx])
            _launch(k, "gemm_grad_x", shape, stream, dgy, daux, dw, dgx)
        if n_out and (n_in or bias):
            stream, (dgy, daux, dx, dgw, dgb) = _launch_args([gy, aux, x, gw, gb])
            _launch(k, "gemm_grad_w", shape, stream, dgy, daux, dx, dgw, dgb, bias)
        return gx, gw, (gb[:n_out].astype(dtype) if bias else None)
    gz = gy if identity else xp.empty_like(gy)
    (_, row_blocks), _ = launch_sizes("epilogue_backward", *shape)
    partial = xp.zeros((row_blocks, max(n_out, 1)), acc_dtype)
    if n_out and (bias or not identity):
        stream, (dgy, daux, dgz, dpartial) = _launch_args([gy, aux, gz, partial])
        _launch(k, "epilogue_backward", shape, stream, dgy, daux, dgz, dpartial)
    gx = xp.matmul(gz, weight) if input_grad else None
    gw = xp.matmul(gz.T, x)
    gb = partial[:, :n_out].sum(axis=0).astype(dtype) if bias else None
    return gx, gw, gb


def warmup(dtypes: tuple[Any, ...] = DTYPES, activations: tuple[str, ...] = ACTIVATIONS) -> None:
    """Compile every kernel of these activations for these dtypes; call before timing."""
    xp = _xp()
    for dtype in dtypes:
        x, w, b = xp.ones((2, 3), dtype), xp.ones((4, 3), dtype), xp.ones(4, dtype)
        for name in activations:
            for path in ("a", "b"):
                # Every kernel argument is an array, a bool or an int: one call with a bias
                # reaches every signature of an activation's kernels.
                y, aux = linear_act_forward(x, w, b, name, path=path)
                linear_act_backward(xp.ones_like(y), x, w, aux, name, path=path)
