"""The engine: accumulation, retain_graph, create_graph, grad(), no_grad, in-place and versions,
custom Functions, deep graphs and memory."""

import gc
import tracemalloc

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F


def test_gradients_accumulate_across_backward_calls():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_a_tensor_used_twice_gets_both_paths():
    x = gt.tensor(3.0, requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward()
    assert x.grad.item() == 7.0


def test_grad_is_assignable_and_a_tensor():
    x = gt.tensor([1.0], requires_grad=True)
    (x * 2).sum().backward()
    assert isinstance(x.grad, gt.Tensor)
    x.grad = None
    (x * 5).sum().backward()
    assert x.grad.item() == 5.0
    x.grad = gt.tensor([1.0])
    (x * 5).sum().backward()
    assert x.grad.item() == 6.0


def test_grads_reaching_two_leaves_are_independent_copies():
    a = gt.tensor([1.0], requires_grad=True)
    b = gt.tensor([1.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 10  # must not change b.grad
    assert b.grad.item() == 1.0


def test_ten_thousand_op_chain_without_recursion():
    x = gt.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**10_000, rel=1e-3)


def test_second_backward_through_freed_graph_names_retain_graph():
    x = gt.tensor(2.0, requires_grad=True)
    y = gt.exp(x) * x
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = gt.tensor(2.0, requires_grad=True)
    y = gt.exp(x) * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == pytest.approx(2 * 3 * np.exp(2.0))


def test_backward_frees_saved_arrays():
    x = gt.tensor(2.0, requires_grad=True)
    y = gt.exp(x)
    node = y.grad_fn
    y.backward()
    assert node.inputs is None and node.output is None


def test_create_graph_gives_second_derivatives():
    x = gt.tensor(1.5, dtype=gt.float64, requires_grad=True)
    y = x**3
    (g,) = gt.grad(y, x, create_graph=True)
    assert g.item() == pytest.approx(3 * 1.5**2)
    (gg,) = gt.grad(g, x)
    assert gg.item() == pytest.approx(6 * 1.5)


def test_third_derivative_of_tanh():
    x = gt.tensor(0.3, dtype=gt.float64, requires_grad=True)
    (g1,) = gt.grad(gt.tanh(x), x, create_graph=True)
    (g2,) = gt.grad(g1, x, create_graph=True)
    (g3,) = gt.grad(g2, x)
    t = np.tanh(0.3)
    # d3/dx3 tanh = -2 (1 - t^2)(1 - 3 t^2)
    assert g3.item() == pytest.approx(-2 * (1 - t**2) * (1 - 3 * t**2))


def test_backward_with_create_graph_records_the_gradient():
    x = gt.tensor(2.0, dtype=gt.float64, requires_grad=True)
    (x**3).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.backward()
    assert x.grad.item() == pytest.approx(12.0)


def test_grad_does_not_touch_dot_grad_and_handles_non_leaf_inputs():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    gh, gx = gt.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), [4.0, 8.0])
    np.testing.assert_allclose(gx.numpy(), [8.0, 16.0])
    assert x.grad is None


def test_grad_allow_unused():
    x = gt.tensor(1.0, requires_grad=True)
    z = gt.tensor(1.0, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="allow_unused"):
        gt.grad(y, [x, z], retain_graph=True)
    gx, gz = gt.grad(y, [x, z], allow_unused=True)
    assert gx.item() == 2.0 and gz is None


def test_grad_outputs_and_non_scalar_backward():
    x = gt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(gt.tensor([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, 12.0])


def test_retain_grad_on_non_leaf():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])


def test_no_grad_records_nothing_and_nests():
    x = gt.tensor(1.0, requires_grad=True)
    with gt.no_grad():
        y = x * 2
        with gt.enable_grad():
            z = x * 2
        w = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    assert not w.requires_grad
    assert gt.is_grad_enabled()


def test_no_grad_as_decorator_and_set_grad_enabled():
    @gt.no_grad()
    def f(x):
        return x * 2

    x = gt.tensor(1.0, requires_grad=True)
    assert not f(x).requires_grad
    assert gt.is_grad_enabled()
    with gt.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert gt.is_grad_enabled()
    gt.set_grad_enabled(False)
    assert not gt.is_grad_enabled()
    gt.set_grad_enabled(True)
    assert gt.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_data():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = x * 1
    v = y.detach()
    v.data[0] = 100.0
    assert y.data[0] == 100.0


