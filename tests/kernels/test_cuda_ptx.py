"""Every CUDA kernel compiles to PTX for a real GPU (sm_80), which needs NVVM but no GPU.

The simulator runs the kernels' Python source, so it cannot catch what only the CUDA compiler
rejects (float16 casts, shared/local array types, unsupported math, a runtime index into a tuple
of arrays); this test can. Where ptxas is installed too, the optimizers' PTX is assembled.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gradtensor.kernels.activations import ACTIVATIONS


def _why_no_toolchain():
    # Compiling a trivial kernel exercises whatever this Numba needs (NVVM, and NVRTC for
    # numba-cuda), so a missing piece shows up here and skips instead of failing.
    try:
        from numba import cuda, types

        def probe(a):
            a[0] = 1.0

        cuda.compile_ptx(probe, (types.float32[:],), cc=(8, 0))
    except Exception as e:  # a missing toolkit shows up as many different error types
        return f"no CUDA compiler toolchain (NVVM/NVRTC) for PTX: {type(e).__name__}"
    return None


NO_TOOLCHAIN = _why_no_toolchain()
pytestmark = pytest.mark.skipif(NO_TOOLCHAIN is not None, reason=str(NO_TOOLCHAIN))


class _Sm80:
    compute_capability = (8, 0)


def _signatures(storage, compute):
    from numba import types

    a = types.Array(storage, 2, "C")
    v = types.Array(storage, 1, "C")
    p = types.Array(compute, 2, "C")
    g = types.Array(compute, 1, "C")
    b = types.boolean
    return {
        # Path A's pre-activation is kept in the compute type: float32 under float16 storage.
        "epilogue_forward": (p, v, b, b, a),
        "epilogue_backward": (a, a, a, p),
        "gemm_forward": (a, a, v, b, a, a),
        "gemm_grad_x": (a, a, a, a),
        "gemm_grad_w": (a, a, a, a, g, b),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "storage, activation",
    [("float32", name) for name in ACTIVATIONS] + [("float16", "gelu"), ("float64", "gelu")],
)
def test_kernels_compile_to_ptx(monkeypatch, storage, activation):
    import numba.cuda.dispatcher
    from numba import cuda, types

    from gradtensor.kernels import cuda as kcuda

    assert not kcuda.SIMULATOR
    # Device functions are compiled for "the current device"; stand one in, there is no GPU.
    if not hasattr(numba.cuda.dispatcher, "get_current_device"):
        pytest.skip("this Numba's CUDA dispatcher has no get_current_device to stand in for")
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: _Sm80())
    storage_t = getattr(types, storage)
    compute_t = types.float64 if storage == "float64" else types.float32
    compiled = kcuda._kernels(np.dtype(storage), activation)
    for name, sig in _signatures(storage_t, compute_t).items():
        ptx, _ = cuda.compile_ptx(compiled[name].py_func, sig, cc=(8, 0))
        assert ".entry" in ptx, name
        # Accumulators and operand fragments must live in registers, not local memory.
        assert ".local" not in ptx, f"{name} spills to local memory"


# The optimizer kernels: how many tensor lists and scalars (`update_scalars`, in the arrays'
# dtype) each takes.
OPTIM = {"_sgd": (3, 8), "_adam": (5, 12), "_rmsprop": (5, 9)}
ARG_LIMIT = 4096  # bytes of kernel arguments on every GPU CUDA supports
_PARAM_BYTES = {"64": 8, "32": 4, "16": 2, "8": 1}


def _ptxas():
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "ptxas").exists():
            return str(Path(home) / "bin" / "ptxas")
    return shutil.which("ptxas")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", OPTIM)
def test_optimizer_kernels_compile_at_every_list_width(monkeypatch, tmp_path, name, dtype):
    import numba.cuda.dispatcher
    from numba import cuda, types

    from gradtensor.kernels import optim_cuda

    assert not optim_cuda.SIMULATOR
    if not hasattr(numba.cuda.dispatcher, "get_current_device"):
        pytest.skip("this Numba's CUDA dispatcher has no get_current_device to stand in for")
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: _Sm80())
    n_lists, n_scalars = OPTIM[name]
    scalar = getattr(types, dtype)
    widest = optim_cuda.per_launch(n_lists)
    ptxas = _ptxas()
    # The scalars passed with the launch (eager), or read from a GPU array (a CUDA graph's).
    forms = {"tuple": types.UniTuple(scalar, n_scalars), "array": types.Array(scalar, 1, "C")}
    for width, form in [(w, f) for w in (1, widest) for f in forms]:
        # As a launch on CuPy arrays types it: one tuple of 1-D arrays per list.
        lists = (types.UniTuple(types.Array(scalar, 1, "C"), width),) * n_lists
        sig = (types.int64, *lists, forms[form])
        ptx, _ = cuda.compile_ptx(getattr(optim_cuda, name).py_func, sig, cc=(8, 0))
        entry = ptx.split(".entry", 1)[1].split(")", 1)[0]
        arg_bytes = sum(_PARAM_BYTES[b] for b in re.findall(r"\.param \.[a-z]+(\d+)", entry))
        what = f"{name} x{width} ({form} of scalars)"
        assert arg_bytes <= ARG_LIMIT, f"{what}: {arg_bytes} bytes of kernel arguments"
        assert ".local" not in ptx, f"{what}: the tuple index spills to local memory"
        if ptxas is not None:
            path = tmp_path / f"{name}{width}{form}.ptx"
            path.write_text(ptx)
            done = subprocess.run(
                [ptxas, "-arch=sm_80", str(path), "-o", str(tmp_path / "out.cubin")],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"ptxas refused {what}:\n{done.stderr[-4000:]}"
    # As many tensors per launch as 4 KB of arguments allows: twice as many would not fit.
    assert 2 * widest * n_lists * optim_cuda._ARRAY_BYTES > optim_cuda._ARG_BYTES
