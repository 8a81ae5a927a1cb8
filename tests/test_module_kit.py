"""The module and loss kit against PyTorch: activation and loss modules (values and gradients,
every option), containers and their state dicts, module and tensor hooks (the order they fire
in, recorded in both libraries), and the in-place tensor methods (values and version checks)."""

import warnings

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
tnn = torch.nn


def _pair(shape, seed=0, lo=None, hi=None):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) if lo is None else rng.uniform(lo, hi, shape)
    return (
        gt.tensor(a, dtype=gt.float64, requires_grad=True),
        torch.tensor(a, requires_grad=True),
    )


def _close(a, b, rtol=1e-10, atol=1e-12):
    a = a.detach().numpy() if isinstance(a, gt.Tensor) else a
    b = b.detach().numpy() if isinstance(b, (torch.Tensor, gt.Tensor)) else b
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _copy_weights(mine, theirs):
    """PyTorch's parameters and buffers into ours, through our load_state_dict."""
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    mine.load_state_dict(state)


# -- activation modules --------------------------------------------------------------------------
ACTIVATIONS = [
    (nn.ReLU(), tnn.ReLU()),
    (nn.ReLU6(), tnn.ReLU6()),
    (nn.ELU(), tnn.ELU()),
    (nn.ELU(alpha=0.3), tnn.ELU(alpha=0.3)),
    (nn.SELU(), tnn.SELU()),
    # (PyTorch's CELU derivative rounds 1/alpha to float32: alpha=2 keeps it exact.)
    (nn.CELU(alpha=2.0), tnn.CELU(alpha=2.0)),
    (nn.Mish(), tnn.Mish()),
    (nn.Hardswish(), tnn.Hardswish()),
    (nn.Hardtanh(-0.5, 2.0), tnn.Hardtanh(-0.5, 2.0)),
    (nn.Softsign(), tnn.Softsign()),
    (nn.LogSigmoid(), tnn.LogSigmoid()),
    (nn.Sigmoid(), tnn.Sigmoid()),
    (nn.Tanh(), tnn.Tanh()),
    (nn.SiLU(), tnn.SiLU()),
    (nn.GELU(), tnn.GELU()),
    (nn.GELU("tanh"), tnn.GELU("tanh")),
    (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)),
    (nn.Softplus(beta=2.0, threshold=3.0), tnn.Softplus(beta=2.0, threshold=3.0)),
    (nn.GLU(), tnn.GLU()),
    (nn.GLU(dim=1), tnn.GLU(dim=1)),
    (nn.Softmax(dim=1), tnn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=-1), tnn.LogSoftmax(dim=-1)),
    (nn.Flatten(), tnn.Flatten()),
    (nn.Flatten(0, 1), tnn.Flatten(0, 1)),
    (nn.Unflatten(1, (2, 2)), tnn.Unflatten(1, (2, 2))),
    (nn.Identity(), tnn.Identity()),
]


@pytest.mark.parametrize("mine,theirs", ACTIVATIONS, ids=lambda m: repr(m))
def test_activation_modules_match_pytorch(mine, theirs):
    x, xt = _pair((3, 4, 2), lo=-5.0, hi=5.0)
    y, yt = mine(x), theirs(xt)
    _close(y, yt)
    g = np.random.default_rng(1).standard_normal(yt.shape)
    y.backward(gt.tensor(g, dtype=gt.float64))
    yt.backward(torch.from_numpy(g))
    _close(x.grad, xt.grad)


def test_hardsigmoid_is_pytorchs_to_its_float32_derivative_constant():
    # PyTorch's derivative multiplies by 1/6 rounded to float32; the op's registered twin is its
    # relu6 formula (see nn.functional), so here it is held to the function itself.
    x, xt = _pair((50,), lo=-5.0, hi=5.0)
    y, yt = nn.Hardsigmoid()(x), tnn.Hardsigmoid()(xt)
    _close(y, yt)
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad, rtol=1e-7)


