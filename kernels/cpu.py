"""CPU linear + activation kernels: BLAS GEMMs with the elementwise work fused into Numba passes."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from . import blas
from ._api import ACTIVATIONS, AUX_KIND, check_backward, check_forward, results
from ._numba_cache import ensure_cache
from .activations import DIGEST, TABLE

__all__ = [
    "ACTIVATIONS",
    "linear_act_backward",
    "linear_act_forward",
    "plan_backward",
    "plan_forward",
    "warmup",
]

ensure_cache(__file__)  # before any cache=True function is defined

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS enums

# Parallel passes (prange over row chunks) pay only when the GEMMs' threads and Numba's are one
# OpenMP runtime: beside NumPy's OpenBLAS (pthreads that spin after each GEMM) they lost at every
# size measured, beside MKL on GNU OpenMP they never lost (benchmarks/results/kernel-decisions.md).
# "auto" therefore runs them from 2**14 elements in that case only; an int forces a size, None
# turns them off.
PARALLEL_MIN_ELEMENTS: int | str | None = "auto"
_AUTO_MIN_ELEMENTS = 1 << 14
_auto_ok: bool | None = None  # "auto"'s verdict on Numba's layer, once a parallel pass has run

# GEMMs always go to BLAS (kernels.blas: MKL when installed, else NumPy's OpenBLAS); fusion is done
# in the passes instead. Don't retry a Numba GEMM with the epilogue fused in: it lost to BLAS + one
# pass at every shape measured, skinny layers included, as LLVM caps its vectors at 256 bits and
# cannot keep a tile of accumulators in registers (benchmarks/results/kernel-decisions.md).

# No nnan/ninf: a NaN produced in training must come out as NaN, not as whatever LLVM assumes.
# error_model="numpy" drops the division-by-zero check that otherwise blocks vectorization.
_OPTS = dict(
    cache=True,
    error_model="numpy",
    fastmath={"nsz", "arcp", "contract", "afn"},
)
# And no reassoc: exp_f32's rounding trick (x + 1.5 * 2**23 - 1.5 * 2**23) would fold to x.


# ---------------------------------------------------------------------------------------------
# Scalar math. Numba lowers math.exp/tanh/erf to scalar libm calls that LLVM cannot vectorize,
# which would make the fused pass slower than the unfused NumPy it replaces
# (benchmarks/results/kernel-decisions.md). So float32 gets branch-free versions built from + * /
# and a bit cast, which vectorize; float64 keeps libm for full accuracy.


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32 as float32 (builds 2**n for exp without a libm call)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _bits_of_f32(typingctx, x):
    """Reinterpret a float32 as int32."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


_F = np.float32
_LOG2E = _F(1.4426950408889634)
# ln 2 split so that n * _LN2_HI is exact for the |n| <= 127 that float32 can reach.
_LN2_HI = _F(0.693359375)
_LN2_LO = _F(-2.12194440e-4)
# Taylor coefficients 1/k!: on |r| <= ln2/2 the degree-7 remainder is < 6e-9, below float32's eps.
_E2, _E3, _E4, _E5, _E6, _E7 = (_F(1 / math.factorial(k)) for k in range(2, 8))
# Least-squares fit (own, on 2e5 points of z in [0, 12] against a float64 erfc) of
# P(t) = log(erfc(z) / t) + z^2 with t = 1 / (1 + z/2): relative error 5e-8 in float64,
# 8e-6 worst case (z near 9, from rounding z*z) when evaluated in float32.
_ERFC_P = tuple(
    _F(c)
    for c in (
        -1.2655492790e00,
        1.0011105844e00,
        3.6067999265e-01,
        1.8816924072e-01,
        -5.6788577614e-01,
        1.3044127933e00,
        -2.9425786406e00,
        3.5635373713e00,
        -2.3157598967e00,
        7.8258170997e-01,
        -1.0871805072e-01,
    )
)
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9, _P10 = _ERFC_P