# -- in place ---------------------------------------------------------------------------------


def test_inplace_on_leaf_requiring_grad_raises_outside_no_grad():
    w = gt.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1
    with gt.no_grad():
        w -= 0.5
    assert w.item() == 0.5 and w.is_leaf and w.requires_grad


def test_inplace_keeps_identity_and_changes_shared_memory():
    a = gt.zeros(4)
    view = a[1:3]
    before = id(a)
    a += 1
    assert id(a) == before
    np.testing.assert_array_equal(view.numpy(), [1.0, 1.0])


def test_inplace_ops_are_recorded_on_non_leaves():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += x  # y = 3x
    y *= y  # y = 9x^2
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])


def test_modifying_a_saved_tensor_is_caught_and_named():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = gt.sin(h)  # sin saves its input h
    h += 1
    with pytest.raises(RuntimeError, match="sin.*modified by an in-place operation"):
        y.sum().backward()


def test_modifying_a_saved_leaf_under_no_grad_is_caught():
    w = gt.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    with gt.no_grad():
        w -= 1
    with pytest.raises(RuntimeError, match="multiply"):
        y.backward()


def test_modifying_a_saved_output_is_caught():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    y = gt.exp(x)  # exp saves its output
    with gt.no_grad():
        y[0] = 5.0
    with pytest.raises(RuntimeError, match="exp"):
        y.sum().backward()


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_inplace_on_a_fused_layers_output_is_caught(activation, kernels):
    # These activations' derivatives read the layer's output, so changing it must be refused.
    x = gt.randn(4, 3)
    w = gt.randn(5, 3, requires_grad=True)
    with gt.use_kernels(kernels):
        h = F.linear(x, w, gt.zeros(5), activation=activation)
        h += 1
        with pytest.raises(RuntimeError, match="linear.*modified by an in-place operation"):
            h.sum().backward()


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", None])
def test_inplace_on_a_fused_layers_output_is_fine_when_it_was_not_kept(activation, kernels):
    x = gt.randn(4, 3, dtype=gt.float64)
    w = gt.randn(5, 3, dtype=gt.float64, requires_grad=True)
    with gt.use_kernels(kernels):
        h = F.linear(x, w, activation=activation)
        h += 1
        h.sum().backward()
        expected = gt.grad(F.linear(x, w, activation=activation).sum(), w)[0]
    np.testing.assert_allclose(w.grad.numpy(), expected.numpy(), rtol=1e-12)


def test_mlp_hidden_layer_output_changed_in_place_is_caught():
    model = gt.nn.MLP([3, 8, 2])
    h = model.layers[0](gt.randn(4, 3))
    h *= 2
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        model.layers[1](h).sum().backward()


def test_inplace_on_an_input_the_op_did_not_save_is_fine():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = h + 1  # add saves nothing
    h += 5
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_setitem_is_differentiable():
    x = gt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = gt.tensor(10.0, requires_grad=True)
    y = x * 1
    y[1] = v * 2
    (y * gt.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.0, 3.0])
    assert v.grad.item() == 4.0


def test_version_counter_counts_inplace_changes():
    t = gt.zeros(3)
    v0 = t._version[0]
    t += 1
    t[0] = 2
    assert t._version[0] == v0 + 2


# -- custom functions -------------------------------------------------------------------------