def test_softmax_without_dim_takes_pytorchs_implicit_dim():
    for shape in [(5,), (2, 5), (2, 3, 4), (2, 3, 4, 5)]:
        x, xt = _pair(shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PyTorch warns of the implicit dim
            _close(nn.Softmax()(x), tnn.Softmax()(xt))
            _close(nn.LogSoftmax()(x), tnn.LogSoftmax()(xt))


@pytest.mark.parametrize("num,shape", [(1, (4, 3)), (3, (4, 3)), (3, (2, 3, 5)), (1, (6,))])
def test_prelu_learns_its_weight_as_pytorchs(num, shape):
    mine, theirs = nn.PReLU(num, init=0.1).to(gt.float64), tnn.PReLU(num, init=0.1).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.linspace(-0.5, 0.7, num, dtype=torch.float64))
    _copy_weights(mine, theirs)
    x, xt = _pair(shape)
    (mine(x) ** 2).sum().backward()
    (theirs(xt) ** 2).sum().backward()
    _close(mine.weight.grad, theirs.weight.grad)
    _close(x.grad, xt.grad)
    assert [n for n, _ in mine.named_parameters()] == ["weight"]
    assert nn.PReLU().weight.tolist() == [0.25]


def test_activation_bad_arguments_name_the_function():
    with pytest.raises(ValueError, match="glu: halving dimension must be even"):
        F.glu(gt.ones(2, 3))
    with pytest.raises(ValueError, match="prelu: weight has 2 elements"):
        F.prelu(gt.ones(4, 3), gt.ones(2))
    with pytest.raises(ValueError, match="Hardtanh: min_val cannot be greater"):
        nn.Hardtanh(1.0, -1.0)


def test_logsigmoid_is_stable_far_out():
    x = gt.tensor([-800.0, -40.0, 0.0, 40.0, 800.0], dtype=gt.float64, requires_grad=True)
    y = F.logsigmoid(x)
    y.sum().backward()
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    yt = torch.nn.functional.logsigmoid(xt)
    yt.sum().backward()
    _close(y, yt)
    _close(x.grad, xt.grad)
    assert np.isfinite(y.detach().numpy()).all()


# -- containers and state dicts ------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})
        self.act = nn.ELU()

    def forward(self, x):
        for b in self.blocks:
            x = self.act(b(x))
        return self.heads["cls"](x), self.heads["box"](x)


class TNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = tnn.ModuleList([tnn.Linear(4, 4) for _ in range(3)])
        self.heads = tnn.ModuleDict({"cls": tnn.Linear(4, 3), "box": tnn.Linear(4, 2)})
        self.act = tnn.ELU()

    def forward(self, x):
        for b in self.blocks:
            x = self.act(b(x))
        return self.heads["cls"](x), self.heads["box"](x)


def test_modulelist_moduledict_model_matches_pytorch_and_round_trips_its_state(tmp_path):
    mine, theirs = Net().to(gt.float64), TNet().double()
    assert list(mine.state_dict()) == list(theirs.state_dict())
    _copy_weights(mine, theirs)
    x, xt = _pair((5, 4))
    (a, b), (at, bt) = mine(x), theirs(xt)
    _close(a, at)
    _close(b, bt)
    ((a**2).sum() + b.sum()).backward()
    ((at**2).sum() + bt.sum()).backward()
    for (name, p), (tname, tp) in zip(mine.named_parameters(), theirs.named_parameters()):
        assert name == tname
        _close(p.grad, tp.grad)
    gt.save(mine.state_dict(), tmp_path / "net.gt")
    again = Net().to(gt.float64)
    again.load_state_dict(gt.load(tmp_path / "net.gt"))
    assert list(again.state_dict()) == list(mine.state_dict())
    for u, v in zip(again(x), mine(x)):
        _close(u, v, rtol=0, atol=0)