# Adding 1.5 * 2**23 rounds a float32 to an integer n and leaves n + 0x4B400000 in its bits: the
# float -> int conversion without cvtps2dq/cvtps2qq round trips, which is faster
# (benchmarks/results/kernel-decisions.md). The exponent is built as 2**(n-1) (times 2 afterwards)
# so that n = 128 still encodes and overflows to inf.
_SHIFTER = _F(12582912.0)
_SHIFTER_BITS_MINUS_BIAS = np.int32(0x4B400000 - 126)
# Below this exp returns 0 rather than a subnormal, and no lane, not even a discarded one, ever
# computes a subnormal: each one costs a microcode assist of ~100 cycles (a gelu pass's slowdown:
# benchmarks/results/kernel-decisions.md). At -86, p * 2**(n-1) >= 0.7 * 2**-125 is still normal.
_EXP_FLUSH = _F(-86.0)
_EXP_MAX = _F(88.73)


@njit(inline="always", **_OPTS)
def _exp_f32(x):
    # Written so that NaN passes through (every comparison with it is False).
    xc = _EXP_FLUSH if x < _EXP_FLUSH else x
    xc = _EXP_MAX if xc > _EXP_MAX else xc
    k = xc * _LOG2E + _SHIFTER
    n = k - _SHIFTER
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = _E6 + r * _E7
    p = _E5 + r * p
    p = _E4 + r * p
    p = _E3 + r * p
    p = _E2 + r * p
    p = _F(1.0) + r * p
    p = _F(1.0) + r * p
    e = p * _f32_from_bits((_bits_of_f32(k) - _SHIFTER_BITS_MINUS_BIAS) << np.int32(23))
    return _F(0.0) if x < _EXP_FLUSH else e * _F(2.0)


# tanh x = x P(x^2) / Q(x^2) on |x| <= 9 (beyond, tanh rounds to +-1 in float32). Own fit:
# Lawson-reweighted linear least squares on the relative error over 12000 points of [1e-4, 9];
# 7e-8 relative in float64, 4e-7 (a few ulp) evaluated in float32. Half the work of an
# exp-based tanh, which matters because this pass competes with NumPy's AVX-512 tanh.
_TP0, _TP1, _TP2, _TP3, _TP4, _TP5 = (
    _F(c)
    for c in (
        9.9999994568e-01,
        1.2923456459e-01,
        2.9251693169e-03,
        9.3043338160e-06,
        -1.2877621234e-08,
        1.8469053805e-11,
    )
)
_TQ1, _TQ2, _TQ3 = (_F(c) for c in (4.6256744753e-01, 2.3781608822e-02, 2.2868780301e-04))


@njit(inline="always", **_OPTS)
def _tanh_f32(x):
    # Comparisons are written so that NaN passes through.
    c = _F(9.0) if x > _F(9.0) else x
    c = _F(-9.0) if c < _F(-9.0) else c
    s = c * c
    p = _TP4 + s * _TP5
    p = _TP3 + s * p
    p = _TP2 + s * p
    p = _TP1 + s * p
    p = _TP0 + s * p
    q = _TQ2 + s * _TQ3
    q = _TQ1 + s * q
    q = _F(1.0) + s * q
    t = c * p / q
    # The fit overshoots 1 by up to 2 ulp near the clamp.
    t = _F(1.0) if t > _F(1.0) else t
    return _F(-1.0) if t < _F(-1.0) else t


@njit(inline="always", **_OPTS)
def _erfc_pos_f32(z):
    # erfc(z) for z >= 0, keeping relative accuracy in the tail (gelu's negative side is x*erfc).
    t = _F(1.0) / (_F(1.0) + _F(0.5) * z)
    p = _P9 + t * _P10
    p = _P8 + t * p
    p = _P7 + t * p
    p = _P6 + t * p
    p = _P5 + t * p
    p = _P4 + t * p
    p = _P3 + t * p
    p = _P2 + t * p
    p = _P1 + t * p
    p = _P0 + t * p
    # Clamped so that t * exp(.) stays normal in every lane; erfc(z) < 1e-35 becomes 0.
    a = p - z * z
    e = t * _exp_f32(_F(-80.0) if a < _F(-80.0) else a)
    return _F(0.0) if a < _F(-80.0) else e


