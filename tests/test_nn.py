"""nn: Module API, Parameter, layers, init statistics, dropout, gradient clipping."""

import copy
import math

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(gt.ones(3))
        self.fc = nn.Linear(3, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(x * self.scale))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 3, activation="relu"), nn.Tanh())
        self.block = Block()
        self.head = nn.Linear(2, 1, bias=False)

    def forward(self, x):
        return self.head(self.block(self.layers(x)))


# -- Module ---------------------------------------------------------------------------------------


def test_named_parameters_order_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "layers.0.weight",
        "layers.0.bias",
        "block.scale",
        "block.fc.weight",
        "block.fc.bias",
        "head.weight",
    ]
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_children()] == ["layers", "block", "head"]
    assert [type(m).__name__ for m in net.modules()] == [
        "Net",
        "Sequential",
        "Linear",
        "Tanh",
        "Block",
        "Linear",
        "Dropout",
        "Linear",
    ]
    assert list(net.children())[2] is net.head
    assert [n for n, _ in net.block.named_parameters()] == ["scale", "fc.weight", "fc.bias"]
    assert list(net.state_dict()) == names


def test_shared_parameters_are_listed_once():
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_attribute_registration_rules():
    m = nn.Module()
    m.w = nn.Parameter(gt.zeros(2))
    m.sub = nn.Linear(2, 2)
    m.plain = gt.zeros(2)  # a plain tensor is not a parameter
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = gt.zeros(2)
    m.w = None
    assert [n for n, _ in m.named_parameters()] == ["sub.weight", "sub.bias"]
    del m.sub
    assert list(m.parameters()) == []

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(gt.zeros(1))

    with pytest.raises(AttributeError, match="super"):
        Early()


def test_buffers_are_state_but_not_parameters():
    m = nn.Linear(2, 2)
    m.register_buffer("running", gt.zeros(2))
    m.register_buffer("scratch", gt.zeros(2), persistent=False)
    assert "running" not in [n for n, _ in m.named_parameters()]
    assert list(m.state_dict()) == ["weight", "bias", "running"]
    assert [n for n, _ in m.named_buffers()] == ["running", "scratch"]


def test_train_eval_propagate():
    net = Net()
    assert net.training and net.block.drop.training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad():
    net = Net()
    net(gt.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    g = net.head.weight.grad
    net.zero_grad(set_to_none=False)
    assert net.head.weight.grad is g and not g.data.any()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_looks_like_pytorch():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (layers): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=3, bias=True, activation='relu')\n"
        "    (1): Tanh()\n"
        "  )\n"
        "  (block): Block(\n"
        "    (fc): Linear(in_features=3, out_features=2, bias=True)\n"
        "    (drop): Dropout(p=0.5)\n"
        "  )\n"
        "  (head): Linear(in_features=2, out_features=1, bias=False)\n"
        ")"
    )
    assert repr(nn.Parameter(gt.zeros(1))).startswith("Parameter containing:\ntensor(")


def test_state_dict_round_trip_and_strict_errors():
    gt.manual_seed(0)
    a, b = Net(), Net()
    x = gt.randn(3, 4)
    a.eval(), b.eval()
    assert not np.allclose(a(x).data, b(x).data)
    params_before = list(b.parameters())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert list(b.parameters()) == params_before or all(
        p is q for p, q in zip(b.parameters(), params_before, strict=True)
    )

    sd = a.state_dict()
    assert sd["head.weight"].data is a.head.weight.data  # shares memory, as in PyTorch
    missing = {k: v for k, v in sd.items() if k != "block.fc.bias"}
    with pytest.raises(KeyError, match=r"missing keys \['block.fc.bias'\]"):
        b.load_state_dict(missing)
    extra = dict(sd, **{"block.extra": gt.zeros(1)})
    with pytest.raises(KeyError, match=r"unexpected keys \['block.extra'\]"):
        b.load_state_dict(extra)
    res = b.load_state_dict(extra | {}, strict=False)
    assert res.unexpected_keys == ["block.extra"] and res.missing_keys == []
    res = b.load_state_dict(missing, strict=False)
    assert res.missing_keys == ["block.fc.bias"]
    wrong = dict(sd, **{"head.weight": gt.zeros(2, 2)})
    before = b.layers[0].weight.data.copy()
    b.layers[0].weight.data[...] = 5  # so we can see that nothing was loaded
    before = b.layers[0].weight.data.copy()
    with pytest.raises(ValueError, match=r"'head.weight' has shape \(2, 2\).*\(1, 2\)"):
        b.load_state_dict(wrong)
    np.testing.assert_array_equal(b.layers[0].weight.data, before)
    # NumPy arrays are accepted as values too.
    b.load_state_dict({k: np.asarray(v.data) for k, v in sd.items()})
    np.testing.assert_array_equal(b.layers[0].weight.data, a.layers[0].weight.data)


