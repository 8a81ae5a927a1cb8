"""The generated elementwise loops against NumPy doing the same maths one op at a time."""

import os

import numpy as np
import pytest

from gradtensor.kernels import fuse_cpu

NUMPY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "negative": np.negative,
    "abs": np.abs,
    "sqrt": np.sqrt,
}


def _numpy(steps, arrays, dtype):
    values = []
    for op, args in steps:
        xs = [arrays[v] if k == "in" else values[v] if k == "step" else v for k, v in args]
        values.append(NUMPY[op](*xs, dtype=dtype) if op != "abs" else np.abs(*xs))
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_loop_gives_numpys_results_over_broadcast_operands(dtype):
    r = np.random.default_rng(0)
    shape = (3, 4, 5)
    shapes = [(3, 4, 5), (5,), (4, 1), (), (1, 4, 5)]
    arrays = [r.standard_normal(s).astype(dtype) for s in shapes]
    arrays[0].flat[:4] = [np.inf, -0.0, np.nan, 0.0]
    steps = [
        ("add", (("in", 0), ("in", 1))),
        ("multiply", (("step", 0), ("const", 1.1))),  # rounded to dtype, as NumPy rounds it
        ("divide", (("const", 3), ("in", 2))),
        ("subtract", (("step", 1), ("step", 2))),
        ("abs", (("step", 3),)),
        ("sqrt", (("step", 4),)),
        ("negative", (("in", 3),)),
        ("multiply", (("step", 5), ("step", 6))),
        ("add", (("step", 7), ("in", 4))),
    ]
    assert fuse_cpu.accepts(shape, dtype, shapes)
    run = fuse_cpu.plan_elementwise(steps, shapes, [3, 8], shape, dtype)
    with np.errstate(all="ignore"):
        want = _numpy(steps, arrays, dtype)
    for _ in range(2):
        a, b = run(*arrays)
        assert a.dtype == b.dtype == dtype and a.shape == b.shape == shape
        assert np.array_equal(a, want[3], equal_nan=True)
        assert np.array_equal(b, want[8], equal_nan=True)


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