def test_modulelist_behaves_as_a_list():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.ELU()
    ml = nn.ModuleList([a, b])
    ml.append(c)
    assert len(ml) == 3 and list(ml) == [a, b, c] and ml[-1] is c
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "ReLU", "Tanh", "ELU"]
    del ml[1]
    assert [k for k, _ in ml.named_children()] == ["0", "1", "2"] and ml[1] is b
    assert list(ml[1:]) == [b, c] and isinstance(ml[1:], nn.ModuleList)
    ml[0] = a
    ml += [nn.Linear(2, 2)]
    assert len(ml) == 4 and ml.pop() is not None and len(ml) == 3
    assert [n for n, _ in nn.ModuleList([nn.Linear(2, 2)]).named_parameters()] == [
        "0.weight",
        "0.bias",
    ]
    with pytest.raises(IndexError, match="ModuleList: index 3 is out of range"):
        ml[3]
    with pytest.raises(TypeError, match="must be a Module"):
        ml.append(3)


def test_moduledict_behaves_as_a_dict():
    md = nn.ModuleDict([("a", nn.ReLU()), ("b", nn.Tanh())])
    md["c"] = nn.ELU()
    assert list(md) == ["a", "b", "c"] and list(md.keys()) == ["a", "b", "c"] and "b" in md
    assert md.pop("b").__class__ is nn.Tanh and list(md) == ["a", "c"]
    del md["a"]
    assert len(md) == 1 and not hasattr(md, "a")
    with pytest.raises(KeyError, match="no module named 'zz'"):
        md["zz"]
    with pytest.raises(KeyError, match="attribute 'keys' already exists"):
        md["keys"] = nn.ReLU()
    md.clear()
    assert len(md) == 0 and md.state_dict() == {}


def test_module_traversal_and_freezing():
    net = Net()
    assert net.get_submodule("heads.cls") is net.heads["cls"]
    assert net.get_parameter("blocks.1.bias") is net.blocks[1].bias
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        net.get_submodule("blocks.nope")
    names = [n for n, _ in net.named_modules()]
    assert names == [n for n, _ in TNet().named_modules()]
    net.heads.requires_grad_(False)
    assert [p.requires_grad for p in net.parameters()] == [True] * 6 + [False] * 4
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 5


# -- losses --------------------------------------------------------------------------------------
W3 = np.array([0.2, 1.0, 3.0])


def _loss_case(mine, theirs, x, xt, t, tt):
    y, yt = mine(x, t), theirs(xt, tt)
    _close(y, yt)
    g = np.random.default_rng(2).standard_normal(yt.shape)
    y.backward(gt.tensor(g, dtype=gt.float64))
    yt.backward(torch.from_numpy(g))
    _close(x.grad, xt.grad)


CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"ignore_index": 1},
    {"weight": W3},
    {"weight": W3, "reduction": "none", "ignore_index": 0},
    {"weight": W3, "reduction": "sum"},
    {"label_smoothing": 0.15},
    {"label_smoothing": 0.15, "reduction": "none", "ignore_index": 2},
    {"label_smoothing": 0.3, "weight": W3},
    {"label_smoothing": 0.3, "weight": W3, "reduction": "sum", "ignore_index": 1},
]