def test_to_keeps_parameter_identity():
    net = Net()
    params = list(net.parameters())
    net(gt.randn(2, 4)).sum().backward()
    assert net.to("cpu") is net
    assert all(p is q for p, q in zip(net.parameters(), params, strict=True))
    net.to(gt.float64)
    assert all(p is q for p, q in zip(net.parameters(), params, strict=True))
    assert all(p.dtype == gt.float64 and p.grad.dtype == gt.float64 for p in net.parameters())
    assert net(gt.randn(2, 4, dtype=gt.float64)).dtype == gt.float64
    with pytest.raises(TypeError, match="floating-point"):
        net.to(gt.int64)


def test_deepcopy_makes_independent_parameters():
    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.head.weight, nn.Parameter)
    assert twin.head.weight.data is not net.head.weight.data
    np.testing.assert_array_equal(twin.head.weight.data, net.head.weight.data)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in net.named_parameters()]


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


# -- Parameter ------------------------------------------------------------------------------------


def test_parameter_works_with_ops_and_gets_gradients():
    w = nn.Parameter(gt.tensor([1.0, 2.0, 3.0]))
    x = gt.tensor([0.5, -1.0, 2.0])
    loss = (w * x).sum() + (w @ x) + F.relu(w).sum() + w[1] * 2
    assert type(loss) is gt.Tensor
    loss.backward()
    np.testing.assert_allclose(w.grad.data, 2 * x.data + 1 + np.array([0, 2, 0]))
    assert nn.Parameter(gt.zeros(2), requires_grad=False).requires_grad is False
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(gt.tensor([1, 2]))


def test_parameter_shares_the_tensor_data():
    t = gt.zeros(3)
    p = nn.Parameter(t)
    assert p.data is t.data and p.is_leaf


def test_parameter_in_place_rules_match_leaves():
    p = nn.Parameter(gt.zeros(3))
    with pytest.raises(RuntimeError, match="leaf"):
        p += 1
    with gt.no_grad():
        p += 1
    assert p.data.tolist() == [1, 1, 1]


# -- layers -------------------------------------------------------------------------------------


def test_linear_default_init_bounds():
    gt.manual_seed(0)
    lin = nn.Linear(100, 300)
    bound = 1 / math.sqrt(100)
    for t in (lin.weight, lin.bias):
        assert t.data.min() >= -bound and t.data.max() <= bound
        assert t.data.max() > 0.9 * bound and t.data.min() < -0.9 * bound
    assert lin.weight.shape == (300, 100) and lin.bias.shape == (300,)
    assert lin.weight.dtype == gt.float32
    # U(-b, b) has std b / sqrt(3).
    assert lin.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for Linear")
    for act, fn in [
        (None, lambda z: z),
        ("relu", torch.relu),
        ("tanh", torch.tanh),
        ("sigmoid", torch.sigmoid),
    ]:
        lin = nn.Linear(5, 3, activation=act)
        x = gt.randn(4, 5, requires_grad=True)
        tl = torch.nn.Linear(5, 3)
        with torch.no_grad():
            tl.weight.copy_(torch.from_numpy(lin.weight.data))
            tl.bias.copy_(torch.from_numpy(lin.bias.data))
        tx = torch.tensor(x.data, requires_grad=True)
        y, ty = lin(x), fn(tl(tx))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        (y * y).sum().backward()
        (ty * ty).sum().backward()
        np.testing.assert_allclose(
            lin.weight.grad.data, tl.weight.grad.numpy(), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_linear_validates():
    with pytest.raises(ValueError, match="activation"):
        nn.Linear(2, 2, activation="swish")
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    assert nn.Linear(3, 2, bias=False).bias is None


def test_mlp_structure_and_forward():
    m = nn.MLP([8, 16, 16, 4], activation="sigmoid", dropout=0.2)
    kinds = [type(x).__name__ for x in m.layers]
    assert kinds == ["Linear", "Dropout", "Linear", "Dropout", "Linear"]
    assert [x.activation for x in m.layers if isinstance(x, nn.Linear)] == [
        "sigmoid",
        "sigmoid",
        None,
    ]
    assert [n for n, _ in m.named_parameters()][:3] == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
    ]
    assert m(gt.randn(5, 8)).shape == (5, 4)
    silu = nn.MLP([3, 4, 2], activation="silu")  # a fused activation: no module of its own
    assert [(type(x).__name__, x.activation) for x in silu.layers] == [
        ("Linear", "silu"),
        ("Linear", None),
    ]
    softplus = nn.MLP([3, 4, 2], activation="softplus")
    assert [type(x).__name__ for x in softplus.layers] == ["Linear", "Softplus", "Linear"]
    with pytest.raises(ValueError, match="unknown activation"):
        nn.MLP([3, 2], output_activation="nope")
    with pytest.raises(ValueError, match="input and an output"):
        nn.MLP([3])


