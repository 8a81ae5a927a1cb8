"""CPU linear + activation kernels against a float64 NumPy reference."""

import math
import subprocess
import sys

import numpy as np
import pytest
from linear_act_reference import RTOL, SHAPES, activation, assert_close, forward_backward, inputs

from gradtensor import kernels
from gradtensor.kernels import cpu as kcpu
from gradtensor.kernels.activations import TABLE

DTYPES = [np.float32, np.float64]


def run_both(module, x, w, b, gy, name):
    y, aux = module.linear_act_forward(x, w, b, name)
    gx, gw, gb = module.linear_act_backward(gy, x, w, aux, name, bias=b is not None)
    return y, aux, gx, gw, gb


def check_against_reference(x, w, b, gy, name, got):
    y, aux, gx, gw, gb = got
    dtype = np.dtype(x.dtype)
    ry, rgx, rgw, rgb = forward_backward(x, w, b, gy, name)
    for label, a in [("y", y), ("gx", gx), ("gw", gw)]:
        assert a.dtype == dtype, f"{label} has dtype {a.dtype}, expected {dtype}"
    assert_close("y", y, ry, RTOL[dtype])
    assert_close("gx", gx, rgx, RTOL[dtype])
    assert_close("gw", gw, rgw, RTOL[dtype])
    if b is None:
        assert gb is None
    else:
        assert gb.dtype == dtype
        assert_close("gb", gb, rgb, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(shape, name, bias, dtype):
    x, w, b, gy = inputs(shape, dtype, bias=bias)
    check_against_reference(x, w, b, gy, name, run_both(kcpu, x, w, b, gy, name))


@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_aux_is_the_cheapest_saved_array(name):
    x, w, b, _ = inputs((7, 5, 3), np.float32)
    y, aux = kcpu.linear_act_forward(x, w, b, name)
    kind = kernels.AUX_KIND[name]
    if kind is None:
        assert aux is None
    elif kind == "output":
        assert aux is y
    else:
        z = x.astype(np.float64) @ w.T.astype(np.float64) + b
        np.testing.assert_allclose(aux, z, rtol=1e-5, atol=1e-5)


def test_top_level_dispatches_numpy_to_cpu():
    x, w, b, gy = inputs((6, 4, 3), np.float64)
    got = run_both(kernels, x, w, b, gy, "gelu")
    want = run_both(kcpu, x, w, b, gy, "gelu")
    for a, c in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("name", ["relu", "gelu", "tanh"])
def test_non_contiguous_inputs(name):
    x, w, b, gy = inputs((33, 17, 65), np.float32)
    # Transposed views (F-order), a strided column slice, and a strided bias.
    x_t = np.ascontiguousarray(x.T).T
    w_t = np.ascontiguousarray(w.T).T
    gy_wide = np.zeros((33, 130), np.float32)
    gy_wide[:, ::2] = gy
    gy_s = gy_wide[:, ::2]
    b_wide = np.zeros(130, np.float32)
    b_wide[::2] = b
    b_s = b_wide[::2]
    assert not x_t.flags.c_contiguous and not gy_s.flags.c_contiguous
    y, aux = kcpu.linear_act_forward(x_t, w_t, b_s, name)
    aux_s = None
    if aux is not None:
        aux_wide = np.zeros((33, 130), np.float32)
        aux_wide[:, 1::2] = aux
        aux_s = aux_wide[:, 1::2]
    gx, gw, gb = kcpu.linear_act_backward(gy_s, x_t, w_t, aux_s, name)
    check_against_reference(x, w, b, gy, name, (y, aux, gx, gw, gb))
    # A slice that BLAS cannot take as it is.
    x_wide = np.zeros((33, 34), np.float32)
    x_wide[:, ::2] = x
    y2, _ = kcpu.linear_act_forward(x_wide[:, ::2], w, b, name)
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-6)