class _Maths:
    """The activation table's maths namespace (kernels.activations) for Numba scalars of one
    float type, its constants of that type: no mixed-precision arithmetic in the loops."""

    def __init__(self, ft, exp, tanh, erfc_pos):
        half, one = ft(0.5), ft(1.0)
        inv_sqrt2 = ft(1.0 / math.sqrt(2.0))
        self.const, self.exp, self.tanh = ft, exp, tanh

        # Inlined in Numba's IR: left to LLVM, these calls are too big to inline and block
        # vectorization of the loops that use them.
        @_inline
        def sigmoid(z):
            return one / (one + exp(-z))

        @_inline
        def ncdf(z):
            # erfc of |z| only, so that the negative tail is not 1 - (almost 1).
            c = half * erfc_pos(abs(z) * inv_sqrt2)
            return c if z < ft(0.0) else one - c

        self.sigmoid, self.ncdf, self.where, self.maximum = sigmoid, ncdf, _where, _maximum


def _inline(fn):
    return njit(inline="always", error_model="numpy", fastmath=_OPTS["fastmath"])(fn)


@_inline
def _where(c, a, b):
    return a if c else b


@_inline
def _maximum(a, b):
    return b if a < b else a  # a NaN in a passes through


_MATHS = {
    types.float32: _Maths(np.float32, _exp_f32, _tanh_f32, _erfc_pos_f32),
    types.float64: _Maths(np.float64, _inline(lambda z: math.exp(z)),
                          _inline(lambda z: math.tanh(z)), _inline(lambda z: math.erfc(z))),
}  # fmt: skip
_SCALAR: dict[tuple[str, Any], tuple[Any, Any]] = {}


def _scalar(act: Any, ty: Any) -> tuple[Any, Any] | None:
    """(value, grad) of the activation that `act` names, compiled for Numba float type `ty`."""
    name = act.types[0] if isinstance(act, types.BaseTuple) else None
    if not isinstance(name, types.StringLiteral) or ty not in _MATHS:
        return None
    key = (name.literal_value, ty)
    if key not in _SCALAR:
        fns = TABLE[key[0]].maths(_MATHS[ty])
        _SCALAR[key] = tuple(f if hasattr(f, "py_func") else _inline(f) for f in fns)
    return _SCALAR[key]


# Compiled code names the activation with `act`, a tuple of literal strings (name, table digest)
# that each kernel holds as a constant: the overloads below pick the activation's maths while
# compiling, so each activation has its own straight-line loops, compiled on first use, and its
# own entry in the on-disk cache, which the digest ties to the table's source.
def _act_value(act, z):
    raise NotImplementedError("only callable from compiled code")


def _act_grad(act, g, s):
    raise NotImplementedError("only callable from compiled code")


@overload(_act_value, inline="always", prefer_literal=True)
def _act_value_impl(act, z):
    fns = _scalar(act, z)
    if fns is not None:
        value = fns[0]
        return lambda act, z: value(z)
    return None


@overload(_act_grad, inline="always", prefer_literal=True)
def _act_grad_impl(act, g, s):
    fns = _scalar(act, s)
    if fns is not None:
        grad = fns[1]
        return lambda act, g, s: grad(g, s)
    return None


def _saves(act: Any) -> str | None:
    return TABLE[act.types[0].literal_value].saves


# ---------------------------------------------------------------------------------------------
# Fused passes over rows [r0, r1): each inner loop is a straight line over a contiguous row that
# LLVM vectorizes.


def _forward_rows(act, z, bias, y, r0, r1):
    """Rows r0:r1 of the epilogue: z += bias, then act applied in place (aux is y) or into y."""
    raise NotImplementedError("only callable from compiled code")


