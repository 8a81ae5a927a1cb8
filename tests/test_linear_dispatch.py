"""F.linear: the fused-kernel path and the plain array path agree, and dispatch is controllable."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor.ops import fused

ROOT = Path(__file__).resolve().parents[1]
ACTS = list(fused.ACTIVATIONS)


def _run(x0, w0, b0, act, dtype):
    x = gt.tensor(x0, dtype=dtype, requires_grad=True)
    w = gt.tensor(w0, dtype=dtype, requires_grad=True)
    b = None if b0 is None else gt.tensor(b0, dtype=dtype, requires_grad=True)
    y = F.linear(x, w, b, activation=act)
    g = gt.tensor(np.random.default_rng(1).standard_normal(y.shape), dtype=dtype)
    y.backward(g)
    return [y.detach().numpy()] + [t.grad.numpy() for t in (x, w, b) if t is not None]


@pytest.mark.skipif(not gt.kernels_enabled(), reason="gradtensor's kernels are not importable")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 37, 19), (130, 64, 257)])
def test_kernels_on_and_off_agree(shape, act, bias):
    b_, i_, o_ = shape
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((b_, i_)), rng.standard_normal((o_, i_)) / np.sqrt(i_)
    b0 = rng.standard_normal(o_) if bias else None
    on = _run(x0, w0, b0, act, gt.float32)
    with gt.use_kernels(False):
        assert not gt.kernels_enabled()
        off = _run(x0, w0, b0, act, gt.float32)
    assert gt.kernels_enabled()
    for a, c in zip(on, off):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(c).max()))


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_both_paths(act, kernels):
    gt.manual_seed(0)
    x = gt.randn(4, 3, dtype=gt.float64, requires_grad=True)
    w = gt.randn(5, 3, dtype=gt.float64, requires_grad=True)
    b = gt.randn(5, dtype=gt.float64, requires_grad=True)
    with gt.use_kernels(kernels):
        assert gt.testing.gradcheck(lambda *t: F.linear(*t, activation=act), [x, w, b])
        assert gt.testing.gradgradcheck(lambda *t: F.linear(*t, activation=act), [x, w, b])


def test_create_graph_through_a_fused_layer():
    x = gt.tensor([[0.3, -0.2]], dtype=gt.float64, requires_grad=True)
    w = gt.tensor([[0.5, 1.5]], dtype=gt.float64, requires_grad=True)
    y = F.linear(x, w, activation="tanh").sum()
    (gx,) = gt.grad(y, x, create_graph=True)
    (gxx,) = gt.grad(gx.sum(), x)
    z = 0.3 * 0.5 - 0.2 * 1.5
    t = np.tanh(z)
    # d/dx_j [w_j (1 - t^2)] summed over j = (sum_j w_j) * (-2 t (1 - t^2)) * w_k
    np.testing.assert_allclose(
        gxx.numpy(), [[2.0 * -2 * t * (1 - t**2) * 0.5, 2.0 * -2 * t * (1 - t**2) * 1.5]]
    )


def test_inputs_that_do_not_qualify_use_the_array_path():
    x = gt.ones(2, 3, dtype=gt.float32)
    w = gt.ones(4, 3, dtype=gt.float64)  # mixed dtypes: not for the kernels
    assert F.linear(x, w).dtype == gt.float64
    assert F.linear(gt.ones(2, 5, 3), gt.ones(4, 3)).shape == (2, 5, 4)  # N-D input


def test_use_kernels_as_function_and_context():
    gt.use_kernels(False)
    try:
        assert not gt.kernels_enabled()
    finally:
        gt.use_kernels(True)
    with gt.use_kernels(False):
        assert not gt.kernels_enabled()


def test_environment_variable_turns_kernels_off():
    code = "import gradtensor as gt; print(gt.kernels_enabled())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"GRADTENSOR_KERNELS": "0", "PATH": ""},
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_an_unrelated_top_level_kernels_package_changes_nothing(tmp_path):
    # Another distribution's `kernels` first on the path: gradtensor's are gradtensor.kernels.
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("FOREIGN = True\n")
    code = (
        "import kernels, gradtensor as gt, gradtensor.nn.functional as F; "
        "from gradtensor.ops import registry; "
        "y = F.linear(gt.ones(2, 3), gt.ones(4, 3), activation='relu'); "
        "assert kernels.FOREIGN and registry.active_kernels() is gt.kernels; "
        "assert y.grad_fn is None and y.tolist() == [[3.0] * 4] * 2; print('ok')"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    run = [sys.executable, "-c", code]
    done = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.stdout.strip() == "ok", done.stdout + done.stderr


@pytest.mark.parametrize("kernels", [True, False])
def test_first_layer_input_gets_no_gradient_and_weights_still_do(kernels):
    x = gt.randn(6, 4)  # data: requires no gradient
    w = gt.randn(3, 4, requires_grad=True)
    with gt.use_kernels(kernels):
        F.linear(x, w, activation="relu").sum().backward()
    assert x.grad is None
    expected = ((x.numpy() @ w.detach().numpy().T) > 0).astype(np.float32).T @ x.numpy()
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-5)


def _path(y):
    impl = y.grad_fn.impl  # which implementation ran is recorded on the node
    return "arrays" if impl is None else impl.name


@pytest.mark.skipif(not gt.kernels_enabled(), reason="gradtensor's kernels are not importable")
def test_dispatch_takes_the_kernels_for_every_float_input_it_can():
    w = gt.randn(4, 8, requires_grad=True)
    for act in fused.ACTIVATIONS:
        assert _path(F.linear(gt.randn(3, 8), w, activation=act)) == "kernel"
    assert _path(F.linear(gt.randn(2, 5, 8), w, activation="relu")) == "kernel"  # 3-D batches too
    assert _path(F.linear(gt.randn(3, 8, dtype=gt.float64), w.double(), activation="relu")) == (
        "kernel"
    )
    with gt.use_kernels(False):
        assert _path(F.linear(gt.randn(3, 8), w, activation="gelu")) == "arrays"
    # Mixed dtypes and integer inputs are not the kernels' to take.
    assert _path(F.linear(gt.randn(3, 8, dtype=gt.float64), w, activation="relu")) == "arrays"


@pytest.mark.parametrize("kernels", [True, False])
def test_one_sample_mlp_with_a_mean_loss(kernels):
    # The mean's gradient is a read-only (1, 1) broadcast view: the kernels must take it.
    with gt.use_kernels(kernels):
        model = gt.nn.MLP([3, 8, 1])
        model(gt.randn(1, 3)).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_empty_axes_in_a_linear_layer(shape, act, kernels):
    n, k, m = shape
    x = gt.randn(n, k, dtype=gt.float64, requires_grad=True)
    w = gt.randn(m, k, dtype=gt.float64, requires_grad=True)
    b = gt.randn(m, dtype=gt.float64, requires_grad=True)
    with gt.use_kernels(kernels):
        y = F.linear(x, w, b, activation=act)
        y.sum().backward()
    z = x.detach().numpy() @ w.detach().numpy().T + b.detach().numpy()
    want = fused.activation_function(act)(gt.tensor(z, dtype=gt.float64)).numpy()
    np.testing.assert_allclose(y.detach().numpy(), want)
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and b.grad.shape == b.shape
    if n == 0:  # no rows: nothing reaches the weights
        assert not w.grad.numpy().any() and not b.grad.numpy().any()


def test_read_only_inputs_reach_the_kernels():
    xa = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    wa = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    xa.flags.writeable = wa.flags.writeable = False
    w = gt.from_numpy(wa).requires_grad_()
    F.linear(gt.from_numpy(xa), w, activation="relu").mean().backward()
    with gt.use_kernels(False):
        w2 = gt.tensor(wa, requires_grad=True)
        F.linear(gt.tensor(xa), w2, activation="relu").mean().backward()
    np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), rtol=1e-6)


class _FakeCuda:
    """Looks like a CuPy array to the kernels' accepts check (its class has the interface)."""

    __cuda_array_interface__ = None

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def test_the_kernels_say_what_they_accept_by_device_and_dtype():
    accepts = gt.kernels.linear_act_accepts
    host = {d: np.zeros((2, 3), d) for d in ("float16", "float32", "float64", "int64")}
    for dtype, ok in [("float32", True), ("float64", True), ("float16", False), ("int64", False)]:
        assert accepts(host[dtype], host[dtype], None, "relu") is ok, dtype
    assert not accepts(host["float32"], host["float64"], None, "relu")  # mixed dtypes
    assert not accepts(host["float32"], host["float32"], host["float64"][0], "relu")
    assert not accepts(host["float32"], host["float32"], None, "elu")  # not an activation of theirs
    assert accepts(host["float32"].T, host["float32"][:, :2], None, "tanh")  # any layout
    for dtype, ok in [("float16", True), ("float32", True), ("float64", True), ("int32", False)]:
        assert accepts(_FakeCuda(dtype), _FakeCuda(dtype), None, "gelu") is ok, dtype
    assert not accepts([[1.0]], [[1.0]], None, "relu")