def test_sequential_container():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and s[0] is a and s[-1] is c and list(s) == [a, b, c]
    assert isinstance(s[1:], nn.Sequential) and len(s[1:]) == 2
    x = gt.randn(4, 2)
    np.testing.assert_allclose(s(x).data, c(b(a(x))).data)
    with pytest.raises(IndexError):
        s[3]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(a, F.relu)


@pytest.mark.parametrize(
    "module,fn",
    [
        (nn.ReLU(), F.relu),
        (nn.GELU(), F.gelu),
        (nn.Sigmoid(), F.sigmoid),
        (nn.Tanh(), F.tanh),
        (nn.Softplus(), F.softplus),
        (nn.SiLU(), F.silu),
        (nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)),
        (nn.Identity(), lambda x: x),
        (nn.GELU("tanh"), lambda x: F.gelu(x, approximate="tanh")),
    ],
)
def test_activation_modules(module, fn):
    x = gt.randn(3, 4)
    np.testing.assert_array_equal(module(x).data, fn(x).data)


def test_dropout_statistics_and_eval_identity():
    gt.manual_seed(0)
    drop = nn.Dropout(0.3)
    x = gt.ones(200_000)
    y = drop(x).data
    kept = y != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.005)
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert y.mean() == pytest.approx(1.0, abs=0.01)  # the expectation is preserved
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.Dropout(1.5)


def test_dropout_gradient_uses_the_same_mask():
    gt.manual_seed(1)
    x = gt.ones(1000, requires_grad=True)
    y = nn.Dropout(0.5)(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)


# -- init -----------------------------------------------------------------------------------------


def _big(*shape):
    return gt.empty(*shape)


@pytest.mark.parametrize(
    "fn,kwargs,expected_std",
    [
        (nn.init.uniform_, dict(a=-2.0, b=2.0), 4 / math.sqrt(12)),
        (nn.init.normal_, dict(mean=0.0, std=0.3), 0.3),
        (nn.init.xavier_uniform_, dict(gain=2.0), 2.0 * math.sqrt(2 / (400 + 300))),
        (nn.init.xavier_normal_, dict(), math.sqrt(2 / (400 + 300))),
        (nn.init.kaiming_uniform_, dict(nonlinearity="relu"), math.sqrt(2 / 300)),
        (nn.init.kaiming_normal_, dict(nonlinearity="relu"), math.sqrt(2 / 300)),
        (
            nn.init.kaiming_normal_,
            dict(mode="fan_out", nonlinearity="tanh"),
            5 / 3 / math.sqrt(400),
        ),
        (nn.init.kaiming_uniform_, dict(a=math.sqrt(5)), 1 / math.sqrt(3 * 300)),  # U(+-1/sqrt(in))
    ],
)
def test_init_statistics(fn, kwargs, expected_std):
    gt.manual_seed(0)
    w = _big(400, 300)  # (out, in): fan_in 300, fan_out 400
    assert fn(w, **kwargs) is w
    assert w.data.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(w.data.mean()) < 3 * expected_std / math.sqrt(w.numel()) + 1e-12


def test_init_is_seeded_and_in_place_on_parameters():
    p = nn.Parameter(gt.empty(10, 10))
    a = p.data
    gt.manual_seed(3)
    nn.init.kaiming_normal_(p)
    first = p.data.copy()
    gt.manual_seed(3)
    nn.init.kaiming_normal_(p)
    assert p.data is a and p.is_leaf and p.grad_fn is None
    np.testing.assert_array_equal(p.data, first)
    nn.init.zeros_(p)
    assert not p.data.any()
    nn.init.ones_(p)
    assert (p.data == 1).all()


def test_init_gain_and_errors():
    assert nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("sigmoid") == 1
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="2 or more dimensions"):
        nn.init.xavier_uniform_(gt.empty(5))
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_uniform_(gt.empty(2, 2), mode="fan_avg")
    with pytest.raises(TypeError, match="floating-point"):
        nn.init.normal_(gt.zeros(3, dtype=gt.int64))


def test_init_matches_torch_gain():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for calculate_gain")
    for nl, param in [
        ("linear", None),
        ("relu", None),
        ("tanh", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.3),
        ("selu", None),
    ]:
        assert nn.init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param)
        )