def test_a_layer_with_no_bias_or_activation_takes_strided_and_transposed_operands():
    x, w, _, _ = inputs((33, 17, 65), np.float32)
    x_wide = np.zeros((33, 34), np.float32)
    x_wide[:, ::2] = x
    w_t = np.ascontiguousarray(w.T).T
    for xs, ws in [(x_wide[:, ::2], w), (x, w_t), (x_wide[:, ::2], w_t)]:  # the matmul alone
        z, aux = kcpu.linear_act_forward(xs, ws, None, "identity")
        assert aux is None and z.flags.c_contiguous
        np.testing.assert_allclose(z, x.astype(np.float64) @ w.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["identity", "relu", "gelu", "sigmoid"])
def test_parallel_passes_match_serial(monkeypatch, name):
    x, w, b, gy = inputs((130, 64, 257), np.float32)
    serial = run_both(kcpu, x, w, b, gy, name)
    monkeypatch.setattr(kcpu, "PARALLEL_MIN_ELEMENTS", 0)
    assert kcpu._chunks(130 * 257) > 1 or kcpu.numba.get_num_threads() == 1
    parallel = run_both(kcpu, x, w, b, gy, name)
    for a, c in zip(serial, parallel, strict=True):
        if a is None:
            assert c is None
        else:
            np.testing.assert_allclose(c, a, rtol=1e-6, atol=1e-6)


def test_auto_parallel_passes_only_beside_gnu_openmp_gemms(monkeypatch):
    from gradtensor.kernels import blas

    monkeypatch.setattr(kcpu, "PARALLEL_MIN_ELEMENTS", "auto")
    prev = blas.select("numpy")
    try:
        assert kcpu._parallel_min() is None  # OpenBLAS's spinning pthreads: always serial
        assert kcpu._chunks(1 << 24) == 1
    finally:
        blas.select(prev)
    monkeypatch.setattr(blas, "OPENMP", "gnu")
    monkeypatch.setattr(kcpu, "_auto_ok", True)
    assert kcpu._parallel_min() == 1 << 14
    assert kcpu._chunks((1 << 14) - 1) == 1
    assert kcpu._chunks(1 << 14) == kcpu.numba.get_num_threads()
    monkeypatch.setattr(kcpu, "_auto_ok", False)  # Numba chose another threading layer
    assert kcpu._parallel_min() is None
    monkeypatch.setattr(kcpu, "PARALLEL_MIN_ELEMENTS", None)
    monkeypatch.setattr(kcpu, "_auto_ok", True)
    assert kcpu._parallel_min() is None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "gelu_tanh"])
def test_activation_pointwise_accuracy(name, dtype):
    # One input and one output feature with weight 1: y is act(z) itself, element by element,
    # over a range wide enough to reach exp's clamps and the saturated tails.
    z = np.concatenate([np.linspace(-120, 120, 20001), np.linspace(-3, 3, 20001)])
    z = z.astype(dtype)[:, None]
    one = np.ones((1, 1), dtype)
    y, aux = kcpu.linear_act_forward(z, one, None, name)
    gx, _, _ = kcpu.linear_act_backward(np.ones_like(z), z, one, aux, name, bias=False)
    want_y, want_d = activation(name, z.astype(np.float64))
    # Relative accuracy where the float32 value is normal; absolute near zero.
    rtol, atol = (2e-5, 1e-30) if dtype == np.float32 else (1e-12, 1e-300)
    np.testing.assert_allclose(y, want_y, rtol=rtol, atol=atol)
    # Derivatives read from the output (sigmoid, tanh) are only as good as eps absolutely.
    d_atol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(gx, want_d, rtol=10 * rtol, atol=d_atol)


@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_nan_propagates(name):
    x, w, b, _ = inputs((4, 3, 5), np.float32)
    x[1, 0] = np.nan
    y, _ = kcpu.linear_act_forward(x, w, b, name)
    assert np.isnan(y[1]).all()
    assert np.isfinite(np.delete(y, 1, axis=0)).all()


def test_empty_batch():
    x, w, b, _ = inputs((0, 3, 4), np.float32)
    y, aux = kcpu.linear_act_forward(x, w, b, "gelu")
    gx, gw, gb = kcpu.linear_act_backward(np.zeros((0, 4), np.float32), x, w, aux, "gelu")
    assert y.shape == (0, 4) and gx.shape == (0, 3)
    np.testing.assert_array_equal(gw, 0)
    np.testing.assert_array_equal(gb, 0)


