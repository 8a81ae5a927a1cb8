"""Chains of elementwise maths fused into one generated CUDA kernel (gt.compile's replays on a GPU).

`plan_elementwise(steps, inputs, outputs, shape, dtype)` is kernels.fuse_cpu's, for CuPy arrays:
the same maths (+, -, *, /, negation, abs, sqrt: what IEEE arithmetic rounds exactly), written as
one CuPy ElementwiseKernel that broadcasts its operands to `shape`, computes every step per
element and stores only the steps asked for. It is compiled with `--fmad=false`: NVRTC would
otherwise contract a*b + c into one fused multiply-add, rounded once, where CuPy's own ops round
the product and the sum each; so the kernel gives CuPy's results bit for bit. Constants are passed
in the arrays' dtype, rounded on the host as CuPy rounds a Python number. A plan launches its
kernel once on zeros, so that CuPy compiles it then (and keeps it in its kernel cache).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .fuse_cpu import OPS, accepts

__all__ = ["OPS", "accepts", "plan_elementwise", "source"]

_C = {
    "add": "({} + {})",
    "subtract": "({} - {})",
    "multiply": "({} * {})",
    "divide": "({} / {})",
    "negative": "(-{})",
    "abs": "fabs({})",
    "sqrt": "sqrt({})",
}
_CTYPE = {"float32": "float", "float64": "double"}
OPTIONS = ("--fmad=false",)


def source(
    steps: list[tuple[str, tuple]], n_inputs: int, outputs: list[int], dtype: Any
) -> tuple[str, str, str, list[float]]:
    """(in_params, out_params, operation, constants) of the kernel: inputs a0..., constants
    c0... (each number once), outputs o0...; steps as in fuse_cpu.plan_elementwise."""
    dtype = np.dtype(dtype)
    ctype = _CTYPE[dtype.name]
    constants: dict[bytes, int] = {}  # a number's float64 bits (-0.0 is not 0.0) -> its place

    def arg(a: tuple) -> str:
        kind, v = a
        if kind == "in":
            return f"a{v}"
        if kind == "step":
            return f"t{v}"
        return f"c{constants.setdefault(np.float64(v).tobytes(), len(constants))}"

    lines = [f"{ctype} t{j} = {_C[op].format(*map(arg, args))};"
             for j, (op, args) in enumerate(steps)]  # fmt: skip
    lines += [f"o{k} = t{j};" for k, j in enumerate(outputs)]
    names = [f"a{i}" for i in range(n_inputs)] + [f"c{k}" for k in range(len(constants))]
    numbers = [float(np.frombuffer(b, np.float64)[0]) for b in constants]
    in_params = ", ".join(f"{dtype.name} {n}" for n in names)
    out_params = ", ".join(f"{dtype.name} o{k}" for k in range(len(outputs)))
    return in_params, out_params, "\n".join(lines), numbers


def plan_elementwise(
    steps: list[tuple[str, tuple]], inputs: list[tuple], outputs: list[int], shape: tuple,
    dtype: Any,
) -> Callable:  # fmt: skip
    """run(*arrays) -> one new CuPy array per entry of `outputs`, each of `shape` and `dtype`,
    on the current GPU and stream (as fuse_cpu.plan_elementwise, which says what the steps are)."""
    import cupy

    dtype = np.dtype(dtype)
    if dtype.name not in _CTYPE:
        raise ValueError(f"plan_elementwise: dtype must be float32 or float64, got {dtype}")
    in_params, out_params, operation, constants = source(steps, len(inputs), outputs, dtype)
    digest = hashlib.sha256(f"{in_params}\n{out_params}\n{operation}".encode()).hexdigest()
    name = f"gradtensor_fused_{digest[:16]}"
    kernel = cupy.ElementwiseKernel(in_params, out_params, operation, name, options=OPTIONS)
    values = [dtype.type(c) for c in constants]
    n_out = len(outputs)

    def run(*arrays: Any) -> tuple:
        outs = [cupy.empty(shape, dtype) for _ in range(n_out)]
        kernel(*arrays, *values, *outs)
        return tuple(outs)

    run(*[cupy.zeros(s, dtype) for s in inputs])  # compiled now: a failure is the planner's
    return run
