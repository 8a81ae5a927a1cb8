"""The same Tensor on CuPy: every registered op's values and gradients on a GPU match the CPU's.

Every test here is marked `cuda` and skips, with the reason, where no CUDA GPU can be used.
"""

import numpy as np
import pytest

import gradtensor as gt
from gradtensor.ops import REGISTRY
from gradtensor.testing import sample_call

pytestmark = pytest.mark.cuda

CASES = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name, op in sorted(REGISTRY.items())
    if getattr(op, "differentiable", True)
    for i in range(len(op.samples))
]


def _run(name, i, device, dtype):
    op = REGISTRY[name]
    fn, xs = sample_call(op, op.samples[i], dtype=dtype, device=device)
    out = fn(*xs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    rng = np.random.default_rng(3)
    vs = [gt.tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=device) for o in outs]
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    grads = (
        gt.grad([o for o, _ in live], xs, [v for _, v in live], allow_unused=True)
        if live
        else [None] * len(xs)
    )
    to_np = lambda t: None if t is None else t.detach().cpu().numpy()  # noqa: E731
    return [to_np(o) for o in outs], [to_np(g) for g in grads]


@pytest.mark.parametrize("dtype,rtol", [(gt.float64, 1e-9), (gt.float32, 2e-4)])
@pytest.mark.parametrize("name,i", CASES)
def test_op_matches_cpu(name, i, dtype, rtol):
    if name == "to_device":
        pytest.skip("to_device's sample moves to the CPU; device moves are tested below")
    cpu_out, cpu_grads = _run(name, i, "cpu", dtype)
    gpu_out, gpu_grads = _run(name, i, "cuda", dtype)
    for a, b in zip(cpu_out, gpu_out):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * 1e-2)
    for k, (a, b) in enumerate(zip(cpu_grads, gpu_grads)):
        assert (a is None) == (b is None), f"{name}: gradient {k} present on one device only"
        if a is not None:
            np.testing.assert_allclose(
                b, a, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{name}: gradient of input {k}"
            )


def test_devices_and_moves():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    y = x.cuda()
    assert y.device == gt.device("cuda:0") and str(y.device) == "cuda:0"
    (y * y).sum().backward()
    assert x.grad.device == gt.device("cpu")
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert y.cpu().device.type == "cpu"
    assert gt.cuda.is_available() and gt.cuda.device_count() >= 1
    gt.cuda.synchronize()


def test_mixing_devices_is_an_error_naming_both():
    with pytest.raises(RuntimeError, match="add: tensors are on different devices, cpu and cuda:0"):
        gt.ones(2) + gt.ones(2, device="cuda")
    with pytest.raises(RuntimeError, match="host memory"):
        gt.ones(2, device="cuda") + np.ones(2)


def test_numpy_on_gpu_points_to_cpu_and_item_and_repr_work():
    t = gt.tensor([1.5], device="cuda")
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        t.numpy()
    assert t.item() == 1.5
    assert "device='cuda:0'" in repr(t)


def test_zero_copy_interop_with_cupy_torch_and_numba():
    import cupy

    t = gt.zeros(3, device="cuda")
    c = cupy.asarray(t)  # through __cuda_array_interface__
    c[0] = 5
    assert t.tolist()[0] == 5.0
    back = gt.from_dlpack(cupy.arange(3, dtype=cupy.float32))
    assert back.device.type == "cuda" and back.tolist() == [0.0, 1.0, 2.0]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        tt = torch.from_dlpack(t)
        tt[1] = 3
        assert t.tolist()[1] == 3.0
    from numba import cuda as ncuda

    if ncuda.is_available():  # Numba needs a real CUDA driver (the stand-in has none)
        assert ncuda.as_cuda_array(t).shape == (3,)


def test_float16_elementwise_and_linear_on_gpu():
    x = gt.randn(4, 8, device="cuda", dtype=gt.float16, requires_grad=True)
    w = gt.randn(3, 8, device="cuda", dtype=gt.float16, requires_grad=True)
    y = gt.nn.functional.linear(gt.tanh(x), w, activation="relu")
    assert y.dtype == gt.float16
    y.sum().backward()
    assert x.grad.dtype == gt.float16 and w.grad.dtype == gt.float16
    ref = np.maximum(
        np.tanh(x.detach().cpu().numpy().astype(np.float32))
        @ w.detach().cpu().numpy().astype(np.float32).T,
        0,
    )
    np.testing.assert_allclose(
        y.detach().cpu().numpy().astype(np.float32), ref, rtol=2e-2, atol=2e-2
    )


def test_training_loop_holds_steady_gpu_memory():
    import cupy

    pool = cupy.get_default_memory_pool()
    gt.manual_seed(0)
    w1 = gt.randn(256, 128, device="cuda", requires_grad=True)
    w2 = gt.randn(10, 256, device="cuda", requires_grad=True)
    x = gt.randn(64, 128, device="cuda")
    target = gt.tensor(np.arange(64) % 10).cuda()

    def step():
        h = gt.nn.functional.linear(x, w1, activation="relu")
        loss = gt.nn.functional.cross_entropy(gt.nn.functional.linear(h, w2), target)
        loss.backward()
        with gt.no_grad():
            for p in (w1, w2):
                p -= 1e-3 * p.grad
                p.grad = None

    for _ in range(20):
        step()
    gt.cuda.synchronize()
    before = pool.used_bytes()
    for _ in range(500):
        step()
    gt.cuda.synchronize()
    assert pool.used_bytes() <= before + 1024 * 1024, (before, pool.used_bytes())