@overload(_forward_rows, prefer_literal=True)
def _forward_rows_impl(act, z, bias, y, r0, r1):
    # In-place activations read and write one array: with two names for the same buffer LLVM's
    # runtime overlap check would send every row down the scalar loop.
    if _saves(act) == "input":

        def keep_z(act, z, bias, y, r0, r1):
            for i in range(r0, r1):
                for j in range(z.shape[1]):
                    v = z[i, j] + bias[j]
                    z[i, j] = v
                    y[i, j] = _act_value(act, v)

        return keep_z

    def in_place(act, z, bias, y, r0, r1):
        for i in range(r0, r1):
            for j in range(z.shape[1]):
                z[i, j] = _act_value(act, z[i, j] + bias[j])

    return in_place


def _backward_rows(act, gy, aux, gz, gb, r0, r1):
    """gz = gy * act'(aux) over rows r0:r1, adding each column's sum of gz into gb (float64)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_backward_rows, prefer_literal=True)
def _backward_rows_impl(act, gy, aux, gz, gb, r0, r1):
    if _saves(act) is None:  # gz is gy: only the sums

        def sums(act, gy, aux, gz, gb, r0, r1):
            for i in range(r0, r1):
                for j in range(gy.shape[1]):
                    gb[j] += gy[i, j]

        return sums

    def rows(act, gy, aux, gz, gb, r0, r1):
        for i in range(r0, r1):
            for j in range(gy.shape[1]):
                g = _act_grad(act, gy[i, j], aux[i, j])
                gz[i, j] = g
                gb[j] += g

    return rows


# ---------------------------------------------------------------------------------------------
# Row blocks (when the GEMMs are MKL's, which compiled code can call). A layer whose activations
# outgrow the cache while its weight does not (65536x64x64: 16 MB arrays, a 16 KB weight) runs a
# block of rows at a time: the block's GEMM, then its epilogue while the block is still in L2;
# backward, gz of the block, then its gx GEMM and its share of gW (accumulated, beta=1) from the
# same cached block. Each (B, Out) array then crosses memory once, not two or three times, and gz
# needs only a block of scratch. Blocks of 512 KB of x and z rows; under 128 rows blocking loses,
# as gW, read and written once a block, outweighs what is saved. In parallel, each thread takes a
# span of rows with MKL held to one thread on it: MKL's own threads nested inside Numba's ran
# slower (figures: benchmarks/results/kernel-decisions.md).
BLOCK_BYTES = 1 << 19
_MIN_BLOCK_ROWS = 128


@njit(inline="always")
def _forward_span(act, gemm, x, w, tw, ldw, bias, z, y, r0, r1, block):
    """Rows r0:r1 of act(x @ w.T + bias) into z (and y), `block` rows at a time."""
    n_in, n_out = x.shape[1], z.shape[1]
    for s in range(r0, r1, block):
        e = min(r1, s + block)
        gemm(_ROW_MAJOR, _NO_TRANS, tw, e - s, n_out, n_in, 1.0,
             x[s:e].ctypes, n_in, w.ctypes, ldw, 0.0, z[s:e].ctypes, n_out)  # fmt: skip
        _forward_rows(act, z, bias, y, s, e)


@njit(inline="always")
def _backward_span(act, gemm, gy, x, w, tw, ldw, aux, gz, gx, gw, gb, r0, r1, block, want_gx,
                   want_gb):  # fmt: skip
    """Rows r0:r1 of the backward, `block` rows at a time: gx rows, gW and gb sums (gz scratch)."""
    n_in, n_out = x.shape[1], gy.shape[1]
    tw_gx = _NO_TRANS if tw == _TRANS else _TRANS  # gx = gz @ w reads w the other way round
    beta = 0.0  # the first block writes gW, the others add to it
    for s in range(r0, r1, block):
        e = min(r1, s + block)
        m = e - s
        if gz.shape[0] == 0:  # identity: gz is gy itself
            g = gy[s:e]
            if want_gb:
                _backward_rows(act, g, g, g, gb, 0, m)
        else:
            g = gz[:m]
            _backward_rows(act, gy[s:e], aux[s:e], g, gb, 0, m)
        if want_gx:
            gemm(_ROW_MAJOR, _NO_TRANS, tw_gx, m, n_in, n_out, 1.0,
                 g.ctypes, n_out, w.ctypes, ldw, 0.0, gx[s:e].ctypes, n_in)  # fmt: skip
        gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, n_out, n_in, m, 1.0,
             g.ctypes, n_out, x[s:e].ctypes, n_in, beta, gw.ctypes, n_in)  # fmt: skip
        beta = 1.0
    if beta == 0.0:  # an empty span (more threads than rows to share) adds nothing to gW
        gw[:] = 0.0


_PASSES: dict[str, Any] = {}


def _passes(activation: str) -> Any:
    """The compiled passes of one activation, made on its first use; each compiles (or loads
    from the on-disk cache) on its first call, so a model pays only for what it runs."""
    passes = _PASSES.get(activation)
    if passes is None:
        passes = _PASSES[activation] = _make_passes((activation, DIGEST))
    return passes


def _make_passes(act: tuple[str, str]) -> Any:
    @njit(**_OPTS)
    def forward(z, bias, y, r0, r1):
        _forward_rows(act, z, bias, y, r0, r1)

    @njit(**_OPTS)
    def backward(gy, aux, gz, gb, r0, r1):
        _backward_rows(act, gy, aux, gz, gb, r0, r1)

    @njit(parallel=True, **_OPTS)
    def forward_parallel(z, bias, y, nchunks):
        rows = z.shape[0]
        step = (rows + nchunks - 1) // nchunks
        for c in prange(nchunks):
            _forward_rows(act, z, bias, y, c * step, min(rows, (c + 1) * step))

    @njit(parallel=True, **_OPTS)
    def backward_parallel(gy, aux, gz, partial):
        rows = gy.shape[0]
        nchunks = partial.shape[0]
        step = (rows + nchunks - 1) // nchunks
        for c in prange(nchunks):
            _backward_rows(act, gy, aux, gz, partial[c], c * step, min(rows, (c + 1) * step))

    @njit(nogil=True, **_OPTS)
    def forward_span(gemm, x, w, tw, ldw, bias, z, y, r0, r1, block):
        _forward_span(act, gemm, x, w, tw, ldw, bias, z, y, r0, r1, block)

    @njit(nogil=True, **_OPTS)
    def backward_span(gemm, gy, x, w, tw, ldw, aux, gz, gx, gw, gb, r0, r1, block, want_gx,
                      want_gb):  # fmt: skip
        _backward_span(act, gemm, gy, x, w, tw, ldw, aux, gz, gx, gw, gb, r0, r1, block,
                       want_gx, want_gb)  # fmt: skip

    @njit(parallel=True, **_OPTS)
    def forward_spans(gemm, one_thread, x, w, tw, ldw, bias, z, y, block, nchunks):
        rows = z.shape[0]
        step = (rows + nchunks - 1) // nchunks
        for c in prange(nchunks):
            prev = one_thread(1)
            _forward_span(act, gemm, x, w, tw, ldw, bias, z, y, c * step,
                          min(rows, (c + 1) * step), block)  # fmt: skip
            one_thread(prev)

    @njit(parallel=True, **_OPTS)
    def backward_spans(gemm, one_thread, gy, x, w, tw, ldw, aux, gz, gx, gw, gb, block,
                       want_gx, want_gb):  # fmt: skip
        rows = gy.shape[0]
        nchunks = gw.shape[0]
        step = (rows + nchunks - 1) // nchunks
        for c in prange(nchunks):
            prev = one_thread(1)
            _backward_span(act, gemm, gy, x, w, tw, ldw, aux, gz[c], gx, gw[c], gb[c], c * step,
                           min(rows, (c + 1) * step), block, want_gx, want_gb)  # fmt: skip
            one_thread(prev)

    return SimpleNamespace(**{k: v for k, v in locals().items() if k != "act"})


def _parallel_min() -> int | None:
    """The size from which the passes run in parallel now, or None (see PARALLEL_MIN_ELEMENTS)."""
    global _auto_ok
    if PARALLEL_MIN_ELEMENTS != "auto":
        return PARALLEL_MIN_ELEMENTS  # type: ignore[return-value]
    if blas.OPENMP != "gnu":
        return None
    if _auto_ok is None:
        try:  # known only after Numba's first parallel region
            _auto_ok = numba.threading_layer() == "omp"
        except ValueError:
            return _AUTO_MIN_ELEMENTS
    return _AUTO_MIN_ELEMENTS if _auto_ok else None


def _chunks(size: int) -> int:
    """How many row chunks a pass over `size` elements is split into (1 means serial)."""
    # A small pass is serial whatever the layer: asking Numba for its threading layer raises (a
    # costly exception) on every call until a parallel region has run.
    smallest = _AUTO_MIN_ELEMENTS if PARALLEL_MIN_ELEMENTS == "auto" else PARALLEL_MIN_ELEMENTS
    if smallest is None or size < smallest:
        return 1
    limit = _parallel_min()
    if limit is None or size < limit:
        return 1
    return min(numba.get_num_threads(), blas.thread_limit or numba.config.NUMBA_NUM_THREADS)


def _run_forward(k, z, bias, y):
    nchunks = _chunks(z.size)
    if nchunks == 1:
        k.forward(z, bias, y, 0, z.shape[0])
    else:
        k.forward_parallel(z, bias, y, nchunks)


def _run_backward(k, gy, aux, gz, gb, alloc):
    """Fill gz, and gb (float64) with the column sums of gz."""
    nchunks = _chunks(gy.size)
    if nchunks == 1:
        gb.fill(0)
        k.backward(gy, aux, gz, gb, 0, gy.shape[0])
        return
    partial = alloc("gb_parts", (nchunks, gy.shape[1]), np.float64)
    partial.fill(0)
    k.backward_parallel(gy, aux, gz, partial)
    partial.sum(axis=0, out=gb)


def _blocking(x: np.ndarray, n_out: int) -> tuple[Any, int] | None:
    """(cblas gemm, rows per block) when the layer runs in row blocks, else None. x is as the
    layer will read it: a strided x is made C-contiguous (`_as_is`), a transposed view stays so."""
    gemm = blas.cblas_gemm(x.dtype)
    rows, n_in = x.shape
    contiguous = x.flags.c_contiguous or not x.flags.f_contiguous
    if gemm is None or not contiguous or n_in == 0 or n_out == 0:
        return None
    block = BLOCK_BYTES // ((n_in + n_out) * x.itemsize)
    if block < _MIN_BLOCK_ROWS or rows < 2 * block:
        return None
    return gemm, block


def _span_count(out: np.ndarray, block: int) -> int:
    """How many threads share a row-blocked layer: no more than it has whole blocks, since each
    span beyond those would only add a partial gW to sum."""
    if blas.set_threads_local is None:  # MKL's threads could not be held to one per span
        return 1
    return min(_chunks(out.size), out.shape[0] // block)


def _weight_operand(w: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(C-ordered array, transpose flag, leading dimension) that make BLAS read a (Out, In) w as
    w.T. An F-ordered w is passed as its C-ordered transpose: one array type for the kernels."""
    return (w, _TRANS, w.shape[1]) if w.flags.c_contiguous else (w.T, _NO_TRANS, w.shape[0])


