"""The generated elementwise CUDA kernels against CuPy doing the same maths one op at a time (on
a GPU, or on the CuPy stand-in, which runs the kernels' subset of CUDA C++)."""

import numpy as np
import pytest

from gradtensor.kernels import fuse_cpu, fuse_cuda

pytestmark = pytest.mark.cuda

STEPS = [
    ("add", (("in", 0), ("in", 1))),
    ("multiply", (("step", 0), ("const", 1.1))),  # rounded to dtype, as CuPy rounds it
    ("divide", (("const", 3), ("in", 2))),
    ("subtract", (("step", 1), ("step", 2))),
    ("abs", (("step", 3),)),
    ("sqrt", (("step", 4),)),
    ("negative", (("in", 3),)),
    ("multiply", (("step", 5), ("step", 6))),
    ("add", (("step", 7), ("in", 4))),  # a product then a sum: no fused multiply-add
    ("multiply", (("step", 8), ("const", -0.0))),
    ("add", (("step", 9), ("const", 0.0))),  # -0.0 and 0.0: two constants
]


def _cupy(cupy, steps, arrays):
    fns = {"abs": cupy.abs, "negative": cupy.negative, "sqrt": cupy.sqrt, "add": cupy.add,
           "subtract": cupy.subtract, "multiply": cupy.multiply, "divide": cupy.divide}  # fmt: skip
    values = []
    for op, args in steps:
        xs = [arrays[v] if k == "in" else values[v] if k == "step" else v for k, v in args]
        values.append(fns[op](*xs))
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_kernel_gives_cupys_results_over_broadcast_operands(dtype):
    import cupy

    r = np.random.default_rng(0)
    shape = (3, 4, 5)
    shapes = [(3, 4, 5), (5,), (4, 1), (), (1, 4, 5)]
    host = [r.standard_normal(s).astype(dtype) for s in shapes]
    host[0].flat[:4] = [np.inf, -0.0, np.nan, 0.0]
    arrays = [cupy.asarray(a) for a in host]
    assert fuse_cuda.accepts(shape, dtype, shapes)
    run = fuse_cuda.plan_elementwise(STEPS, shapes, [3, 8, 10], shape, dtype)
    want = [w.get() for w in _cupy(cupy, STEPS, arrays)]
    for _ in range(2):
        outs = run(*arrays)
        for out, j in zip(outs, [3, 8, 10]):
            assert out.dtype == dtype and out.shape == shape
            got = out.get()
            assert np.array_equal(got, want[j], equal_nan=True)
            assert np.array_equal(np.signbit(got) | np.isnan(got),
                                  np.signbit(want[j]) | np.isnan(want[j]))  # fmt: skip


def test_the_kernel_source_is_the_maths_with_no_contraction():
    in_params, out_params, operation, constants = fuse_cuda.source(STEPS, 5, [3, 10], "float32")
    assert in_params == ", ".join([f"float32 a{i}" for i in range(5)] + [
        f"float32 c{k}" for k in range(4)])  # fmt: skip
    assert out_params == "float32 o0, float32 o1"
    assert constants == [1.1, 3.0, -0.0, 0.0] and str(constants[2]) == "-0.0"
    assert "float t8 = (t7 + a4);" in operation and "o1 = t10;" in operation
    assert fuse_cuda.OPTIONS == ("--fmad=false",)
    assert fuse_cuda.OPS is fuse_cpu.OPS  # the same maths as the CPU's loops


def test_what_a_kernel_does_not_take():
    assert not fuse_cuda.accepts((3,), np.float16, [(3,)])
    assert not fuse_cuda.accepts((3,), np.float32, [(4,)])
    with pytest.raises(ValueError, match="float32 or float64, got float16"):
        fuse_cuda.plan_elementwise(STEPS[:1], [(3,), (3,)], [0], (3,), np.float16)