def test_an_ops_registered_implementation_runs_where_it_accepts_and_is_recorded():
    calls = []

    @gt.ops.primitive("double_for_dispatch_test", save="", samples=[])
    def double(xp, x):
        return x * 2

    double.defvjp(lambda g, y, x: g * 2)

    @double.implementation(
        "fast", accepts=lambda x: x.dtype == np.float64, backward=lambda g, y, x, *, needs: (g * 2,)
    )
    def _fast(xp, x):
        calls.append("fast")
        return x + x

    try:
        x64 = gt.ones(3, dtype=gt.float64, requires_grad=True)
        y = double(x64)
        assert calls == ["fast"] and y.grad_fn.impl.name == "fast"
        y.sum().backward()
        np.testing.assert_array_equal(x64.grad.numpy(), [2.0, 2.0, 2.0])
        assert double(gt.ones(3, requires_grad=True)).grad_fn.impl is None  # float32: refused
        with gt.use_kernels(False):
            assert double(x64).grad_fn.impl is None  # kernels off: the op's own forward
        assert calls == ["fast"]
        # Its rule runs on arrays only: without a declared composite, no gradient of gradient.
        y = double(x64)
        with pytest.raises(RuntimeError, match="must declare its composite"):
            gt.grad(y.sum(), x64, create_graph=True)
    finally:
        del gt.ops.REGISTRY["double_for_dispatch_test"]