def test_module_to_cuda_after_building_the_optimizer_moves_its_state():
    gt.manual_seed(0)
    model = gt.nn.MLP([4, 8, 2])
    opt = gt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = gt.randn(5, 4), gt.tensor([0, 1, 0, 1, 1])
    gt.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers are made on the CPU
    opt.zero_grad()
    model.to("cuda")
    assert all(p.device.type == "cuda" for p in model.parameters())
    loss = gt.nn.functional.cross_entropy(model(x.cuda()), y.cuda())
    loss.backward()
    opt.step()
    for state in opt.state.values():
        assert state["momentum_buffer"].device.type == "cuda"


def test_digits_example_trains_on_gpu_to_the_same_accuracy():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result = mod.main(["--device", "cuda", "--no-plot", "--no-progress"])
    assert result["test_accuracy"] >= 0.96


def test_a_gpu_array_becomes_a_tensor_on_its_gpu():
    import cupy

    a = cupy.arange(3.0)
    t = gt.tensor(a)
    assert t.device == gt.device("cuda:0")
    a[0] = 9.0  # a copy, as gt.tensor always makes
    assert t.tolist() == [0.0, 1.0, 2.0]
    assert gt.tensor(a, device="cpu").device == gt.device("cpu")


def test_a_numpy_number_next_to_a_gpu_tensor_is_a_number():
    x = gt.ones(2, device="cuda")
    for y in (x * np.float32(2), np.float64(2) * x, x + np.int64(1)):
        assert y.device == x.device and y.dtype == gt.float32
        assert y.tolist() == [2.0, 2.0]


def test_a_number_base_to_a_gpu_exponent_differentiates_on_the_gpu():
    x = gt.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    (2.0**x).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), [2 * np.log(2), 4 * np.log(2)], rtol=1e-6)


def test_losses_take_gpu_targets_as_arrays():
    import cupy

    logits = gt.randn(4, 3, device="cuda", requires_grad=True)
    target = cupy.asarray([0, 1, 2, 0])
    F = gt.nn.functional
    loss = F.cross_entropy(logits, target) + F.nll_loss(F.log_softmax(logits, 1), target)
    loss.backward()
    assert logits.grad.device == logits.device


def test_dataloader_with_data_on_the_gpu_and_labels_on_the_host():
    X = gt.arange(12.0, device="cuda").reshape(6, 2).data
    y = np.arange(6)
    seen = []
    for xb, yb in gt.data.DataLoader(X, y, batch_size=4, shuffle=True, seed=0):
        # Each label still belongs to its row: row i is (2i, 2i + 1).
        np.testing.assert_array_equal(xb.cpu().numpy()[:, 0], 2 * yb.cpu().numpy())
        seen.extend(yb.cpu().numpy().tolist())
    assert sorted(seen) == list(range(6))


def test_constructors_and_draws_land_on_the_gpu_asked_for():
    import cupy

    if gt.cuda.device_count() < 2:
        if not hasattr(cupy, "set_device_count"):
            pytest.skip("needs two GPUs (or the CuPy stand-in, which can pretend to have them)")
        cupy.set_device_count(2)
    for t in (
        gt.zeros(2, device="cuda:1"),
        gt.full((2,), 3.0, device="cuda:1"),
        gt.arange(3, device="cuda:1"),
        gt.randn(2, device="cuda:1"),
        gt.randint(0, 5, (2,), device="cuda:1"),
    ):
        assert t.device == gt.device("cuda:1"), t