class Cube(gt.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


def test_custom_function_forward_backward_and_needs_input_grad():
    x = gt.tensor([1.0, 2.0], dtype=gt.float64, requires_grad=True)
    y = Cube.apply(x)
    assert y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    assert gt.testing.gradcheck(Cube.apply, [x])


class ScaleBy(gt.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k, x + k

    @staticmethod
    def backward(ctx, g1, g2):
        return g1 * ctx.k + g2, None


def test_custom_function_with_two_outputs_and_a_constant():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    a, b = ScaleBy.apply(x, 3.0)
    (a.sum() + 2 * b.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])
    x.grad = None
    a, b = ScaleBy.apply(x, 3.0)
    a.sum().backward()  # b unused: its gradient arrives as zeros
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_custom_function_wrong_number_of_grads():
    class Bad(gt.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = gt.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="Bad.backward returned 1 gradients"):
        Bad.apply(x, x).backward()


# -- memory -----------------------------------------------------------------------------------


def test_training_loop_memory_is_bounded():
    gt.manual_seed(0)
    w1 = gt.randn(32, 16, requires_grad=True)
    w2 = gt.randn(16, 4, requires_grad=True)
    x = gt.randn(64, 32)

    def step():
        loss = (gt.tanh(x @ w1) @ w2).pow(2).mean()
        loss.backward()
        with gt.no_grad():
            for p in (w1, w2):
                p -= 1e-3 * p.grad
                p.grad = None

    for _ in range(50):
        step()
    gc.collect()
    tracemalloc.start()
    for _ in range(100):
        step()
    gc.collect()  # also empties the interpreter's free lists, which tracemalloc counts
    mid = tracemalloc.get_traced_memory()[0]
    for _ in range(900):
        step()
    gc.collect()
    end = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert end - mid < 64 * 1024, f"memory grew by {end - mid} bytes over 900 steps"


def test_graph_is_freed_without_the_garbage_collector():
    gc.disable()
    try:
        x = gt.randn(100, 100, requires_grad=True)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            y = gt.exp(gt.tanh(x * 2)).sum()
            y.backward()
            del y
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    finally:
        gc.enable()
    # One gradient (100x100 float32 = 40 kB) stays in x.grad; the graphs must not pile up.
    assert grown < 200_000, grown


def test_grad_runs_only_the_part_of_the_graph_that_leads_to_its_inputs():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    h = gt.sin(x)  # sin saves x
    with gt.no_grad():
        x += 1  # so sin's derivative could no longer run
    (gh,) = gt.grad((h * h).sum(), h)  # ...and it need not: h is the input
    np.testing.assert_allclose(gh.numpy(), 2 * np.sin([1.0, 2.0]), rtol=1e-6)


def test_leaf_grads_own_writable_memory():
    x = gt.ones(3, requires_grad=True)
    x.sum().backward()  # the gradient of a sum is a broadcast (read-only) view
    x.grad *= 2
    assert x.grad.tolist() == [2.0, 2.0, 2.0]
    a = gt.ones(2, requires_grad=True)
    b = gt.ones(2, requires_grad=True)
    c = gt.ones(2, requires_grad=True)
    (a + b.reshape(2) + c).sum().backward()
    a.grad += 1
    assert b.grad.tolist() == [1.0, 1.0] and c.grad.tolist() == [1.0, 1.0]


def test_the_callers_gradient_is_not_adopted():
    x = gt.ones(2, requires_grad=True)
    g = gt.tensor([1.0, 2.0])
    (x * 1).backward(g)
    y = gt.ones(2, requires_grad=True)
    (y + 0).backward(g)
    g.data[0] = 100.0
    assert y.grad.tolist() == [1.0, 2.0]


def test_retained_grad_is_its_own_copy():
    x = gt.ones(2, requires_grad=True)
    h = x + 0
    h.retain_grad()
    h.sum().backward()
    h.grad += 5
    assert x.grad.tolist() == [1.0, 1.0]


# -- gradients handed out own their memory ----------------------------------------------------


def test_grad_results_own_their_memory():
    x = gt.ones(3, requires_grad=True)
    y = gt.ones(3, requires_grad=True)
    v = gt.tensor([1.0, 2.0, 3.0])
    gx, gy = gt.grad(x + y, [x, y], v)  # add hands the caller's v to both inputs
    gx += 1
    np.testing.assert_array_equal(gy.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0, 3.0])
    (g,) = gt.grad(x.sum(), x)  # a broadcast, read-only view inside
    g += 1
    np.testing.assert_array_equal(g.numpy(), [2.0, 2.0, 2.0])


def test_retain_grad_follows_an_in_place_change():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    t = x * 2
    t.retain_grad()
    t *= 3
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), [12.0, 24.0])  # d(t^2)/dt of the new t, 2 * 6x
    np.testing.assert_allclose(x.grad.numpy(), [72.0, 144.0])


def test_where_with_a_condition_that_requires_grad():
    c = gt.tensor([1.0, -1.0, 0.0], requires_grad=True)
    a = gt.ones(3, requires_grad=True)
    gt.where(c, a, 0).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 0.0])
    assert c.grad is None