def _ce_modules(kw):
    w = kw.get("weight")
    mine = nn.CrossEntropyLoss(**{**kw, "weight": None if w is None else gt.tensor(w, gt.float64)})
    theirs = tnn.CrossEntropyLoss(**{**kw, "weight": None if w is None else torch.tensor(w)})
    return mine, theirs


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (3,)], ids=str)
@pytest.mark.parametrize("kw", CE_OPTIONS, ids=str)
def test_cross_entropy_loss_with_class_targets_matches_pytorch(kw, shape):
    x, xt = _pair(shape)
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = np.random.default_rng(5).integers(0, 3, tshape)
    _loss_case(*_ce_modules(kw), x, xt, gt.tensor(t), torch.from_numpy(t))


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (3,)], ids=str)
@pytest.mark.parametrize(
    "kw", [o for o in CE_OPTIONS if "ignore_index" not in o], ids=str
)  # ignore_index means nothing to probabilities
def test_cross_entropy_loss_with_probability_targets_matches_pytorch(kw, shape):
    x, xt = _pair(shape)
    p = np.random.default_rng(6).uniform(0, 1, shape)
    p /= p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    t, tt = gt.tensor(p, dtype=gt.float64, requires_grad=True), torch.tensor(p, requires_grad=True)
    _loss_case(*_ce_modules(kw), x, xt, t, tt)
    _close(t.grad, tt.grad)  # the targets' gradient too


def test_plain_cross_entropy_keeps_the_fused_op_and_options_take_the_composite():
    x = gt.randn(4, 3, 2, requires_grad=True)
    t = gt.tensor([[0, 1], [2, 2], [1, 0], [0, 0]])
    assert repr(F.cross_entropy(x, t).grad_fn) == "<cross_entropyBackward>"
    assert repr(F.cross_entropy(x[:, :, 0], t[:, 0]).grad_fn) == "<cross_entropyBackward>"
    assert repr(F.cross_entropy(x, t, label_smoothing=0.1).grad_fn) != "<cross_entropyBackward>"
    w = gt.tensor([1.0, 2.0, 3.0])
    assert repr(F.cross_entropy(x, t, w).grad_fn) != "<cross_entropyBackward>"


def test_cross_entropy_errors_name_it():
    with pytest.raises(ValueError, match=r"cross_entropy: expected input \(N, C\)"):
        F.cross_entropy(gt.ones(2, 3, 4), gt.tensor([0, 1]))
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must lie in"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"cross_entropy: weight must have shape \(3,\)"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0, 1]), gt.ones(4))
    with pytest.raises(IndexError, match=r"cross_entropy: target classes must lie in \[0, 3\)"):
        F.cross_entropy(gt.ones(2, 3), gt.tensor([0, 5]), gt.ones(3))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"weight": W3},
        {"weight": W3, "reduction": "none"},
        {"ignore_index": 2},
        {"reduction": "sum"},
    ],
    ids=str,
)
def test_nll_loss_module_on_spatial_inputs_matches_pytorch(kw):
    x, xt = _pair((2, 3, 4, 2))
    t = np.random.default_rng(7).integers(0, 3, (2, 4, 2))
    w = kw.get("weight")
    mine = nn.NLLLoss(**{**kw, "weight": None if w is None else gt.tensor(w, gt.float64)})
    theirs = tnn.NLLLoss(**{**kw, "weight": None if w is None else torch.tensor(w)})
    y = mine(F.log_softmax(x, 1), gt.tensor(t))
    yt = theirs(torch.log_softmax(xt, 1), torch.from_numpy(t))
    _close(y, yt)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    _close(x.grad, xt.grad)


PAIR_LOSSES = [
    (nn.L1Loss(), tnn.L1Loss()),
    (nn.L1Loss(reduction="none"), tnn.L1Loss(reduction="none")),
    (nn.MSELoss(reduction="sum"), tnn.MSELoss(reduction="sum")),
    (nn.SmoothL1Loss(), tnn.SmoothL1Loss()),
    (nn.SmoothL1Loss(beta=0.3, reduction="none"), tnn.SmoothL1Loss(beta=0.3, reduction="none")),
    (nn.SmoothL1Loss(beta=0.0), tnn.SmoothL1Loss(beta=0.0)),
    (nn.HuberLoss(), tnn.HuberLoss()),
    (nn.HuberLoss("sum", delta=0.4), tnn.HuberLoss("sum", delta=0.4)),
    (nn.KLDivLoss(reduction="batchmean"), tnn.KLDivLoss(reduction="batchmean")),
    (
        nn.KLDivLoss(reduction="sum", log_target=True),
        tnn.KLDivLoss(reduction="sum", log_target=True),
    ),
    (nn.KLDivLoss(reduction="none"), tnn.KLDivLoss(reduction="none")),
    (nn.KLDivLoss(), tnn.KLDivLoss()),  # "mean", of which PyTorch warns
]