# --- bad input ---------------------------------------------------------------------------------

F32 = np.float32


def _fwd_args(**over):
    args = {
        "x": np.ones((2, 3), F32),
        "weight": np.ones((4, 3), F32),
        "bias": np.ones(4, F32),
        "activation": "relu",
    }
    args.update(over)
    return args


def _bwd_args(**over):
    args = {
        "gy": np.ones((2, 4), F32),
        "x": np.ones((2, 3), F32),
        "weight": np.ones((4, 3), F32),
        "aux": np.ones((2, 4), F32),
        "activation": "relu",
        "bias": True,
    }
    args.update(over)
    return args


FORWARD_ERRORS = [
    (dict(x=np.ones(3, F32)), r"linear_act_forward: x must be 2-D .*\(3,\)"),
    (dict(weight=np.ones((4, 3, 1), F32)), r"weight must be 2-D .*\(4, 3, 1\)"),
    (dict(weight=np.ones((4, 5), F32)), r"x \(2, 3\) and weight \(4, 5\) do not align"),
    (dict(bias=np.ones(5, F32)), r"bias must have shape \(4,\) .* got \(5,\)"),
    (dict(bias=np.ones((1, 4), F32)), r"bias must have shape \(4,\)"),
    (dict(weight=np.ones((4, 3))), r"dtypes must match, got x float32, weight float64"),
    (dict(bias=np.ones(4)), r"dtypes must match, got .*bias float64"),
    (
        dict(x=np.ones((2, 3), np.int32), weight=np.ones((4, 3), np.int32), bias=None),
        r"unsupported dtype int32 for x",
    ),
    (
        dict(x=np.ones((2, 3), np.float16), weight=np.ones((4, 3), np.float16), bias=None),
        r"unsupported dtype float16 for x; use float32, float64",
    ),
    (dict(activation="swish"), r"unknown activation 'swish'; expected one of identity, relu"),
    (dict(activation=None), r"unknown activation None"),
    (dict(weight=[[1.0, 2.0, 3.0]]), r"weight must be a NumPy array, got builtins.list"),
]


@pytest.mark.parametrize(("over", "match"), FORWARD_ERRORS)
@pytest.mark.parametrize("module", [kernels, kcpu], ids=["dispatch", "cpu"])
def test_forward_rejects(module, over, match):
    with pytest.raises(ValueError, match=match):
        module.linear_act_forward(**_fwd_args(**over))


BACKWARD_ERRORS = [
    (dict(gy=np.ones((2, 5), F32)), r"linear_act_backward: gy must have shape .*\(2, 5\)"),
    (dict(gy=np.ones((3, 4), F32)), r"gy must have shape"),
    (dict(gy=np.ones(4, F32)), r"gy must be 2-D"),
    (dict(weight=np.ones((4, 2), F32)), r"x \(2, 3\) and weight \(4, 2\) do not align"),
    (dict(aux=None), r"activation 'relu' needs the aux"),
    (dict(aux=np.ones((2, 5), F32)), r"aux for 'relu' must have shape \(2, 4\), got \(2, 5\)"),
    (dict(gy=np.ones((2, 4))), r"dtypes must match, got gy float64, x float32"),
    (dict(aux=np.ones((2, 4))), r"dtypes must match, .*aux float64"),
    (dict(activation="elu"), r"unknown activation 'elu'"),
    (dict(bias=None), r"bias must be True or False, got None"),
    (dict(bias=np.ones(4, F32)), r"bias must be True or False"),
]


@pytest.mark.parametrize(("over", "match"), BACKWARD_ERRORS)
@pytest.mark.parametrize("module", [kernels, kcpu], ids=["dispatch", "cpu"])
def test_backward_rejects(module, over, match):
    with pytest.raises(ValueError, match=match):
        module.linear_act_backward(**_bwd_args(**over))


def test_identity_backward_needs_no_aux():
    gx, gw, gb = kcpu.linear_act_backward(**_bwd_args(aux=None, activation="identity"))
    np.testing.assert_array_equal(gb, [2, 2, 2, 2])