@pytest.mark.parametrize("make", [
    lambda ps: gt.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: gt.optim.Adam(ps, lr=0.1, amsgrad=True),
    lambda ps: gt.optim.RMSprop(ps, lr=0.1, centered=True, momentum=0.5),
], ids=["sgd", "adam", "rmsprop"])  # fmt: skip
def test_a_model_on_the_second_gpu_trains_while_the_first_is_current(make):
    import cupy

    if gt.cuda.device_count() < 2:
        if not hasattr(cupy, "set_device_count"):
            pytest.skip("needs two GPUs (or the CuPy stand-in, which can pretend to have them)")
        cupy.set_device_count(2)
    F = gt.nn.functional
    gt.manual_seed(0)
    model = gt.nn.MLP([6, 8, 3])
    twin = gt.nn.MLP([6, 8, 3])
    twin.load_state_dict(model.state_dict())
    model.to("cuda:1")
    opts = make(model.parameters()), make(twin.parameters())
    X, y = gt.randn(16, 6), gt.randint(0, 3, (16,))
    for _ in range(3):
        for net, opt, dev in ((model, opts[0], "cuda:1"), (twin, opts[1], "cpu")):
            opt.zero_grad(set_to_none=False)
            F.cross_entropy(net(X.to(dev)), y.to(dev)).backward()
            gt.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            gt.nn.utils.clip_grad_value_(net.parameters(), 0.05)
            opt.step()
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the gradients are on different"):
        gt.nn.utils.clip_grad_norm_([*model.parameters(), *twin.parameters()], 1.0)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert p.device == gt.device("cuda:1")
        got, want = p.detach().cpu().numpy(), q.detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_backward_through_a_graph_that_crosses_gpus_runs_each_part_on_its_own():
    import cupy

    if gt.cuda.device_count() < 2:
        if not hasattr(cupy, "set_device_count"):
            pytest.skip("needs two GPUs (or the CuPy stand-in, which can pretend to have them)")
        cupy.set_device_count(2)
    w = gt.randn(3, 3, device="cuda:1", requires_grad=True)
    x = gt.randn(4, 3, device="cuda:1")
    h = x @ w  # two consumers on cuda:1, whose gradients add up there
    (h * h + h).to("cuda:0").sum().backward()  # the loss, and so backward's start, on cuda:0
    assert w.grad.device == gt.device("cuda:1")
    xh, wh = x.cpu().numpy(), w.detach().cpu().numpy()
    np.testing.assert_allclose(w.grad.cpu().numpy(), xh.T @ (2 * (xh @ wh) + 1), rtol=1e-5)


def test_a_training_step_never_waits_for_the_gpu():
    import cupy

    if not hasattr(cupy, "sync_count"):
        pytest.skip("counting host syncs needs the CuPy stand-in")
    F = gt.nn.functional
    model = gt.nn.MLP([20, 32, 32, 5]).to("cuda")
    opt = gt.optim.Adam(model.parameters(), lr=1e-3)
    X = gt.randn(64, 20, device="cuda")
    y = gt.randint(0, 5, (64,), device="cuda")

    def step():
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        gt.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # the first step makes the optimizer's state
    cupy.reset_sync_count()
    for _ in range(3):
        step()
    assert cupy.sync_count() == 0, dict(cupy.SYNCS)


def test_an_out_of_range_class_on_the_gpu_gives_nan_not_a_stall():
    logits = gt.randn(3, 4, device="cuda", requires_grad=True)
    loss = gt.nn.functional.cross_entropy(logits, gt.tensor([0, 7, 1], device="cuda"))
    loss.backward()
    assert np.isnan(loss.item())
    g = logits.grad.cpu().numpy()
    assert np.isnan(g[1]).all() and np.isfinite(g[[0, 2]]).all()


def test_load_state_dict_takes_gpu_arrays():
    import cupy

    model = gt.nn.Linear(3, 2).to("cuda")
    state = {k: cupy.full(v.shape, 0.5, dtype=cupy.float32) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert all(p.device == gt.device("cuda:0") for p in model.parameters())
    assert model.weight.tolist() == [[0.5] * 3] * 2


def test_a_loss_refuses_host_weights_beside_a_gpu_input():
    """Class weights are operands like any other: host data next to a GPU tensor is refused,
    never copied to the device behind the caller's back."""
    x = gt.randn(4, 3, device="cuda")
    t = gt.tensor([0, 1, 2, 0], device="cuda")
    with pytest.raises(RuntimeError, match="host memory"):
        gt.nn.functional.cross_entropy(x, t, weight=np.ones(3))
    w = gt.ones(3, device="cuda")
    assert gt.nn.functional.cross_entropy(x, t, weight=w).device == x.device


@pytest.mark.parametrize("make", [
    lambda ps: gt.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: gt.optim.Adam(ps, lr=0.01),
], ids=["sgd", "adam"])  # fmt: skip
def test_a_reused_step_plan_on_a_gpu_sees_every_change_between_steps(make):
    """The GPU side of test_optim's test of the same name: the plan the CUDA updates reuse from
    step to step must see a parameter or its state replaced and a changed learning rate."""
    import cupy

    if hasattr(cupy, "sync_count"):
        pytest.skip("the CUDA update kernels need a real GPU (the stand-in runs the array ops)")

    def run(kernels):
        rng = np.random.default_rng(5)
        shapes = [(4, 3), (3,), (2, 2, 2)]
        ps = [gt.nn.Parameter(gt.tensor(rng.standard_normal(s).astype(np.float32),
                                        device="cuda")) for s in shapes]  # fmt: skip
        opt = make(ps)
        with gt.use_kernels(kernels):
            for step in range(8):
                for i, p in enumerate(ps):
                    g = np.random.default_rng(10 * step + i).standard_normal(p.shape)
                    p.grad = gt.tensor(g.astype(np.float32), device="cuda")
                if step == 2:
                    ps[2].data = ps[2].data.copy()
                if step == 3:
                    opt.param_groups[0]["lr"] *= 0.5
                if step == 5:
                    ps[0].data = cupy.asfortranarray(ps[0].data)
                if step == 6:
                    opt.load_state_dict(opt.state_dict())
                opt.step()
        return [p.detach().cpu().numpy() for p in ps]

    for planned, plain in zip(run(True), run(False), strict=True):
        np.testing.assert_allclose(planned, plain, rtol=1e-6, atol=1e-7)
