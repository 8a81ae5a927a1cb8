"""Linear algebra held to NumPy and PyTorch: einsum on random equations (values against
numpy.einsum, gradients against torch.einsum), and torch.linalg's idioms (values, dtypes,
gradients) beyond the registry's samples: vector/matrix solves, full SVDs, wide QR, norms at 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradtensor as gt
from gradtensor.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")

RNG = np.random.default_rng(0)


def _pair(a, requires_grad=True):
    """The same float64 data as a gradtensor and a PyTorch leaf."""
    return (
        gt.tensor(a, dtype=gt.float64, requires_grad=requires_grad),
        torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad),
    )


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _agree(fn_gt, fn_torch, *arrays, rtol=1e-9, grads=True):
    """Values, shapes and (for a random weighting of the outputs) gradients agree."""
    pairs = [_pair(a) for a in arrays]
    outs = _flat(fn_gt(*[p[0] for p in pairs]))
    touts = _flat(fn_torch(*[p[1] for p in pairs]))
    assert len(outs) == len(touts)
    for o, t in zip(outs, touts):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=1e-10)
    if not grads:
        return
    vs = [RNG.standard_normal(o.shape) for o in outs]
    for o, t, v in zip(outs, touts, vs):
        if t.requires_grad and not o.requires_grad:  # PyTorch's gradient must be 0 then
            tg = torch.autograd.grad((t * torch.tensor(v)).sum(), [p[1] for p in pairs],
                                     retain_graph=True, allow_unused=True)  # fmt: skip
            assert all(g is None or not g.any() for g in tg)
    live = [(o, t, v) for o, t, v in zip(outs, touts, vs) if t.requires_grad and o.requires_grad]
    if not live:
        return
    loss = sum((o * gt.tensor(v, dtype=gt.float64)).sum() for o, _, v in live)
    tloss = sum((t * torch.tensor(v)).sum() for _, t, v in live)
    got = gt.grad(loss, [p[0] for p in pairs], allow_unused=True)
    want = torch.autograd.grad(tloss, [p[1] for p in pairs], allow_unused=True)
    for g, w in zip(got, want):
        g = np.zeros(w.shape) if g is None else g.numpy()
        np.testing.assert_allclose(g, w.numpy(), rtol=rtol, atol=1e-9)


# -- einsum: random equations -----------------------------------------------------------------

SIZES = {"a": 2, "b": 3, "c": 1, "d": 4}


@st.composite
def equations(draw):
    """1-3 operands over letters with fixed sizes (c is 1, any may be 1 in one operand: it
    broadcasts), repeated letters (diagonals), now and then `...` with broadcast batch dims, an
    implicit or explicit output."""
    n = draw(st.integers(1, 3))
    ell = draw(st.booleans())
    batch = draw(st.lists(st.sampled_from([1, 2]), min_size=0, max_size=2)) if ell else []
    terms, shapes = [], []
    for _ in range(n):
        t = "".join(draw(st.lists(st.sampled_from("abcd"), min_size=0, max_size=3)))
        # a letter seen once in an operand may have size 1 there: it broadcasts against the rest
        shape = [1 if t.count(c) == 1 and draw(st.integers(0, 4)) == 0 else SIZES[c] for c in t]
        if ell:
            k = draw(st.integers(0, len(batch)))
            own = [draw(st.sampled_from([1, b])) for b in batch[len(batch) - k :]]
            at = draw(st.integers(0, len(t)))
            t, shape = t[:at] + "..." + t[at:], shape[:at] + own + shape[at:]
        terms.append(t)
        shapes.append(tuple(shape))
    eq = ",".join(terms)
    if draw(st.booleans()):
        letters = sorted({c for t in terms for c in t if c.isalpha()})
        out = draw(st.permutations(letters))[: draw(st.integers(0, len(letters)))]
        eq += "->" + ("..." if ell else "") + "".join(out)
    return eq, shapes


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=equations(), seed=st.integers(0, 2**16))
def test_einsum_matches_numpy_values_and_torch_gradients(case, seed):
    eq, shapes = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    want = np.einsum(eq, *arrays)
    xs = [gt.tensor(a, dtype=gt.float64, requires_grad=True) for a in arrays]
    y = gt.einsum(eq, *xs)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch.einsum(eq, *ts)
    v = rng.standard_normal(want.shape)
    got = gt.grad((y * gt.tensor(v, dtype=gt.float64)).sum(), xs, allow_unused=True)
    theirs = torch.autograd.grad((ty * torch.tensor(v)).sum(), ts, allow_unused=True)
    for g, t, a in zip(got, theirs, arrays):
        g = np.zeros(a.shape) if g is None else g.numpy()
        t = np.zeros(a.shape) if t is None else t.numpy()
        np.testing.assert_allclose(g, t, rtol=1e-9, atol=1e-11, err_msg=eq)


def test_einsum_contracts_pairwise_along_the_greedy_path():
    a, b, c, d = (gt.tensor(RNG.standard_normal(s), dtype=gt.float64, requires_grad=True)
                  for s in [(2, 30), (30, 40), (40, 3), (3,)])  # fmt: skip
    y = gt.einsum("ij,jk,kl,l->i", a, b, c, d)
    ref = a.detach().numpy() @ b.detach().numpy() @ c.detach().numpy() @ d.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), ref)
    seen, todo = [], [y.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node.name == "_einsum":
            seen.append(node.params["eq"])
            assert len(node.inputs) <= 2
            todo += [e[0] for e in node.next if isinstance(e, tuple)]
    path = np.einsum_path("ij,jk,kl,l->i", *[t.detach().numpy() for t in (a, b, c, d)],
                          optimize="greedy")[0][1:]  # fmt: skip
    assert len(seen) == len(path) == 3  # one pairwise _einsum per step of the greedy path


def test_einsum_second_order_through_a_path_and_a_diagonal():
    xs = [
        gt.tensor(RNG.standard_normal(s), dtype=gt.float64, requires_grad=True)
        for s in [(3, 3), (3, 2), (2, 3)]
    ]
    assert gradgradcheck(lambda a, b, c: gt.einsum("ii,ij,jk->k", a, b, c), xs)
    assert gradgradcheck(lambda a, b, c: gt.einsum("...i,ij,jk", a, b, c), xs)


def test_einsum_takes_a_list_and_names_the_equation_in_errors():
    a, b = gt.ones(2, 3), gt.ones(3, 4)
    assert gt.einsum("ij,jk", [a, b]).shape == (2, 4)
    with pytest.raises(ValueError, match=r"einsum: equation 'ij,jk->q': .*'q'"):
        gt.einsum("ij,jk->q", a, b)
    with pytest.raises(ValueError, match=r"einsum: equation 'ij->ii'.*repeats"):
        gt.einsum("ij->ii", a)


# -- products ---------------------------------------------------------------------------------


def test_dot_is_torchs_dot_not_matmul():
    with pytest.raises(ValueError, match="dot: 1D tensors expected, but got 2D and 2D"):
        gt.dot(gt.ones(2, 2), gt.ones(2, 2))
    _agree(lambda a, b: a.dot(b), lambda a, b: a.dot(b), RNG.standard_normal(4),
           RNG.standard_normal(4))  # fmt: skip
    _agree(lambda a, b: a.outer(b), lambda a, b: a.outer(b), RNG.standard_normal(3),
           RNG.standard_normal(2))  # fmt: skip
    _agree(lambda a, b: a.inner(b), lambda a, b: a.inner(b), RNG.standard_normal(()),
           RNG.standard_normal((2, 3)))  # fmt: skip
    _agree(lambda a, b: gt.tensordot(a, b, ([1, 0], [0, 2])),
           lambda a, b: torch.tensordot(a, b, ([1, 0], [0, 2])),
           RNG.standard_normal((3, 4, 2)), RNG.standard_normal((4, 5, 3)))  # fmt: skip


# -- torch.linalg idioms ----------------------------------------------------------------------

A = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
AB = RNG.standard_normal((2, 3, 3)) + 3 * np.eye(3)
M = RNG.standard_normal((4, 3))
SPD = M.T @ M + np.eye(3)


@pytest.mark.parametrize(
    "b_shape", [(3,), (2, 3), (3, 2), (2, 3, 4), (5, 2, 3, 1), (1, 3)], ids=str
)
def test_solve_decides_vector_or_matrix_as_pytorch(b_shape):
    b = RNG.standard_normal(b_shape)
    a = AB if b_shape != (1, 3) else A[None]
    if b_shape == (3, 2):  # (3, 2) against batch (2,): matrices of 3 rows, broadcast
        a = A
    _agree(lambda x, y: gt.linalg.solve(x, y), lambda x, y: torch.linalg.solve(x, y), a, b)


def test_solve_left_false_and_batched_inverse_det_slogdet():
    B = RNG.standard_normal((2, 3))
    _agree(lambda x, y: gt.linalg.solve(x, y, left=False),
           lambda x, y: torch.linalg.solve(x, y, left=False), A, B)  # fmt: skip
    _agree(lambda x: x.inverse(), lambda x: x.inverse(), AB)
    _agree(lambda x: x.det(), lambda x: x.det(), AB)
    _agree(lambda x: tuple(gt.linalg.slogdet(-x)), lambda x: tuple(torch.linalg.slogdet(-x)), AB)
    s = gt.linalg.slogdet(gt.tensor(AB, dtype=gt.float64))
    assert s.sign.shape == (2,) and not s.sign.requires_grad


def test_cholesky_upper_and_qr_of_wide_matrices():
    _agree(lambda x: gt.linalg.cholesky(x, upper=True),
           lambda x: torch.linalg.cholesky(x, upper=True), SPD)  # fmt: skip
    wide = RNG.standard_normal((2, 3, 5))
    _agree(lambda x: tuple(gt.linalg.qr(x)), lambda x: tuple(torch.linalg.qr(x)), wide)
    q, r = gt.linalg.qr(gt.tensor(wide, dtype=gt.float64))
    np.testing.assert_allclose((q @ r).numpy(), wide, atol=1e-12)
    _agree(lambda x: tuple(gt.linalg.qr(x, "complete")),
           lambda x: tuple(torch.linalg.qr(x, "complete")), wide)  # fmt: skip
    q, r = gt.linalg.qr(gt.tensor(wide), mode="r")
    assert q.shape == (0,) and r.shape == (2, 3, 5)


def test_svd_full_matrices_shapes_and_gradient_of_the_reduced_part():
    a = RNG.standard_normal((5, 3))
    u, s, vh = gt.linalg.svd(gt.tensor(a, dtype=gt.float64))
    assert (u.shape, s.shape, vh.shape) == ((5, 5), (3,), (3, 3))
    np.testing.assert_allclose(u.numpy().T @ u.numpy(), np.eye(5), atol=1e-12)
    # Signs of singular vectors are a convention: compare sign-free quantities with PyTorch.
    _agree(lambda x: gt.linalg.svd(x).U[:, :3].abs(), lambda x: torch.linalg.svd(x).U[:, :3].abs(),
           a)  # fmt: skip
    _agree(lambda x: gt.linalg.svd(x.T, full_matrices=False).Vh.abs(),
           lambda x: torch.linalg.svd(x.T, full_matrices=False).Vh.abs(), a)  # fmt: skip
    _agree(lambda x: gt.linalg.svdvals(x), lambda x: torch.linalg.svdvals(x), a)


def test_eigh_eigenvalues_ascending_and_gradient_at_repeated_eigenvalues():
    w, v = gt.linalg.eigh(gt.tensor(SPD, dtype=gt.float64))
    assert np.all(np.diff(w.numpy()) > 0)
    np.testing.assert_allclose((v.numpy() * w.numpy()) @ v.numpy().T, SPD, atol=1e-12)
    # The identity has one eigenvalue three times; the sum of eigenvalues is still smooth.
    x = gt.tensor(np.eye(3), dtype=gt.float64, requires_grad=True)
    gt.linalg.eigh(x).eigenvalues.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.eye(3), atol=1e-12)


def test_matrix_power_pinv_and_singular_matrices():
    _agree(lambda x: gt.linalg.matrix_power(x, -3), lambda x: torch.linalg.matrix_power(x, -3), AB)
    eye = gt.linalg.matrix_power(gt.tensor(AB, dtype=gt.float64), 0)
    np.testing.assert_allclose(eye.numpy(), np.broadcast_to(np.eye(3), (2, 3, 3)))
    _agree(lambda x: gt.linalg.pinv(x), lambda x: torch.linalg.pinv(x), M)


SINGULAR = [
    (
        "linalg.inv",
        lambda L, a: L.linalg.inv(a),
        r"the input matrix \(batch element \(1,\)\) is singular",
    ),
    ("linalg.solve", lambda L, a: L.linalg.solve(a, L.ones(3, 2, 1, dtype=a.dtype)), "singular"),
    ("linalg.matrix_power", lambda L, a: L.linalg.matrix_power(a, -2), "singular"),
    ("linalg.cholesky", lambda L, a: L.linalg.cholesky(a), r"\(1,\).* not positive-definite"),
]


@pytest.mark.parametrize("name,call,what", SINGULAR, ids=[c[0] for c in SINGULAR])
def test_a_singular_matrix_is_refused_as_pytorch_refuses_it(name, call, what):
    a = np.stack([np.eye(2), np.zeros((2, 2)), np.eye(2)])
    with pytest.raises(gt.linalg.LinAlgError, match=f"^{name}: .*{what}"):
        call(gt, gt.tensor(a, dtype=gt.float64))
    with pytest.raises(torch.linalg.LinAlgError):
        call(torch, torch.from_numpy(a))


NORMS = [
    ("vector_norm()", lambda L, x: L.vector_norm(x)),
    ("vector_norm(3.5, dim=1, keepdim)", lambda L, x: L.vector_norm(x, 3.5, dim=1, keepdim=True)),
    ("vector_norm(0)", lambda L, x: L.vector_norm(x, 0)),
    ("vector_norm(-inf, (0, 1))", lambda L, x: L.vector_norm(x, -math.inf, (0, 1))),
    ("matrix_norm()", lambda L, x: L.matrix_norm(x)),
    ("matrix_norm(nuc, keepdim)", lambda L, x: L.matrix_norm(x, "nuc", keepdim=True)),
    ("matrix_norm(1, dim=(1, 0))", lambda L, x: L.matrix_norm(x, 1, dim=(1, 0))),
    ("matrix_norm(-inf)", lambda L, x: L.matrix_norm(x, -math.inf)),
    ("matrix_norm(-2)", lambda L, x: L.matrix_norm(x, -2)),
    ("norm()", lambda L, x: L.norm(x)),
    ("norm(inf, dim=0)", lambda L, x: L.norm(x, math.inf, dim=0)),
    ("norm(2)", lambda L, x: L.norm(x, 2)),
]


@pytest.mark.parametrize("idiom", [f for _, f in NORMS], ids=[n for n, _ in NORMS])
def test_linalg_norms_match_pytorch(idiom):
    _agree(lambda x: idiom(gt.linalg, x), lambda x: idiom(torch.linalg, x), M)
    x32 = gt.tensor(M, dtype=gt.float32)
    assert str(idiom(gt.linalg, x32).dtype) == str(idiom(torch.linalg, torch.tensor(
        M, dtype=torch.float32)).dtype).removeprefix("torch.")  # fmt: skip


@pytest.mark.parametrize(
    "args", [(), ("fro",), ("nuc",), (3,), (1, 1), (2, (0, 1), True), (math.inf, 0)], ids=str
)
def test_torch_norm_and_the_norm_method(args):
    _agree(lambda x: x.norm(*args), lambda x: x.norm(*args), M)
    _agree(lambda x: gt.norm(x, *args), lambda x: torch.norm(x, *args), M)


def test_vector_2_norm_has_gradient_zero_at_zero_as_pytorch():
    z = np.zeros((2, 3))
    z[1] = [1.0, -2.0, 0.5]
    _agree(lambda x: gt.linalg.vector_norm(x, dim=1), lambda x: torch.linalg.vector_norm(x, dim=1),
           z)  # fmt: skip
    _agree(lambda x: x.norm(), lambda x: x.norm(), np.zeros(3))


def test_float32_results_and_methods_match_pytorch_dtypes():
    a32 = gt.tensor(A, dtype=gt.float32)
    for name in ("inv", "det", "cholesky", "svdvals", "pinv"):
        arg = SPD if name == "cholesky" else A
        ours = getattr(gt.linalg, name)(gt.tensor(arg, dtype=gt.float32))
        theirs = getattr(torch.linalg, name)(torch.tensor(arg, dtype=torch.float32))
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), name
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-4, atol=1e-5)
    assert a32.matrix_power(2).dtype == gt.float32


def test_decompositions_gradgradcheck_in_a_composite_of_spd_inputs():
    """Second order through SPD inputs built inside the function (any input is then valid)."""
    x = gt.tensor(RNG.standard_normal((3, 3)), dtype=gt.float64, requires_grad=True)

    def spd(x):
        return x @ x.mT + 3 * gt.eye(3, dtype=gt.float64)

    assert gradgradcheck(lambda x: gt.linalg.cholesky(spd(x)), [x])
    assert gradgradcheck(lambda x: gt.linalg.eigh(spd(x)).eigenvalues, [x])
    assert gradcheck(lambda x: gt.linalg.slogdet(spd(x)).logabsdet, [x])