def test_dispatch_rejects_unknown_array_type():
    with pytest.raises(ValueError, match=r"linear_act_forward: x must be a NumPy array or a CUDA"):
        kernels.linear_act_forward([[1.0]], np.ones((1, 1), F32), None, "relu")
    with pytest.raises(ValueError, match=r"linear_act_backward: x must be a NumPy array"):
        kernels.linear_act_backward(np.ones((1, 1), F32), 3.0, np.ones((1, 1), F32), None, "relu")


def test_package_names():
    assert kernels.ACTIVATIONS == tuple(TABLE)
    assert {"identity", "relu", "gelu", "gelu_tanh", "sigmoid", "tanh", "silu"} <= set(TABLE)
    assert kernels.AUX_KIND == {name: entry.saves for name, entry in TABLE.items()}


def test_import_is_light():
    # A fresh interpreter: importing the kernels must not pull in Numba (compilation), CuPy or CUDA.
    code = (
        "import sys, gradtensor.kernels; "
        "bad = [m for m in ('numba', 'cupy', 'gradtensor.kernels.cpu', 'gradtensor.kernels.cuda') "
        "if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(params=kernels.blas.available())
def each_blas(request):
    prev = kernels.blas.select(request.param)
    yield
    kernels.blas.select(prev)


@pytest.mark.parametrize("parallel", [None, 0, "auto"])
def test_warmup_compiles_every_signature(monkeypatch, each_blas, parallel):
    # Whole arrays and row blocks, serial or parallel as configured, both dtypes, every
    # activation, a transposed weight: after warmup nothing may compile inside a timed region.
    monkeypatch.setattr(kcpu, "PARALLEL_MIN_ELEMENTS", parallel)
    kcpu.warmup()
    dispatchers = [d for k in kcpu._PASSES.values() for d in vars(k).values()]
    assert len(dispatchers) == 8 * len(kernels.ACTIVATIONS)
    compiled = {d: len(d.signatures) for d in dispatchers}
    for shape in [(6, 4, 3), (300, 4, 3)]:
        if shape[0] > 6:
            monkeypatch.setattr(kcpu, "BLOCK_BYTES", 100 * 7 * 8)
            monkeypatch.setattr(kcpu, "_MIN_BLOCK_ROWS", 1)
            monkeypatch.setattr(kcpu, "_AUTO_MIN_ELEMENTS", 1)
        for dtype in DTYPES:
            x, w, b, gy = inputs(shape, dtype)
            for name in kernels.ACTIVATIONS:
                run_both(kcpu, x, w, b, gy, name)
                run_both(kcpu, x, np.ascontiguousarray(w.T).T, None, gy, name)
    assert {d: len(d.signatures) for d in dispatchers} == compiled
    assert math.isfinite(float(kcpu.linear_act_forward(*_fwd_args().values())[0].sum()))


def test_backward_without_input_grad_skips_gx():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    y, aux = kernels.cpu.linear_act_forward(x, w, None, "tanh")
    gy = rng.standard_normal(y.shape).astype(np.float32)
    full = kernels.cpu.linear_act_backward(gy, x, w, aux, "tanh", bias=False)
    gx, gw, gb = kernels.cpu.linear_act_backward(
        gy, x, w, aux, "tanh", bias=False, input_grad=False
    )
    assert gx is None and gb is None
    np.testing.assert_array_equal(gw, full[1])


_MKL = next((name for name in kernels.blas.available() if name != "numpy"), None)


@pytest.fixture
def on_mkl():
    prev = kernels.blas.select(_MKL)
    yield
    kernels.blas.select(prev)


def needs_cblas(test):
    """Run `test` with MKL behind the kernels, whatever the CPU: row blocks call it from compiled
    code. Skipped without the `mkl` extra (on NumPy's BLAS every layer runs on whole arrays)."""
    reason = "row blocks call MKL from compiled code, which needs the `mkl` extra"
    return pytest.mark.skipif(_MKL is None, reason=reason)(pytest.mark.usefixtures("on_mkl")(test))


def _small_blocks(monkeypatch, rows, n_in, n_out, itemsize, parallel):
    """Blocks of `rows` rows, so that tiny layers take the row-block path (last block ragged)."""
    monkeypatch.setattr(kcpu, "BLOCK_BYTES", rows * (n_in + n_out) * itemsize)
    monkeypatch.setattr(kcpu, "_MIN_BLOCK_ROWS", 1)
    monkeypatch.setattr(kcpu, "PARALLEL_MIN_ELEMENTS", 0 if parallel else None)


@needs_cblas
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_row_blocks_match_reference(monkeypatch, name, dtype, parallel):
    x, w, b, gy = inputs((130, 37, 19), dtype)
    _small_blocks(monkeypatch, 7, 37, 19, np.dtype(dtype).itemsize, parallel)
    assert kcpu._blocking(x, 19)[1] == 7
    check_against_reference(x, w, b, gy, name, run_both(kcpu, x, w, b, gy, name))
    check_against_reference(x, w, None, gy, name, run_both(kcpu, x, w, None, gy, name))


@needs_cblas
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("name", ["identity", "relu", "gelu"])
def test_row_blocks_transposed_weight_and_no_input_grad(monkeypatch, name, parallel):
    x, w, b, gy = inputs((64, 5, 9), np.float32)
    _small_blocks(monkeypatch, 4, 5, 9, 4, parallel)
    w_t = np.ascontiguousarray(w.T).T  # an F-ordered weight: BLAS reads it the other way round
    y, aux = kcpu.linear_act_forward(x, w_t, b, name)
    gx, gw, gb = kcpu.linear_act_backward(gy, x, w_t, aux, name)
    check_against_reference(x, w, b, gy, name, (y, aux, gx, gw, gb))
    no_gx = kcpu.linear_act_backward(gy, x, w_t, aux, name, input_grad=False)
    assert no_gx[0] is None
    np.testing.assert_array_equal(no_gx[1], gw)
    np.testing.assert_array_equal(no_gx[2], gb)


@needs_cblas
def test_row_block_spans_give_mkl_its_threads_back(monkeypatch):
    x, w, b, gy = inputs((64, 5, 9), np.float32)
    _small_blocks(monkeypatch, 4, 5, 9, 4, parallel=True)
    y, aux = kcpu.linear_act_forward(x, w, b, "relu")
    kcpu.linear_act_backward(gy, x, w, aux, "relu")
    # The spans hold MKL to one thread on each worker, the calling thread among them; afterwards
    # the calling thread must be back on MKL's global count (a local setting of 0).
    assert kernels.blas.set_threads_local(0) == 0


@needs_cblas
def test_which_layers_run_in_row_blocks():
    def block(batch, n_in, n_out, dtype=np.float32):
        found = kcpu._blocking(np.empty((batch, n_in), dtype), n_out)
        return None if found is None else found[1]

    assert block(65536, 64, 64) == kcpu.BLOCK_BYTES // (128 * 4)  # skinny and tall: blocks
    assert block(65536, 64, 64, np.float64) == kcpu.BLOCK_BYTES // (128 * 8)
    assert block(8192, 256, 256) is not None
    assert block(256, 1024, 1024) is None  # blocks would be under 128 rows: gW costs more
    assert block(1500, 64, 64) is None  # under two blocks: nothing to gain
    assert block(65536, 64, 0) is None
    assert kcpu._blocking(np.empty((64, 65536), np.float32).T, 64) is None  # F-ordered x


def test_numpy_blas_runs_whole_arrays():
    prev = kernels.blas.select("numpy", row_blocks=False)
    try:
        assert kcpu._blocking(np.empty((65536, 64), np.float32), 64) is None
    finally:
        kernels.blas.select(prev)


@pytest.mark.skipif(_MKL is None, reason="row blocks on MKL need the `mkl` extra")
def test_numpy_blas_for_products_and_mkl_in_row_blocks():
    # The choice on an AMD CPU with MKL installed: whole products on NumPy's BLAS, where MKL was
    # slower there, and the tall layers' row blocks on MKL, where it was faster.
    blas = kernels.blas
    prev = blas.select("numpy", row_blocks=True)
    try:
        assert blas.NAME == "numpy" and blas.ROW_BLOCKS == _MKL and not blas._GEMM
        assert kcpu._blocking(np.empty((65536, 64), np.float32), 64) is not None
        x, w, b, gy = inputs((130, 37, 19), np.float32)
        check_against_reference(x, w, b, gy, "relu", run_both(kcpu, x, w, b, gy, "relu"))
    finally:
        blas.select(prev)


@needs_cblas
def test_row_block_spans_with_more_threads_than_rows_to_share(monkeypatch):
    x, w, b, gy = inputs((9, 5, 3), np.float64)
    _small_blocks(monkeypatch, 1, 5, 3, 8, parallel=True)
    monkeypatch.setattr(kcpu, "_chunks", lambda size: 4)  # spans of 3, 3, 3 and 0 rows
    y, aux = kcpu.linear_act_forward(x, w, b, "tanh")
    # NumPy hands a freed small buffer to the next allocation of its size: the four spans' gW
    # would start as this garbage, and the empty span must not leave it in the sum.
    garbage = np.full((4, 3, 5), np.nan)
    del garbage
    gx, gw, gb = kcpu.linear_act_backward(gy, x, w, aux, "tanh")
    check_against_reference(x, w, b, gy, "tanh", (y, aux, gx, gw, gb))


def test_row_block_spans_are_no_more_than_the_blocks(monkeypatch):
    # As with MKL, whose threads can be held to one per span (the count needs no BLAS call).
    monkeypatch.setattr(kernels.blas, "set_threads_local", lambda n: 0)
    monkeypatch.setattr(kcpu, "_chunks", lambda size: 64)  # a 64-thread machine
    assert kcpu._span_count(np.empty((4096, 64), np.float32), 1024) == 4
    assert kcpu._span_count(np.empty((4096 * 64, 64), np.float32), 1024) == 64
    monkeypatch.setattr(kcpu, "_chunks", lambda size: 1)
    assert kcpu._span_count(np.empty((4096, 64), np.float32), 1024) == 1


@needs_cblas
def test_row_blocks_stay_serial_without_mkls_per_thread_setting(monkeypatch):
    monkeypatch.setattr(kernels.blas, "set_threads_local", None)
    monkeypatch.setattr(kcpu, "_chunks", lambda size: 8)
    assert kcpu._span_count(np.empty((4096, 64), np.float32), 1024) == 1
    x, w, b, gy = inputs((64, 5, 9), np.float32)
    _small_blocks(monkeypatch, 4, 5, 9, 4, parallel=True)
    check_against_reference(x, w, b, gy, "relu", run_both(kcpu, x, w, b, gy, "relu"))


def _plan_runs_what_the_call_runs(name):
    """plan_linear_act_*: the checks and choices made once, then the same work on new operands
    of the same shapes: bit-identical to the plain calls."""
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(F32) for s in [(40, 6), (5, 6), (5,)])
    forward = kernels.plan_linear_act_forward(x, w, b, name)
    backward = kernels.plan_linear_act_backward(
        x[:, :5], x, w, None if name == "identity" else x[:, :5], name
    )
    for _ in range(3):
        x, gy = rng.standard_normal((40, 6)).astype(F32), rng.standard_normal((40, 5)).astype(F32)
        y, aux = kernels.linear_act_forward(x, w, b, name)
        y2, aux2 = forward(x, w, b)
        assert np.array_equal(y, y2) and (aux is None) == (aux2 is None)
        want = kernels.linear_act_backward(gy, x, w, aux, name)
        for a, c in zip(want, backward(gy, x, w, aux2)):
            assert np.array_equal(a, c)


