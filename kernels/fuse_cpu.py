"""Chains of elementwise maths fused into one generated Numba loop (what gt.compile replays).

`plan_elementwise(steps, inputs, outputs, shape, dtype)` writes, compiles and returns
`run(*arrays) -> outputs`: one pass over `shape` that computes every step per element and stores
only the steps asked for, where NumPy would make one pass and one array per step. Only maths that
IEEE arithmetic rounds exactly (+, -, *, /, negation, abs, sqrt) is fused, in the arrays' own
float dtype and with constants rounded to it as NumPy rounds them, so the loop gives NumPy's
results bit for bit. A compiled loop is kept for the process and, where a folder can be written,
in Numba's cache on disk (its source is written there, named by its hash).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from ._api import results

# The maths fused: exactly rounded, so one loop's result equals NumPy's, element by element.
OPS: dict[str, str] = {
    "add": "({} + {})",
    "subtract": "({} - {})",
    "multiply": "({} * {})",
    "divide": "({} / {})",
    "negative": "(-{})",
    "abs": "abs({})",
    "sqrt": "np.sqrt({})",
}
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MAX_RANK = 4

_loops: dict[str, Callable] = {}  # source -> compiled loop


def accepts(shape: tuple, dtype: Any, operand_shapes: list[tuple]) -> bool:
    """Whether a loop over `shape` in `dtype` can read operands of these shapes (each broadcast
    to `shape` as NumPy broadcasts)."""
    if np.dtype(dtype) not in DTYPES or not 1 <= len(shape) <= MAX_RANK:
        return False
    for s in operand_shapes:
        if len(s) > len(shape):
            return False
        for n, m in zip(reversed(s), reversed(shape)):
            if n != m and n != 1:
                return False
    return True


def plan_elementwise(
    steps: list[tuple[str, tuple]], inputs: list[tuple], outputs: list[int], shape: tuple,
    dtype: Any,
) -> Callable:  # fmt: skip
    """run(*arrays) -> one array per entry of `outputs`, each of `shape` and `dtype`.

    steps: (op, arguments) in order, an argument being ("in", i) the i-th array of `inputs` (its
    shape given there), ("step", j) the result of step j, or ("const", number); outputs: the steps
    stored. A run writes into the arrays of the run before, once nothing else holds them."""
    dtype = np.dtype(dtype)
    source = _source(steps, inputs, outputs, shape, dtype)
    loop = _compile(source, dtype, [len(s) for s in inputs], len(shape), len(outputs))
    alloc = results(True)
    keys = [f"o{k}" for k in range(len(outputs))]

    def run(*arrays: Any) -> tuple:
        outs = [alloc(key, shape, dtype) for key in keys]
        loop(*arrays, *outs)
        return tuple(outs)

    return run


def _source(steps, inputs, outputs, shape, dtype) -> str:
    rank = len(shape)
    index = [f"j{d}" for d in range(rank)]

    def operand(i: int) -> str:
        s = inputs[i]
        if not s:
            return f"a{i}[()]"
        own = [index[rank - len(s) + d] if n != 1 else "0" for d, n in enumerate(s)]
        return f"a{i}[{', '.join(own)}]"

    def arg(a: tuple) -> str:
        kind, v = a
        if kind == "in":
            return operand(v)
        if kind == "step":
            return f"t{v}"
        return f"{dtype.name}({float(v)!r})"  # rounded to the arrays' dtype, as NumPy does

    names = [f"a{i}" for i in range(len(inputs))] + [f"o{k}" for k in range(len(outputs))]
    lines = [f"def fused({', '.join(names)}):"]
    pad = "    "
    for d, n in enumerate(shape):
        lines.append(f"{pad}for j{d} in range({n}):")
        pad += "    "
    at = ", ".join(index)
    for j, (op, args) in enumerate(steps):
        lines.append(f"{pad}t{j} = {OPS[op].format(*map(arg, args))}")
    for k, j in enumerate(outputs):
        lines.append(f"{pad}o{k}[{at}] = t{j}")
    return "\n".join(lines) + "\n"


def _compile(source: str, dtype: np.dtype, ranks: list[int], rank: int, n_out: int) -> Callable:
    """The loop in `source`, compiled for C-contiguous arrays of these ranks (inputs, then
    `n_out` outputs of `rank`)."""
    import numba

    key = f"{dtype.name}\n{source}"
    loop = _loops.get(key)
    if loop is not None:
        return loop
    name = "gradtensor_fused_" + hashlib.sha256(key.encode()).hexdigest()[:24]
    module = _module(name, _HEADER + source)
    loop = numba.njit(error_model="numpy", boundscheck=False, cache=module.__file__ is not None)(
        module.fused
    )
    array = lambda ndim: numba.types.Array(numba.from_dtype(dtype), ndim, "C")  # noqa: E731
    loop.compile((*map(array, ranks), *[array(rank)] * n_out))
    _loops[key] = loop
    return loop


_HEADER = "from numpy import float32, float64\nimport numpy as np\n\n\n"


def _module(name: str, source: str) -> ModuleType:
    """The loop's source as a module named `name` (Numba's cache finds a function's globals by
    importing its module), from a file in a folder for Numba's cache on disk where one can be
    written, or else from memory (its loop is then compiled again in every process)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    path = _source_file(name, source)
    if path is None:
        module = ModuleType(name)
        module.__file__ = None
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _source_file(name: str, source: str) -> str | None:
    """The path of a file holding `source`, in the first folder of ours that can be written:
    NUMBA_CACHE_DIR's, the user's cache folder, a private temporary one (None if none can)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folders = [os.path.join(home, "gradtensor", "fused"),
               os.path.join(tempfile.gettempdir(), f"gradtensor-fused-{uid}")]  # fmt: skip
    if os.environ.get("NUMBA_CACHE_DIR"):
        folders.insert(0, os.path.join(os.environ["NUMBA_CACHE_DIR"], "gradtensor-fused"))
    for folder in folders:
        path = os.path.join(folder, name + ".py")
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            st = os.stat(folder)
            # Only a folder of ours that nobody else can write: its files are imported.
            if (uid is not None and st.st_uid != uid) or st.st_mode & 0o022:
                continue
            if not os.access(folder, os.W_OK):
                continue
            if not os.path.exists(path):
                part = f"{path}.{os.getpid()}"
                with open(part, "w") as f:
                    f.write(source)
                os.replace(part, path)  # whole, even with processes racing
            with open(path) as f:
                if f.read() == source:
                    return path
        except OSError:
            continue
    return None