def test_backward_through_infinities_raises_no_numpy_warning():
    # pytest turns warnings into errors: a derivative that meets 0 * inf must select, silently.
    x = gt.tensor([0.0, 1.0], dtype=gt.float64, requires_grad=True)
    gt.relu(x * 1).backward(gt.tensor([np.inf, np.inf], dtype=gt.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, np.inf])
    x.grad = None
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int8", "bool", "float16"])
@pytest.mark.parametrize(
    "shapes", [((64, 64),) * 3, ((64, 64), (64, 1), ()), ((64, 64), (1, 64), (64, 1))]
)
def test_a_large_select_on_the_host_gives_np_wheres_bits(dtype, shapes):
    """where() from this many elements selects with bit masks: the same bits as np.where, for
    every value (infinities, NaN, -0.0), broadcasting and Python numbers."""
    from gradtensor import backend

    rng = np.random.default_rng(0)
    c = rng.random(shapes[0]) > 0.5
    assert c.size >= backend.SELECT_MIN

    def values(shape):
        v = rng.standard_normal(shape) * 3
        v = v > 0 if dtype == "bool" else v.astype(dtype)
        if v.dtype.kind == "f" and v.size >= 4:
            v.flat[:4] = [np.inf, -np.inf, np.nan, -0.0]
        return v

    a, b = values(shapes[1]), values(shapes[2])
    for x, y in [(a, b), (a, 0), (a, -0.0), (0.5, b), (2, 3)]:
        got, want = backend.where(np, c, x, y), np.where(c, x, y)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(
            np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8)
        )


@pytest.mark.parametrize("kernels", [True, False])
def test_fused_relu_layer_under_an_infinite_gradient(kernels):
    x = gt.tensor([[1.0, -1.0]])
    w = gt.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    with gt.use_kernels(kernels):
        y = F.linear(x, w, activation="relu")  # the second unit is dead
        y.backward(gt.tensor([[np.inf, np.inf]]))
    np.testing.assert_array_equal(w.grad.numpy(), [[np.inf, -np.inf], [0.0, 0.0]])


def test_zero_initialised_logistic_regression_steps_the_right_way():
    # BCE-with-logits at logit 0: d/db mean(softplus(b) - b * t) = 0.5 - mean(t).
    t = gt.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    b = gt.zeros(1, requires_grad=True)
    F.binary_cross_entropy_with_logits(b * gt.ones(8), t).backward()
    assert b.grad.item() == pytest.approx(0.5 - 3 / 8)
    z = gt.zeros(3, requires_grad=True)
    F.softplus(z).sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.5, 0.5, 0.5])


def test_a_root_gradient_of_another_float_dtype_is_cast_to_the_outputs_like_torch():
    x = gt.tensor([1.0, 2.0], dtype=gt.float64, requires_grad=True)
    (gx,) = gt.grad(x * 3, x, gt.ones(2, dtype=gt.float32))
    assert gx.dtype == gt.float64
    np.testing.assert_array_equal(gx.numpy(), [3.0, 3.0])
    y = x * 3
    y.backward(gt.ones(2, dtype=gt.float16))
    assert x.grad.dtype == gt.float64
    # The cast is recorded: a gradient given with requires_grad stays differentiable.
    v = gt.ones(2, dtype=gt.float32, requires_grad=True)
    (gx,) = gt.grad(x * x, x, v, create_graph=True)
    (gv,) = gt.grad(gx.sum(), v)
    np.testing.assert_array_equal(gv.numpy(), [2.0, 4.0])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_a_graph_never_differentiated_is_freed_without_the_garbage_collector(activation):
    # A forward run for evaluation with grad mode on: its nodes and arrays go when its last
    # tensor goes, as in PyTorch, not at the next collection of reference cycles.
    import weakref

    import gradtensor.nn as nn

    model = nn.MLP([6, 8, 8, 3], activation=activation)
    x = gt.tensor(np.random.default_rng(0).standard_normal((4, 6)), requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        loss = F.cross_entropy(model(x), gt.tensor([0, 1, 2, 0])) + (x.tanh() * x).exp().sum()
        nodes, todo = [], [loss._node]
        while todo:
            node = todo.pop()
            nodes.append(weakref.ref(node))
            todo += [e[0] for e in node.next if type(e) is tuple]
        del loss, node, todo
        assert len(nodes) > 5 and all(ref() is None for ref in nodes)
    finally:
        gc.enable()
