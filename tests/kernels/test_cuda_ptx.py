"""Every CUDA kernel compiles to PTX for a real GPU (sm_80), which needs NVVM but no GPU.

The simulator runs the kernels' Python source, so it cannot catch what only the CUDA compiler
rejects (float16 casts, shared/local array types, unsupported math); this test can.
"""

import pytest


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
    b, i = types.boolean, types.int64
    return {
        # Path A's pre-activation is kept in the compute type: float32 under float16 storage.
        "epilogue_forward": (p, v, b, i, b, a),
        "epilogue_backward": (a, a, i, a, p),
        "gemm_forward": (a, a, v, b, i, b, a, a),
        "gemm_grad_x": (a, a, i, a, a),
        "gemm_grad_w": (a, a, i, a, a, g, b),
    }


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["float16", "float32", "float64"])
def test_kernels_compile_to_ptx(monkeypatch, storage):
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
    compiled = kcuda._KERNELS[compute_t]
    for name, sig in _signatures(storage_t, compute_t).items():
        ptx, _ = cuda.compile_ptx(compiled[name].py_func, sig, cc=(8, 0))
        assert ".entry" in ptx, name
        # Accumulators and operand fragments must live in registers, not local memory.
        assert ".local" not in ptx, f"{name} spills to local memory"