@pytest.mark.parametrize("mine,theirs", PAIR_LOSSES, ids=lambda m: repr(m))
def test_pairwise_losses_match_pytorch_in_value_and_both_gradients(mine, theirs):
    x, xt = _pair((4, 5), seed=1)
    t, tt = _pair((4, 5), seed=2, lo=0.05, hi=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _loss_case(mine, theirs, x, xt, t, tt)
    _close(t.grad, tt.grad)


@pytest.mark.parametrize("weight", [None, np.array([[0.5], [2.0], [1.0]])], ids=["none", "w"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_loss_matches_pytorch(weight, reduction):
    x, xt = _pair((3, 4), lo=0.02, hi=0.98)
    t, tt = _pair((3, 4), seed=3, lo=0.0, hi=1.0)
    mine = nn.BCELoss(
        None if weight is None else gt.tensor(weight, gt.float64), reduction=reduction
    )
    theirs = tnn.BCELoss(None if weight is None else torch.tensor(weight), reduction=reduction)
    _loss_case(mine, theirs, x, xt, t, tt)
    _close(t.grad, tt.grad)


def test_bce_clamps_its_logs_at_minus_100_as_pytorch():
    p = gt.tensor([0.0, 1.0, 0.5], dtype=gt.float64, requires_grad=True)
    y = F.binary_cross_entropy(p, gt.tensor([1.0, 0.0, 1.0], dtype=gt.float64), reduction="none")
    yt = torch.nn.functional.binary_cross_entropy(
        torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64),
        torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64),
        reduction="none",
    )
    _close(y, yt)
    y.sum().backward()
    assert np.isfinite(p.grad.numpy()).all()
    with pytest.raises(
        ValueError, match=r"binary_cross_entropy: input values must lie in \[0, 1\]"
    ):
        F.binary_cross_entropy(gt.tensor([1.5]), gt.tensor([1.0]))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"pos_weight": np.array([0.5, 1.0, 2.0, 4.0])},
        {"pos_weight": np.array([3.0]), "weight": np.array([1.0, 0.0, 2.0, 0.5])},
        {"weight": np.array([[2.0], [0.5], [1.0]]), "reduction": "none"},
        {"pos_weight": np.array([0.5, 1.0, 2.0, 4.0]), "reduction": "sum"},
    ],
    ids=str,
)
def test_bce_with_logits_loss_matches_pytorch(kw):
    x, xt = _pair((3, 4), lo=-30.0, hi=30.0)
    t, tt = _pair((3, 4), seed=3, lo=0.0, hi=1.0)
    conv = {k: v for k, v in kw.items() if k != "reduction"}
    mine = nn.BCEWithLogitsLoss(**{k: gt.tensor(v, gt.float64) for k, v in conv.items()},
                                reduction=kw.get("reduction", "mean"))  # fmt: skip
    theirs = tnn.BCEWithLogitsLoss(**{k: torch.tensor(v) for k, v in conv.items()},
                                   reduction=kw.get("reduction", "mean"))  # fmt: skip
    _loss_case(mine, theirs, x, xt, t, tt)
    _close(t.grad, tt.grad)


def test_loss_weights_are_buffers_in_the_state_dict_as_pytorchs():
    mine = nn.CrossEntropyLoss(gt.tensor(W3))
    assert list(mine.state_dict()) == list(tnn.CrossEntropyLoss(torch.tensor(W3)).state_dict())
    b = nn.BCEWithLogitsLoss(pos_weight=gt.ones(3))
    assert list(b.state_dict()) == ["pos_weight"]
    with pytest.raises(ValueError, match="KLDivLoss: reduction must be one of"):
        nn.KLDivLoss(reduction="avg")