def _as_is(a: np.ndarray) -> bool:
    """Whether BLAS reads `a` as it is, which a plan decides once for its operands' layouts.
    Transposed views go to BLAS as they are; anything else strided would drop NumPy's matmul to
    its slow non-BLAS loop, so a run copies it once (np.ascontiguousarray)."""
    return a.flags.c_contiguous or a.flags.f_contiguous


def linear_act_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, activation: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """y, aux = act(x @ weight.T + bias); e.g. linear_act_forward(x, w, b, "relu")."""
    return plan_forward(x, weight, bias, activation)(x, weight, bias)


def plan_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, activation: str, keep: bool = False
) -> Any:
    """linear_act_forward with its checks and choices made once, for operands of these shapes,
    dtypes and layouts: run(x, weight, bias) -> (y, aux). A replay of gt.compile calls it, with
    keep=True: its results are written into the arrays of the run before (`_api.results`)."""
    check_forward(x, weight, bias, activation, (np.ndarray,), "NumPy", DTYPES)
    dtype, n_out = x.dtype, weight.shape[0]
    shape = (x.shape[0], n_out)
    saves = AUX_KIND[activation]
    alloc = results(keep)
    as_is = _as_is(x), _as_is(weight), bias is None or bias.flags.c_contiguous
    matmul = blas.matmul_for(*x.shape, n_out)
    if saves is None and bias is None:

        def matmul_only(x: Any, weight: Any, bias: Any) -> tuple[np.ndarray, None]:
            x = x if as_is[0] else np.ascontiguousarray(x)
            weight = weight if as_is[1] else np.ascontiguousarray(weight)
            return matmul(x, weight.T, alloc("z", shape, dtype)), None

        return matmul_only
    zeros = np.zeros(n_out, dtype) if bias is None else None
    k = _passes(activation)
    blocks = _blocking(x, n_out)

    def run(x: Any, weight: Any, bias: Any) -> tuple[np.ndarray, np.ndarray | None]:
        x = x if as_is[0] else np.ascontiguousarray(x)
        weight = weight if as_is[1] else np.ascontiguousarray(weight)
        b = zeros if bias is None else bias if as_is[2] else np.ascontiguousarray(bias)
        z = alloc("z", shape, dtype)
        y = alloc("y", shape, dtype) if saves == "input" else z
        if blocks is None:
            matmul(x, weight.T, z)
            _run_forward(k, z, b, y)
        else:
            _forward_blocked(k, x, weight, b, z, y, *blocks)
        return y, (None if saves is None else z)

    return run


