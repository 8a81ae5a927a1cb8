"""The generated elementwise loops (CPU) and kernels (GPU) against NumPy doing the same maths one
op at a time. The GPU's run on a GPU, or on the CuPy stand-in, which runs their subset of CUDA."""

import os

import numpy as np
import pytest

from gradtensor.kernels import fuse_cpu, fuse_cuda

NUMPY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "negative": np.negative,
    "abs": np.abs,
    "sqrt": np.sqrt,
}
SHAPE = (3, 4, 5)
SHAPES = [(3, 4, 5), (5,), (4, 1), (), (1, 4, 5)]
STEPS = [
    ("add", (("in", 0), ("in", 1))),
    ("multiply", (("step", 0), ("const", 1.1))),  # rounded to dtype, as NumPy rounds it
    ("divide", (("const", 3), ("in", 2))),
    ("subtract", (("step", 1), ("step", 2))),
    ("abs", (("step", 3),)),
    ("sqrt", (("step", 4),)),
    ("negative", (("in", 3),)),
    ("multiply", (("step", 5), ("step", 6))),
    ("add", (("step", 7), ("in", 4))),  # a product, then a sum: rounded apart, never fused
    ("multiply", (("step", 8), ("const", -0.0))),
    ("add", (("step", 9), ("const", 0.0))),  # -0.0 and 0.0: two constants
]
STORED = [3, 8, 10]
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])


def _operands(dtype):
    r = np.random.default_rng(0)
    arrays = [r.standard_normal(s).astype(dtype) for s in SHAPES]
    arrays[0].flat[:4] = [np.inf, -0.0, np.nan, 0.0]
    return arrays


def _numpy(steps, arrays, dtype):
    values = []
    with np.errstate(all="ignore"):
        for op, args in steps:
            xs = [arrays[v] if k == "in" else values[v] if k == "step" else v for k, v in args]
            values.append(NUMPY[op](*xs, dtype=dtype) if op != "abs" else np.abs(*xs))
    return values


def _check(outs, want, dtype):
    for out, j in zip(outs, STORED, strict=True):
        assert out.dtype == dtype and out.shape == SHAPE
        assert np.array_equal(out, want[j], equal_nan=True)
        # A NaN's sign bit is the hardware's choice of operand; every other sign agrees.
        signs = [np.signbit(a) | np.isnan(a) for a in (out, want[j])]
        assert np.array_equal(*signs)


@dtypes
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_a_loop_or_gpu_kernel_gives_numpys_results_over_broadcast_operands(device, dtype):
    fuse = fuse_cpu if device == "cpu" else fuse_cuda  # a generated Numba loop, or CUDA kernel
    to, back = (lambda a: a, lambda a: a) if device == "cpu" else _gpu()
    arrays = _operands(dtype)
    assert fuse.accepts(SHAPE, dtype, SHAPES)
    run = fuse.plan_elementwise(STEPS, SHAPES, STORED, SHAPE, dtype)
    for _ in range(2):
        outs = run(*map(to, arrays))
        _check([back(o) for o in outs], _numpy(STEPS, arrays, dtype), dtype)


def _gpu():
    import cupy

    return cupy.asarray, cupy.asnumpy


def test_the_gpu_kernel_source_is_the_maths_with_no_contraction():
    in_params, out_params, operation, constants = fuse_cuda.source(STEPS, 5, [3, 10], "float32")
    names = [f"a{i}" for i in range(5)] + [f"c{k}" for k in range(4)]
    assert in_params == ", ".join(f"float32 {n}" for n in names)
    assert out_params == "float32 o0, float32 o1"
    assert constants == [1.1, 3.0, -0.0, 0.0] and str(constants[2]) == "-0.0"
    assert "float t8 = (t7 + a4);" in operation and "o1 = t10;" in operation
    assert fuse_cuda.OPTIONS == ("--fmad=false",)
    assert fuse_cuda.OPS is fuse_cpu.OPS  # the same maths as the CPU's loops
    with pytest.raises(ValueError, match="float32 or float64, got float16"):
        fuse_cuda.plan_elementwise(STEPS[:1], SHAPES[:2], [0], SHAPE, np.float16)


def test_a_loop_writes_into_its_arrays_of_the_run_before_unless_held():
    steps = [("add", (("in", 0), ("const", 1.0)))]
    run = fuse_cpu.plan_elementwise(steps, [(4,)], [0], (4,), np.float32)
    x = np.arange(4, dtype=np.float32)
    (first,) = run(x)
    kept = first
    (second,) = run(x)
    assert not np.shares_memory(kept, second) and np.array_equal(kept, x + 1)
    del kept, first
    place = second.__array_interface__["data"][0]
    del second
    assert run(x)[0].__array_interface__["data"][0] == place


@pytest.mark.parametrize(
    ("shape", "dtype", "operands"),
    [
        ((4,), np.int64, [(4,)]),  # integer maths is not fused
        ((4,), np.float16, [(4,)]),
        ((), np.float32, [()]),  # a loop needs an axis
        ((1, 2, 3, 4, 5), np.float32, []),  # rank above MAX_RANK
        ((4, 5), np.float32, [(4,)]),  # not broadcastable to the result
        ((5,), np.float32, [(2, 5)]),  # more axes than the result
    ],
)
def test_what_a_loop_does_not_take(shape, dtype, operands):
    assert not fuse_cpu.accepts(shape, dtype, operands)


def test_the_source_goes_only_into_a_folder_nobody_else_can_write(monkeypatch, tmp_path):
    open_folder = tmp_path / "numba" / "gradtensor-fused"
    open_folder.mkdir(parents=True)
    os.chmod(open_folder, 0o777)  # anybody could put a module there
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = fuse_cpu._source_file("gradtensor_fused_test", "x = 1\n")
    assert path == str(tmp_path / "cache" / "gradtensor" / "fused" / "gradtensor_fused_test.py")
    # A file of that name with other contents is never imported.
    with open(path, "w") as f:
        f.write("x = 2\n")
    assert fuse_cpu._source_file("gradtensor_fused_test", "x = 1\n") != path