def test_losses_in_float32_keep_float32():
    x = gt.randn(4, 3, requires_grad=True)
    t = gt.tensor([0, 2, 1, 1])
    for loss in (
        F.cross_entropy(x, t, np.array([1.0, 2.0, 3.0]), label_smoothing=0.1),
        F.nll_loss(F.log_softmax(x, 1), t, np.array([1.0, 2.0, 3.0])),
        F.binary_cross_entropy_with_logits(x, gt.ones(4, 3), pos_weight=np.ones(3)),
        F.kl_div(x, gt.ones(4, 3), reduction="batchmean"),
    ):
        assert loss.dtype == gt.float32


# -- hooks ---------------------------------------------------------------------------------------
def _hooked_run(lib, log, x_grad=True):
    """A model with every kind of hook on its modules and tensors; its run appends to log."""
    L = tnn if lib is torch else nn
    (lib.manual_seed if lib is torch else gt.manual_seed)(0)
    model = L.Sequential(L.Linear(3, 4), L.Tanh(), L.Linear(4, 2))
    names = {id(m): n or "model" for n, m in model.named_modules()}
    for m in model.modules():
        name = names[id(m)]
        m.register_forward_pre_hook(lambda mod, args, n=name: log.append(f"pre {n}"))
        m.register_forward_hook(lambda mod, args, out, n=name: log.append(f"fwd {n}"))
        m.register_full_backward_hook(
            lambda mod, gi, go, n=name: log.append(
                f"bwd {n} in={[g is not None for g in gi]} out={[g is not None for g in go]}"
            )
        )
    x = lib.ones(5, 3)
    if x_grad:  # else the first layer's and the model's backward hooks fire from their outputs
        x.requires_grad_()
        x.register_hook(lambda g: log.append("x"))
    h = model[0](x)
    h.register_hook(lambda g: log.append("h"))
    y = model[2](model[1](h))
    y.register_hook(lambda g: log.append("y"))
    model(x).sum().backward()  # the whole model, hooked as a container
    log.append("--")
    y.sum().backward()


@pytest.mark.parametrize("x_grad", [True, False])
def test_module_and_tensor_hooks_fire_in_pytorchs_order(x_grad):
    ours, theirs = [], []
    _hooked_run(gt, ours, x_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the hooks fire from outputs: it says so
        _hooked_run(torch, theirs, x_grad)
    assert len(ours) > 20 and ours == theirs


def test_forward_hooks_replace_arguments_and_outputs_and_handles_remove_them():
    lin = nn.Linear(2, 2)
    x = gt.ones(1, 2)
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: out + 100)
    y = lin(x)
    np.testing.assert_allclose(y.detach().numpy(), lin.bias.detach().numpy()[None] + 100)
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(
        lin(x).detach().numpy(), (x @ lin.weight.T + lin.bias).detach().numpy()
    )
    with lin.register_forward_hook(lambda m, a, o: o * 0):
        assert not lin(x).detach().numpy().any()
    assert lin(x).detach().numpy().any()


def test_full_backward_hook_gets_pytorchs_gradients_and_can_replace_them():
    theirs_lin, mine_lin = tnn.Linear(3, 2).double(), nn.Linear(3, 2).to(gt.float64)
    _copy_weights(mine_lin, theirs_lin)
    results = []
    for lin, lib in ((mine_lin, gt), (theirs_lin, torch)):
        got = {}

        def hook(m, gi, go, got=got):
            got.update(gi=gi[0].detach().numpy().copy(), go=go[0].detach().numpy().copy())
            return (gi[0] * 2,)

        lin.register_full_backward_hook(hook)
        x = lib.ones(4, 3, dtype=lib.float64, requires_grad=True)
        (lin(x * 1.5) ** 2).sum().backward()
        got["x"] = x.grad.numpy()
        got["w"] = lin.weight.grad.numpy()
        results.append(got)
    for k in ("gi", "go", "x", "w"):
        _close(results[0][k], results[1][k])