def _forward_blocked(k, x, weight, b, z, y, gemm, block):
    w, tw, ldw = _weight_operand(weight)
    nchunks = _span_count(z, block)
    if nchunks == 1:
        k.forward_span(gemm, x, w, tw, ldw, b, z, y, 0, z.shape[0], block)
    else:
        k.forward_spans(gemm, blas.set_threads_local, x, w, tw, ldw, b, z, y, block, nchunks)


def linear_act_backward(
    gy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    aux: np.ndarray | None,
    activation: str,
    bias: bool = True,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """gx, gw, gb of linear_act_forward; e.g. linear_act_backward(gy, x, w, aux, "relu").

    input_grad=False skips gx (returned as None): a first layer's input needs no gradient, and
    that saves one of the three GEMMs.
    """
    return plan_backward(gy, x, weight, aux, activation, bias, input_grad)(gy, x, weight, aux)


def plan_backward(
    gy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    aux: np.ndarray | None,
    activation: str,
    bias: bool = True,
    input_grad: bool = True,
    keep: bool = False,
) -> Any:
    """linear_act_backward with its checks and choices made once, for operands of these shapes,
    dtypes and layouts: run(gy, x, weight, aux) -> (gx, gw, gb). A replay of gt.compile calls
    it, with keep=True (as plan_forward)."""
    check_backward(gy, x, weight, aux, activation, bias, (np.ndarray,), "NumPy", DTYPES)
    identity = AUX_KIND[activation] is None
    k = _passes(activation)
    blocks = _blocking(x, weight.shape[0])
    alloc = results(keep)
    dtype, (n_out, n_in) = x.dtype, weight.shape
    as_is = _as_is(x), _as_is(weight), identity or aux.flags.c_contiguous
    matmul_gx = blas.matmul_for(x.shape[0], n_out, n_in)
    matmul_gw = blas.matmul_for(n_out, x.shape[0], n_in)

    def run(gy: Any, x: Any, weight: Any, aux: Any) -> tuple:
        x = x if as_is[0] else np.ascontiguousarray(x)
        weight = weight if as_is[1] else np.ascontiguousarray(weight)
        # A read-only gy (a broadcast gradient of a mean, say) is copied: the identity pass takes
        # gy as its own output.
        flags = gy.flags
        if not (flags.writeable and flags.c_contiguous):
            gy = _copy(alloc("gy", gy.shape, dtype), gy)
        aux = gy if identity else aux if as_is[2] else np.ascontiguousarray(aux)
        if blocks is not None:
            gx, gw, gb = _backward_blocked(k, gy, x, weight, aux, identity, bias, input_grad,
                                           alloc, *blocks)  # fmt: skip
        else:
            gb = alloc("gb64", n_out, np.float64)
            if identity:
                gz = gy
            else:
                gz = alloc("gz", gy.shape, dtype)
            if bias or not identity:
                _run_backward(k, gy, aux, gz, gb, alloc)
            gx = None
            if input_grad:
                gx = matmul_gx(gz, weight, alloc("gx", x.shape, dtype))
            gw = matmul_gw(gz.T, x, alloc("gw", (n_out, n_in), dtype))
        return gx, gw, (_copy(alloc("gb", n_out, dtype), gb) if bias else None)

    return run


def _copy(out: np.ndarray, a: np.ndarray) -> np.ndarray:
    out[...] = a
    return out


def _backward_blocked(k, gy, x, weight, aux, identity, bias, input_grad, alloc, gemm, block):
    dtype, (n_out, n_in) = x.dtype, weight.shape
    nchunks = _span_count(gy, block)
    gx = alloc("gx", x.shape if input_grad else (0, n_in), dtype)
    gz = alloc("gz", (nchunks, 0 if identity else block, n_out), dtype)
    w, tw, ldw = _weight_operand(weight)
    if nchunks == 1:
        gw, gb = alloc("gw", (n_out, n_in), dtype), alloc("gb64", n_out, np.float64)
        gb.fill(0)
        k.backward_span(gemm, gy, x, w, tw, ldw, aux, gz[0], gx, gw, gb, 0, gy.shape[0], block,
                        input_grad, bias)  # fmt: skip
    else:  # each span sums its own gW and gb
        gws = alloc("gws", (nchunks, n_out, n_in), dtype)
        gbs = alloc("gbs", (nchunks, n_out), np.float64)
        gbs.fill(0)
        k.backward_spans(gemm, blas.set_threads_local, gy, x, w, tw, ldw, aux, gz, gx, gws, gbs,
                         block, input_grad, bias)  # fmt: skip
        gw = gws.sum(axis=0, out=alloc("gw", (n_out, n_in), dtype))
        gb = gbs.sum(axis=0, out=alloc("gb64", n_out, np.float64))
    return gx if input_grad else None, gw, gb


def warmup(activations: tuple[str, ...] = ACTIVATIONS) -> None:
    """Compile (or load from the on-disk cache) the kernels of `activations` for every
    signature they can run with, with the BLAS and PARALLEL_MIN_ELEMENTS in force; call before
    timing."""
    auto = PARALLEL_MIN_ELEMENTS == "auto"
    parallel = blas.OPENMP == "gnu" if auto else PARALLEL_MIN_ELEMENTS is not None
    blas.warmup()
    for dtype in DTYPES:
        x, w, b = np.ones((4, 3), dtype), np.ones((2, 3), dtype), np.ones(2, dtype)
        z = np.ones((4, 2), dtype)
        gemm = blas.cblas_gemm(np.dtype(dtype))
        wt, tw, ldw = _weight_operand(w)
        gz, gw, gb = np.empty((2, 2, 2), dtype), np.empty((2, 2, 3), dtype), np.zeros((2, 2))
        for name in activations:
            y, aux = linear_act_forward(x, w, b, name)
            linear_act_backward(np.ones_like(y), x, w, aux, name)
            k = _passes(name)
            if parallel:
                k.forward_parallel(z, b, z.copy(), 2)
                k.backward_parallel(z, z, z.copy(), np.zeros((2, 2)))
            if gemm is None:
                continue
            k.forward_span(gemm, x, wt, tw, ldw, b, z, z.copy(), 0, 4, 2)
            k.backward_span(gemm, z, x, wt, tw, ldw, z, gz[0], x, gw[0], gb[0], 0, 4, 2, True,
                            True)  # fmt: skip
            if parallel and blas.set_threads_local is not None:
                one = blas.set_threads_local
                k.forward_spans(gemm, one, x, wt, tw, ldw, b, z, z.copy(), 2, 2)
                k.backward_spans(gemm, one, z, x, wt, tw, ldw, z, gz, x, gw, gb, 2, True, True)