@pytest.mark.parametrize("name", ["relu", "gelu", "identity"])
def test_a_plan_runs_exactly_what_the_call_runs(name):
    _plan_runs_what_the_call_runs(name)


@needs_cblas
@pytest.mark.parametrize("name", ["relu", "identity"])
def test_a_plan_runs_exactly_what_the_call_runs_in_row_blocks(monkeypatch, name):
    _small_blocks(monkeypatch, 7, 6, 5, 4, False)
    assert kcpu._blocking(np.ones((40, 6), F32), 5)[1] == 7
    _plan_runs_what_the_call_runs(name)


@pytest.mark.parametrize(("over", "match"), FORWARD_ERRORS[:4])
def test_a_plan_checks_its_operands_when_made(over, match):
    with pytest.raises(ValueError, match=match):
        kernels.plan_linear_act_forward(**_fwd_args(**over))


def _kept_plans_reuse_only_what_nothing_else_holds(name):
    """keep=True: a run writes into the arrays of the run before once nothing else holds them,
    and never into an array (or a view of one) the caller kept; results as the plain calls."""
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(F32) for s in [(40, 6), (5, 6), (5,)])
    gy = rng.standard_normal((40, 5)).astype(F32)
    forward = kernels.plan_linear_act_forward(x, w, b, name, keep=True)
    aux = None if name == "identity" else gy
    backward = kernels.plan_linear_act_backward(gy, x, w, aux, name, keep=True)
    y, aux = kernels.linear_act_forward(x, w, b, name)
    want = [y, aux, *kernels.linear_act_backward(gy, x, w, aux, name)]

    def run() -> list:
        y, aux = forward(x, w, b)
        got = [y, aux, *backward(gy, x, w, aux)]
        for a, c in zip(want, got):
            assert (a is None) == (c is None) and (a is None or np.array_equal(a, c))
        return got

    def places(arrays: list) -> list:
        return [a.__array_interface__["data"][0] for a in arrays if a is not None]

    first = places(run())
    assert places(run()) == first  # released: the same memory again
    kept = run()
    copies = [None if a is None else a.copy() for a in kept]
    again = run()
    assert not any(
        np.shares_memory(a, c) for a in kept if a is not None for c in again if c is not None
    )
    for a, c in zip(kept, copies):
        assert a is None or np.array_equal(a, c)  # what the caller kept is unchanged
    del kept, again
    view = run()[3][1:]  # a view of gw alone holds it
    assert not np.shares_memory(view, run()[3])


