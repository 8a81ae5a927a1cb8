"""Attention against PyTorch: scaled_dot_product_attention (masks, scale, batched shapes, dropout),
MultiheadAttention and TransformerEncoderLayer with copied weights (outputs, attention weights,
gradients of inputs and parameters), errors, and the tiny transformer example."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import gradtensor as gt
import gradtensor.nn.functional as F
from gradtensor import nn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TF = torch.nn.functional
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pair(shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return gt.tensor(a, dtype=gt.float64, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(a, b, what="", rtol=1e-10, atol=1e-12):
    a = a.detach().numpy() if hasattr(a, "detach") else a
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=rtol, atol=atol, err_msg=what)


def _backward_both(y, yt, seed=9):
    v = np.random.default_rng(seed).standard_normal(tuple(yt.shape))
    y.backward(gt.tensor(v, dtype=gt.float64))
    yt.backward(torch.from_numpy(v))


# -- scaled_dot_product_attention -------------------------------------------------------------

_DEAD = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)  # row 1 sees nothing
_INF = np.where(_DEAD, 0.0, -np.inf) + np.random.default_rng(3).standard_normal((3, 5))

SDPA = [
    ((2, 3, 4), (2, 5, 4), (2, 5, 6), {}),
    ((2, 3, 4), (2, 5, 4), (2, 5, 6), dict(attn_mask=_DEAD)),
    ((2, 3, 4), (2, 5, 4), (2, 5, 6), dict(attn_mask=_INF)),
    ((2, 3, 4), (2, 5, 4), (2, 5, 6), dict(attn_mask="float")),
    ((2, 3, 4), (2, 5, 4), (2, 5, 6), dict(is_causal=True)),
    ((6, 4), (3, 4), (3, 2), dict(is_causal=True)),  # L > S: the first rows see one key
    ((2, 4, 3), (2, 4, 3), (2, 4, 5), dict(is_causal=True, scale=0.7)),
    ((3, 4), (5, 4), (5, 2), dict(scale=2.5)),
    ((2, 3, 4, 8), (1, 3, 6, 8), (2, 1, 6, 5), dict(attn_mask=np.tril(np.ones((4, 6), bool)))),
    ((2, 1, 4, 8), (3, 6, 8), (3, 6, 5), dict(attn_mask="float4")),
]


@pytest.mark.parametrize("qs,ks,vs,kw", SDPA)
def test_sdpa_values_and_gradients_match_pytorch(qs, ks, vs, kw):
    (q, qt), (k, kt), (v, vt) = _pair(qs, 0), _pair(ks, 1), _pair(vs, 2)
    kw, kwt, leaves = dict(kw), dict(kw), []
    if isinstance(kw.get("attn_mask"), str):  # a float mask that receives a gradient too
        m, mt = _pair((3, 1, 6) if kw["attn_mask"] == "float4" else (3, 5), 4)  # broadcast
        kw["attn_mask"], kwt["attn_mask"], leaves = m, mt, [(m, mt)]
    elif isinstance(kw.get("attn_mask"), np.ndarray):
        kwt["attn_mask"] = torch.from_numpy(kw["attn_mask"])
    y = F.scaled_dot_product_attention(q, k, v, **kw)
    yt = TF.scaled_dot_product_attention(qt, kt, vt, **kwt)
    _close(y, yt, "output")
    _backward_both(y, yt)
    for name, (a, b) in zip("qkvm", [(q, qt), (k, kt), (v, vt)] + leaves):
        _close(a.grad, b.grad, f"gradient of {name}")


def test_sdpa_fully_masked_rows_give_zero_and_no_nan():
    q, k, v = gt.randn(3, 4, requires_grad=True), gt.randn(5, 4), gt.randn(5, 2)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=_DEAD)
    assert np.all(y.detach().numpy()[1] == 0) and np.isfinite(y.detach().numpy()).all()
    y.sum().backward()
    assert np.all(q.grad.detach().numpy()[1] == 0) and np.isfinite(q.grad.detach().numpy()).all()


def test_sdpa_float32_matches_pytorch():
    (q, qt), (k, kt), (v, vt) = _pair((2, 4, 8), 0), _pair((2, 4, 8), 1), _pair((2, 4, 3), 2)
    q, k, v = (t.detach().astype(gt.float32) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    yt = TF.scaled_dot_product_attention(qt.float(), kt.float(), vt.float(), is_causal=True)
    assert y.dtype == gt.float32
    _close(y, yt, rtol=1e-5, atol=1e-6)


def test_sdpa_dropout_keeps_one_mask_for_forward_and_backward():
    gt.manual_seed(0)
    L = S = 64
    q, k = gt.randn(L, 4) * 0.1, gt.randn(S, 4) * 0.1
    v = gt.tensor(np.eye(S), requires_grad=True)  # the output is the (dropped) weights
    p = 0.3
    w = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
    w0 = F.scaled_dot_product_attention(q, k, v.detach()).detach().numpy()
    wd = w.detach().numpy()
    kept = wd != 0
    assert abs(1 - kept.mean() - p) < 0.03  # about p of the weights dropped
    np.testing.assert_allclose(wd[kept], w0[kept] / (1 - p), rtol=1e-6)  # the rest scaled
    assert abs(wd.sum(-1).mean() - 1) < 0.03  # rows still sum to 1 on average
    w.sum().backward()  # d/dv of sum(W_dropped @ v) is the column sums of W_dropped
    np.testing.assert_allclose(
        v.grad.detach().numpy(), np.repeat(wd.sum(0)[:, None], S, 1), rtol=1e-6
    )
    w2 = F.scaled_dot_product_attention(q, k, v.detach(), dropout_p=p).detach().numpy()
    assert not np.array_equal(w2 != 0, kept)  # a fresh mask per call


@pytest.mark.parametrize(
    "args,kw,match",
    [
        (((2, 3, 4), (2, 5, 3), (2, 5, 6)), {}, r"query \(2, 3, 4\) and key \(2, 5, 3\) differ"),
        (((2, 3, 4), (2, 5, 4), (2, 4, 6)), {}, r"key \(2, 5, 4\) and value \(2, 4, 6\) differ"),
        (((3, 4), (5, 4), (5, 2)), dict(attn_mask=np.ones((4, 5), bool)), "attn_mask of shape"),
        (((3, 4), (5, 4), (5, 2)), dict(dropout_p=1.5), "dropout_p must be a probability"),
        (((3, 4), (5, 4), (5, 2)), dict(attn_mask=np.ones((3, 5), int)), "attn_mask must be bool"),
    ],
)
def test_sdpa_errors_name_the_op(args, kw, match):
    q, k, v = (gt.randn(*s) for s in args)
    with pytest.raises((ValueError, TypeError), match="^scaled_dot_product_attention: " + match):
        F.scaled_dot_product_attention(q, k, v, **kw)


# -- MultiheadAttention ----------------------------------------------------------------------


def _copy(m, tm):
    tm.double().eval()
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert sorted(sd) == sorted(m.state_dict())
    for key, val in sd.items():
        assert tuple(m.state_dict()[key].shape) == val.shape, key
    m.load_state_dict(sd)
    m.to(dtype=gt.float64).eval()


def _params_close(m, tm, what):
    named = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        _close(p.grad, named[name].grad, f"{what}: gradient of {name}", rtol=1e-9, atol=1e-11)
    assert sorted(dict(m.named_parameters())) == sorted(named)


MHA = [
    (dict(), dict(), 3),
    (dict(batch_first=True), dict(), 3),
    (dict(batch_first=True, kdim=3, vdim=5), dict(), 3),
    (dict(bias=False), dict(average_attn_weights=False), 3),
    (dict(batch_first=True), dict(key_padding_mask="bool"), 3),
    (dict(), dict(key_padding_mask="bool", attn_mask="causal"), 3),
    (dict(), dict(key_padding_mask="float", attn_mask="heads"), 3),
    (dict(batch_first=True), dict(attn_mask="heads", average_attn_weights=False), 3),
    (dict(), dict(attn_mask="causal", is_causal=True, need_weights=False), 3),
    (dict(), dict(key_padding_mask="bool"), 2),  # unbatched
    (dict(), dict(attn_mask="heads"), 2),  # unbatched, a (H, L, S) mask
]


@pytest.mark.parametrize("ctor,call,ndim", MHA)
def test_multihead_attention_matches_pytorch(ctor, call, ndim):
    E, H, N, L, S = 8, 2, 2, 4, 5
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, **ctor)
    m = nn.MultiheadAttention(E, H, **ctor)
    _copy(m, tm)
    bf = ctor.get("batch_first", False)
    shape = (lambda n, d: (N, n, d) if bf else (n, N, d)) if ndim == 3 else (lambda n, d: (n, d))
    (q, qt) = _pair(shape(L, E), 0)
    (k, kt) = _pair(shape(S, ctor.get("kdim", E)), 1)
    (v, vt) = _pair(shape(S, ctor.get("vdim", E)), 2)
    kw, kwt = dict(call), dict(call)
    rng = np.random.default_rng(5)
    kpm = {"bool": rng.random((N, S)) < 0.3, "float": rng.standard_normal((N, S))}
    kpm["bool"][:, 0] = False  # no row fully masked (PyTorch gives NaN there with weights)
    masks = {
        "causal": np.triu(np.ones((L, S), bool), 1),
        "heads": rng.standard_normal((N * H if ndim == 3 else H, L, S)),
    }
    if "key_padding_mask" in kw:
        a = kpm[kw["key_padding_mask"]]
        a = a if ndim == 3 else a[0]
        kw["key_padding_mask"], kwt["key_padding_mask"] = a, torch.from_numpy(a)
    if "attn_mask" in kw:
        a = masks[kw["attn_mask"]]
        kw["attn_mask"], kwt["attn_mask"] = a, torch.from_numpy(a)
    y, w = m(q, k, v, **kw)
    yt, wt = tm(qt, kt, vt, **kwt)
    _close(y, yt, "attn_output")
    if wt is None:
        assert w is None
    else:
        _close(w, wt, "attn_weights")
    _backward_both(y, yt)
    for name, (a, b) in zip("qkv", [(q, qt), (k, kt), (v, vt)]):
        _close(a.grad, b.grad, f"gradient of {name}", rtol=1e-9, atol=1e-11)
    _params_close(m, tm, "MultiheadAttention")


def test_multihead_attention_initial_parameters_are_pytorchs():
    gt.manual_seed(0)
    m = nn.MultiheadAttention(12, 3)
    bound = math.sqrt(6 / (12 + 36))  # xavier_uniform_ over the (3E, E) in_proj_weight
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    assert m.out_proj.weight.shape == (12, 12) and m.in_proj_weight.shape == (36, 12)
    mk = nn.MultiheadAttention(12, 3, kdim=5, vdim=7)
    assert mk.in_proj_weight is None and mk.k_proj_weight.shape == (12, 5)
    assert mk.v_proj_weight.shape == (12, 7)


def test_multihead_attention_dropout_applies_in_training_only():
    gt.manual_seed(1)
    m = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = gt.randn(2, 6, 8)
    w_train = m(x, x, x)[1].detach().numpy()
    m.eval()
    w_eval = m(x, x, x)[1].detach().numpy()
    np.testing.assert_allclose(w_eval.sum(-1), 1, rtol=1e-5)
    assert not np.allclose(w_train, w_eval)


def test_multihead_attention_errors_name_the_module():
    with pytest.raises(ValueError, match="^MultiheadAttention: embed_dim 10 is not divisible"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    x = gt.randn(2, 4, 8)
    with pytest.raises(ValueError, match="^MultiheadAttention: key .* and value .* same"):
        m(x, gt.randn(2, 5, 8), gt.randn(2, 6, 8))
    with pytest.raises(ValueError, match=r"^MultiheadAttention: attn_mask of shape \(3, 4\)"):
        m(x, x, x, attn_mask=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match=r"^MultiheadAttention: key_padding_mask of shape \(4,"):
        m(x, x, x, key_padding_mask=np.zeros((4, 2), bool))
    with pytest.raises(ValueError, match="^MultiheadAttention: query has 6 features"):
        m(gt.randn(2, 4, 6), x, x)
    with pytest.raises(ValueError, match="^MultiheadAttention: is_causal=True .* needs"):
        m(x, x, x, is_causal=True)


# -- TransformerEncoderLayer -----------------------------------------------------------------

TEL = [
    dict(),
    dict(norm_first=True),
    dict(batch_first=True, activation="gelu"),
    dict(batch_first=True, norm_first=True, bias=False),
]


@pytest.mark.parametrize("ctor", TEL)
@pytest.mark.parametrize("masks", ["none", "causal", "padding"])
def test_transformer_encoder_layer_matches_pytorch(ctor, masks):
    E, H, N, L = 8, 2, 3, 5
    torch.manual_seed(0)
    tm = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, **ctor)
    m = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, **ctor)
    _copy(m, tm)
    bf = ctor.get("batch_first", False)
    x, xt = _pair((N, L, E) if bf else (L, N, E))
    kw, kwt = {}, {}
    if masks == "causal":
        c = np.triu(np.ones((L, L), bool), 1)
        kw = dict(src_mask=c, is_causal=True)
        kwt = dict(src_mask=torch.from_numpy(c), is_causal=True)
    elif masks == "padding":
        pad = np.zeros((N, L), bool)
        pad[0, 3:] = pad[2, 1:] = True
        kw, kwt = dict(src_key_padding_mask=pad), dict(src_key_padding_mask=torch.from_numpy(pad))
    y, yt = m(x, **kw), tm(xt, **kwt)
    _close(y, yt, "output", rtol=1e-9, atol=1e-11)
    _backward_both(y, yt)
    _close(x.grad, xt.grad, "gradient of src", rtol=1e-9, atol=1e-11)
    _params_close(m, tm, "TransformerEncoderLayer")


def test_transformer_encoder_layer_float32_and_dropout():
    torch.manual_seed(0)
    tm = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=True).eval()
    m = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=True).eval()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    causal = np.triu(np.ones((5, 5), bool), 1)
    y = m(gt.tensor(x), src_mask=causal)
    with torch.no_grad():
        yt = tm(torch.from_numpy(x), src_mask=torch.from_numpy(causal))
    assert y.dtype == gt.float32
    _close(y, yt, "float32 output", rtol=1e-4, atol=1e-5)
    gt.manual_seed(0)
    y1 = m.train()(gt.tensor(x)).detach().numpy()
    y2 = m(gt.tensor(x)).detach().numpy()
    y3 = m.eval()(gt.tensor(x)).detach().numpy()
    assert not np.allclose(y1, y2) and not np.allclose(y1, y3)  # dropout only when training
    np.testing.assert_allclose(y3, m(gt.tensor(x)).detach().numpy())


def test_transformer_encoder_layer_errors():
    with pytest.raises(ValueError, match="^TransformerEncoderLayer: activation must be"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="^MultiheadAttention: embed_dim 8 is not divisible"):
        nn.TransformerEncoderLayer(8, 3)


# -- the tiny transformer example -----------------------------------------------------------


def test_tiny_transformer_example_learns_in_seconds():
    script = os.path.join(ROOT, "examples", "tiny_transformer.py")
    out = subprocess.run(
        [sys.executable, script, "--seconds", "3", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.returncode == 0, out.stderr
    losses = [float(line.split()[-1]) for line in out.stdout.splitlines() if " loss " in line]
    assert len(losses) >= 2, out.stdout
    assert losses[-1] < losses[0] - 0.3, out.stdout  # from ~ln(vocab) clearly downwards
    assert "sample before" in out.stdout and "sample after" in out.stdout