# -- utils ----------------------------------------------------------------------------------------


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for gradient clipping")
    rng = np.random.default_rng(0)
    for norm_type, max_norm in [(2.0, 1.0), (1.0, 0.5), (math.inf, 0.3), (2.0, 1e3)]:
        grads = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (5,)]]
        ours = [nn.Parameter(gt.zeros(g.shape)) for g in grads]
        theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = gt.tensor(g), torch.tensor(g)
        total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
        t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
        assert total.item() == pytest.approx(t_total.item(), rel=1e-5)
        for p, q in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_value_and_nonfinite():
    p = nn.Parameter(gt.zeros(4))
    p.grad = gt.tensor([-3.0, -0.5, 0.5, 3.0])
    assert nn.utils.clip_grad_value_(p, 1.0) is None
    assert p.grad.tolist() == [-1.0, -0.5, 0.5, 1.0]
    p.grad = gt.tensor([float("inf"), 0.0, 0.0, 0.0])
    with pytest.raises(RuntimeError, match="inf"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    q = nn.Parameter(gt.zeros(2))
    assert nn.utils.clip_grad_norm_([q], 1.0).item() == 0.0  # no gradients at all


@pytest.mark.skipif(gt.cuda.is_available(), reason="this machine has CUDA; the error is for none")
def test_to_cuda_without_a_gpu_says_why():
    lin = nn.Linear(2, 2)
    w = lin.weight.data
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        lin.to("cuda")
    assert lin.weight.data is w  # nothing moved


def _ce_both(logits, target, **kw):
    """cross_entropy (one op) and the composite it stands for: values and input gradients."""
    got = []
    for fn in (F.cross_entropy, lambda x, t, **k: F.nll_loss(F.log_softmax(x, axis=1), t, **k)):
        x = gt.tensor(logits, dtype=logits.dtype, requires_grad=True)
        loss = fn(x, gt.tensor(target), **kw)
        loss.backward(gt.ones_like(loss) if loss.ndim else None)
        got.append((loss.detach().numpy(), x.grad.numpy()))
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_is_the_composite(dtype, reduction):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((7, 5)).astype(dtype)
    logits[1, 2] = -np.inf  # a class ruled out
    logits[2] *= 1e4  # far past exp's range
    target = np.array([0, 1, 4, -100, 2, 3, -100])
    (v, g), (cv, cg) = _ce_both(logits, target, reduction=reduction)
    assert v.dtype == dtype and g.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(v, cv, rtol=tol, atol=tol)
    np.testing.assert_allclose(g, cg, rtol=tol, atol=tol)
    assert not g[3].any() and not g[6].any()  # ignored rows get no gradient


def test_cross_entropy_edge_cases():
    # Every target ignored: a mean of nothing is 0, as the composite gives, with zero gradient.
    (v, g), (cv, cg) = _ce_both(np.ones((2, 3)), np.array([-100, -100]))
    assert v == cv == 0 and not g.any() and not cg.any()
    # An empty batch.
    (v, g), _ = _ce_both(np.ones((0, 3)), np.zeros(0, np.int64), reduction="sum")
    assert v == 0 and g.shape == (0, 3)
    # ignore_index other than -100, and a target that is out of range but ignored.
    (v, g), (cv, cg) = _ce_both(np.eye(3), np.array([0, 9, 2]), ignore_index=9)
    np.testing.assert_allclose(v, cv)
    np.testing.assert_allclose(g, cg)


def test_cross_entropy_gradient_of_gradient():
    # create_graph=True goes through the composite's derivative, which is itself differentiable.
    x = gt.tensor([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5]], dtype=np.float64, requires_grad=True)
    loss = F.cross_entropy(x, gt.tensor([2, 0]))
    (gx,) = gt.autograd.grad(loss, [x], create_graph=True)
    (gg,) = gt.autograd.grad((gx * gx).sum(), [x])
    xc = gt.tensor(x.detach().numpy(), dtype=np.float64, requires_grad=True)
    (gxc,) = gt.autograd.grad(F.nll_loss(F.log_softmax(xc, axis=1), gt.tensor([2, 0])), [xc],
                              create_graph=True)  # fmt: skip
    (ggc,) = gt.autograd.grad((gxc * gxc).sum(), [xc])
    np.testing.assert_allclose(gg.numpy(), ggc.numpy(), rtol=1e-12, atol=1e-14)


def test_cross_entropy_without_classes_says_so():
    with pytest.raises(IndexError, match=r"cross_entropy: target classes must lie in \[0, 0\)"):
        F.cross_entropy(gt.ones(2, 0), gt.tensor([-100, -100]))