@pytest.mark.parametrize("name", ["relu", "gelu", "identity"])
def test_a_kept_plan_reuses_only_arrays_nothing_else_holds(name):
    _kept_plans_reuse_only_what_nothing_else_holds(name)


@needs_cblas
@pytest.mark.parametrize("name", ["relu", "identity"])
def test_a_kept_plan_reuses_only_arrays_nothing_else_holds_in_row_blocks(monkeypatch, name):
    _small_blocks(monkeypatch, 7, 6, 5, 4, False)
    _kept_plans_reuse_only_what_nothing_else_holds(name)


def test_the_pool_hands_out_an_array_again_only_once_nothing_holds_it(monkeypatch):
    from gradtensor.kernels import _api

    pool = _api._Pool()
    monkeypatch.setattr(_api, "POOL_BYTES", 4 * 256 * 1024)
    place = lambda a: a.__array_interface__["data"][0]  # noqa: E731
    a = pool.empty((256, 256), np.float32)  # 256 KiB: kept
    first = place(a)
    del a
    b = pool.empty((256, 256), np.float32)
    assert place(b) == first  # free again: the same memory
    view = b[1:]
    del b
    c = pool.empty((256, 256), np.float32)
    assert not np.shares_memory(c, view)  # a view holds its base
    assert pool.empty((256,), np.float32).nbytes < _api.POOL_MIN_BYTES and pool.bytes == 2 * 2**18
    # Over POOL_BYTES the shapes used least recently go: their holders keep their arrays.
    c[...] = 7.0
    big = [pool.empty((512, 256), np.float32) for _ in range(2)]
    assert pool.bytes <= _api.POOL_BYTES and list(pool.kept) == [((512, 256), np.float32)]
    assert (c == 7.0).all() and not any(np.shares_memory(c, x) for x in big)


def test_eager_kernel_calls_reuse_the_pools_arrays_and_spare_what_is_held():
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(F32) for s in [(512, 64), (256, 64), (256,)])
    y, aux = kernels.linear_act_forward(x, w, b, "relu")
    want = y.copy()
    place = y.__array_interface__["data"][0]
    y2, _ = kernels.linear_act_forward(x, w, b, "relu")  # y is held: another array
    assert not np.shares_memory(y, y2) and np.array_equal(y, want)
    del y, y2, aux
    y3, _ = kernels.linear_act_forward(x, w, b, "relu")
    assert y3.__array_interface__["data"][0] == place and np.array_equal(y3, want)