def test_tensor_hooks():
    x = gt.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    h = x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * 3 + x * x).sum().backward()  # x used twice: its hook sees the whole gradient, once
    assert len(calls) == 1 and calls[0].tolist() == [5.0, 7.0]
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert len(calls) == 1 and x.grad.tolist() == [3.0, 3.0]
    # A non-leaf's hook changes what flows on, and what retain_grad keeps.
    x.grad = None
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    y.sum().backward()
    assert y.grad.tolist() == [10.0, 10.0] and x.grad.tolist() == [20.0, 20.0]
    # grad() and create_graph see hooks too.
    z = x * x
    z.register_hook(lambda g: g * 3)
    (gx,) = gt.grad(z.sum(), x, create_graph=True)
    assert gx.tolist() == [6.0, 12.0]
    (ggx,) = gt.grad(gx.sum(), x)
    assert ggx.tolist() == [6.0, 6.0]
    # A leaf's hooks change what grad() returns for it; a leaf grad() does not ask for is left be.
    other = gt.tensor([1.0, 1.0], requires_grad=True)
    other.register_hook(lambda g: calls.append("other"))
    with x.register_hook(lambda g: g * 2):
        (gx,) = gt.grad((x * x * other).sum(), x)
    assert gx.tolist() == [4.0, 8.0] and "other" not in map(str, calls) and other.grad is None
    with pytest.raises(RuntimeError, match="register_hook: cannot register a hook on a tensor"):
        gt.ones(2).register_hook(lambda g: g)
    w = x * 1
    w.register_hook(lambda g: gt.ones(3))
    with pytest.raises(RuntimeError, match="register_hook: a hook returned a gradient of shape"):
        w.sum().backward()


def test_tensor_hooks_against_pytorch_on_a_shared_leaf():
    def run(lib):
        x = lib.tensor([0.5, -1.0, 2.0], dtype=lib.float64, requires_grad=True)
        x.register_hook(lambda g: g * g)
        a = x.exp()
        a.register_hook(lambda g: g + 1)
        (a * x).sum().backward()
        return x.grad

    _close(run(gt), run(torch))


# -- in-place methods ----------------------------------------------------------------------------
INPLACE = [
    ("add_", lambda t, o: t.add_(o, alpha=2.5)),
    ("sub_", lambda t, o: t.sub_(o, alpha=0.5)),
    ("mul_", lambda t, o: t.mul_(o)),
    ("div_", lambda t, o: t.div_(o)),
    ("pow_", lambda t, o: t.pow_(2)),
    ("clamp_", lambda t, o: t.clamp_(-0.3, 0.4)),
    ("clamp_min", lambda t, o: t.clamp_(min=0.1)),
    ("neg_", lambda t, o: t.neg_()),
    ("exp_", lambda t, o: t.exp_()),
    ("copy_", lambda t, o: t.copy_(o)),
    ("copy_broadcast", lambda t, o: t.copy_(o[:1])),
    ("fill_", lambda t, o: t.fill_(0.7)),
    ("zero_", lambda t, o: t.zero_()),
]


@pytest.mark.parametrize("name,fn", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_methods_match_pytorch_in_a_graph(name, fn):
    a, at = _pair((3, 4))
    o, ot = _pair((3, 4), seed=4, lo=0.5, hi=2.0)
    y, yt = a * 1.5, at * 1.5  # a non-leaf, which may change in place
    r = fn(y, o)
    fn(yt, ot)
    assert r is y and y._version[0] == 1
    _close(y, yt)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    _close(a.grad, at.grad)
    _close(
        np.zeros((3, 4)) if o.grad is None else o.grad,
        np.zeros((3, 4)) if ot.grad is None else ot.grad,
    )


@pytest.mark.parametrize("name,fn", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_methods_refuse_a_leaf_that_requires_grad(name, fn):
    a = gt.ones(3, 4, requires_grad=True)
    symbol = name.split("_")[0] + "_"
    with pytest.raises(RuntimeError, match=f"{symbol}: a leaf tensor that requires grad"):
        fn(a, gt.ones(3, 4))
    with gt.no_grad():
        fn(a, gt.ones(3, 4))  # allowed under no_grad, as PyTorch
    assert a._version[0] == 1 and a.requires_grad and a.grad_fn is None


@pytest.mark.parametrize("name,fn", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_methods_catch_a_stale_saved_value_in_backward(name, fn):
    a = gt.ones(3, 4, requires_grad=True)
    y = a * 2
    z = y * y  # saves y
    fn(y, gt.full((3, 4), 2.0))
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


def test_inplace_fills_and_draws_under_no_grad():
    w = gt.empty(200, 50)
    with gt.no_grad():
        w.uniform_(-2, 3)
    v = w.numpy()
    assert v.min() >= -2 and v.max() < 3 and abs(v.mean() - 0.5) < 0.1
    w.normal_(1.0, 0.5)
    assert abs(w.numpy().mean() - 1.0) < 0.05 and abs(w.numpy().std() - 0.5) < 0.05
    assert w._version[0] == 2
    p = gt.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="uniform_: a leaf tensor that requires grad"):
        p.uniform_()
    with pytest.raises(TypeError, match="normal_: only floating-point tensors"):
        gt.zeros(3, dtype=gt.int64).normal_()
    i = gt.zeros(3, dtype=gt.int64)
    i.fill_(2.7)
    i.add_(gt.tensor([1, 2, 3]))
    assert i.tolist() == [3, 4, 5]  # as PyTorch: the float fill is truncated into the ints
    i.copy_(gt.tensor([1.9, -1.9, 0.5]))
    assert (
        i.tolist()
        == torch.zeros(3, dtype=torch.int64).copy_(torch.tensor([1.9, -1.9, 0.5])).tolist()
    )
    with pytest.raises(ValueError, match="fill_: the value must be a number or a 0-d tensor"):
        i.fill_(gt.ones(2))


INPLACE = ["relu", "relu6", "leaky_relu", "hardtanh", "elu", "selu", "celu", "silu", "mish",
           "hardswish", "hardsigmoid"]  # fmt: skip


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_activations_write_into_their_input_as_pytorch(name):
    a = np.random.default_rng(3).standard_normal((3, 4)) * 3
    x = gt.tensor(a, dtype=gt.float64, requires_grad=True)
    xt = torch.tensor(a, requires_grad=True)
    h, ht = x * 1.5, xt * 1.5
    y = getattr(F, name)(h, inplace=True)
    yt = getattr(torch.nn.functional, name)(ht, inplace=True)
    assert y is h  # the input itself, changed
    np.testing.assert_allclose(h.detach().numpy(), ht.detach().numpy(), rtol=1e-12, atol=1e-12)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    # PyTorch's hardsigmoid derivative is 1/6 rounded to float32 (see above)
    rtol = 1e-7 if name == "hardsigmoid" else 1e-10
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=1e-12)
    with pytest.raises(RuntimeError, match=f"{name}_: a leaf tensor that requires grad"):
        getattr(F, name)(x, inplace=True)


def test_inplace_modules_and_dropout():
    relu = nn.ReLU(inplace=True)
    assert repr(relu) == "ReLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    h = gt.tensor([-1.0, 2.0])
    assert relu(h) is h and h.tolist() == [0.0, 2.0]
    gt.manual_seed(0)
    d = nn.Dropout(0.5, inplace=True)
    h = gt.ones(64)
    out = d(h)
    assert out is h and set(h.tolist()) <= {0.0, 2.0} and 0 < h.tolist().count(0.0) < 64
    d.eval()
    assert d(h) is h
