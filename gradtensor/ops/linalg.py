"""Linear algebra: matmul (NumPy's rules), einsum and the products on it (tensordot, dot, inner),
and the matrix functions of torch.linalg (inv, det, solve, cholesky, qr, eigh, svd, norms), batched
over leading dims, through `xp.linalg` so that they run on CuPy too."""

from __future__ import annotations

import collections
import math
import re
import string
from typing import Any

import numpy as np

from .. import backend
from ..errors import LinAlgError, public
from ..tensor import Tensor
from .elementwise import abs, sqrt, where
from .reduce import _as_tensor, amax, amin, sum
from .registry import REGISTRY, Bad, Composite, Sample, composite, primitive, unbroadcast
from .shape import _broadcast_to, concatenate, normalize_axis, permute


@primitive(
    save="x",
    samples=[
        Sample((3, 4), (4, 5)),
        Sample((4,), (4, 5)),
        Sample((3, 4), (4,)),
        Sample((4,), (4,)),
        Sample((2, 3, 4), (4, 2)),
        Sample((2, 1, 3, 4), (5, 4, 2)),
    ],
    torch="matmul",
    numpy="matmul",
    errors=[
        Bad((2, 3), (4, 5), match=r"shapes \(2, 3\) and \(4, 5\) do not align"),
        Bad((2, 3, 4), (2, 5, 3), match=r"do not align"),
        Bad((), (3,), match="operands must be at least 1-D"),
    ],
)
def matmul(xp, a, b):
    """Matrix product, `a @ b`, NumPy's rules for 1-D and batched operands."""
    if xp.ndim(a) == 0 or xp.ndim(b) == 0:  # a Python number is 0-D too
        raise ValueError(
            f"matmul: operands must be at least 1-D, got shapes {xp.shape(a)} and {xp.shape(b)}"
        )
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != k_b:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not align "
            f"({a.shape[-1]} columns against {k_b} rows)"
        )
    return xp.matmul(a, b)


def _as_matrices(g: Tensor, a: Any, b: Any) -> tuple:
    """Lift 1-D operands to matrices (as matmul does) and the gradient to match.

    Written with methods and operators that arrays share with Tensors, as every derivative is.
    """
    a2 = a if a.ndim > 1 else a.reshape(1, -1)
    b2 = b if b.ndim > 1 else b.reshape(-1, 1)
    g2 = g
    if b.ndim == 1:
        g2 = g2.reshape(g2.shape + (1,))
    if a.ndim == 1:
        g2 = g2.reshape(g2.shape[:-1] + (1,) + g2.shape[-1:])
    return g2, a2, b2


def _matmul_grad_a(g: Tensor, y: Any, a: Any, b: Any) -> Tensor:
    g2, a2, b2 = _as_matrices(g, a, b)
    ga = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape)
    return ga.reshape(a.shape)


def _matmul_grad_b(g: Tensor, y: Any, a: Any, b: Any) -> Tensor:
    g2, a2, b2 = _as_matrices(g, a, b)
    gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape)
    return gb.reshape(b.shape)


matmul.defvjp(_matmul_grad_a, _matmul_grad_b)


# -- einsum -----------------------------------------------------------------------------------

_LETTERS = string.ascii_letters
_TERM = re.compile(r"[A-Za-z]*(?:\.\.\.[A-Za-z]*)?")


def _xp(a: Any) -> Any:
    return backend.array_module(a.data if isinstance(a, Tensor) else a)


def _T(a: Any) -> Any:
    return a.swapaxes(-1, -2)


@primitive(
    "_einsum",
    save="x",
    samples=[
        Sample((3, 4), (4, 5), eq="ij,jk->ik"),
        Sample((3, 3), eq="ii->i"),
        Sample((3, 3), eq="ii->"),
        Sample((2, 3, 4), eq="ijk->kj"),
        Sample((1, 3), (4, 3), eq="ij,ij->ij"),
        Sample((3, 3, 2), (2,), eq="iik,k->i"),
        Sample((2, 3), (4,), eq="ij,k->kji"),
    ],
    torch=lambda t, *xs, eq: t.einsum(eq, *xs),
    numpy=lambda np, *xs, eq: np.einsum(eq, *xs),
)
def _einsum(xp, *xs, eq):
    """einsum of one or two operands on an equation with explicit letters and output."""
    lhs, out = eq.split("->")
    _check_sizes(lambda why: ValueError(f"einsum: equation {eq!r}: {why}"), lhs.split(","), xs)
    y = xp.einsum(eq, *xs, optimize=len(xs) > 1)
    return y.copy() if len(xs) == 1 and xp.may_share_memory(y, xs[0]) else y  # no view


def _einsum_vjp(g: Any, y: Any, *xs: Any, needs: tuple, eq: str) -> tuple:
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    return tuple(_einsum_grad(g, out, terms, xs, i) if n else None for i, n in enumerate(needs))


def _einsum_grad(g: Any, out: str, terms: list, xs: tuple, i: int) -> Any:
    """The gradient of operand i: an einsum of g and the other operands onto i's letters, put
    on the diagonal where i repeats a letter, broadcast along letters only i had or broadcast."""
    s, x = terms[i], xs[i]
    rest = [(t, a) for j, (t, a) in enumerate(zip(terms, xs)) if j != i]
    size = dict(zip(out, g.shape))
    for t, a in rest:
        size.update((c, n) for c, n in zip(t, a.shape) if n != 1)
    keep = "".join(c for c in dict.fromkeys(s) if c in size and size[c] == x.shape[s.index(c)])
    eq = ",".join([out] + [t for t, _ in rest]) + "->" + keep
    r = _einsum(g, *[a for _, a in rest], eq=eq)
    r = r.reshape(tuple(n if s.index(c) == p and c in keep else 1 for p, (c, n) in
                        enumerate(zip(s, x.shape))))  # fmt: skip
    if len(set(s)) < len(s):  # a repeated letter: the gradient lies on that diagonal
        xp, mask = _xp(x), True
        for c in set(s):
            at = [p for p, d in enumerate(s) if d == c]
            for q in at[1:]:
                shape = [1] * len(s)
                shape[at[0]] = shape[q] = x.shape[q]
                mask = mask & xp.eye(x.shape[q], dtype=bool).reshape(shape)
        return r * xp.broadcast_to(mask, x.shape)
    return r if r.shape == x.shape else _broadcast_to(r, shape=x.shape)


_einsum.defvjp_joint(_einsum_vjp)


def _einsum_parse(eq: str, shapes: list) -> tuple[list[str], str]:
    """The equation's operand letters and output, `...` spelled out with free letters and the
    output made explicit (NumPy's and PyTorch's rules), or an error naming the equation."""

    def bad(why: str) -> ValueError:
        return ValueError(f"einsum: equation {eq!r}: {why}")

    if not isinstance(eq, str):
        raise TypeError(f"einsum: the equation must be a string, not {type(eq).__name__}")
    lhs, arrow, out = eq.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise bad(f"it names {len(terms)} operand(s) but {len(shapes)} were given")
    for t in terms + [out]:
        if not _TERM.fullmatch(t):
            raise bad(f"{t!r} is not letters with at most one '...'")
    free = [c for c in _LETTERS if c not in eq]
    n_ell = max([len(sh) - len(t) + 3 for t, sh in zip(terms, shapes) if "..." in t] + [0])
    ell = "".join(free[:n_ell])
    subs = []
    for t, sh in zip(terms, shapes):
        if "..." in t:
            k = len(sh) - len(t) + 3
            t = t.replace("...", ell[n_ell - k :] if k > 0 else "")
        subs.append(t)
    _check_sizes(bad, subs, shapes)
    joined = "".join(subs)
    if arrow:
        out = out.replace("...", ell)
        for c in out:
            if c not in joined or out.count(c) > 1:
                raise bad(f"output subscript {c!r} {'repeats' if c in joined else 'is no input'}")
    else:
        out = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in ell))
    return subs, out


def _check_sizes(bad: Any, subs: list, xs: Any) -> None:
    """A letter has one size everywhere, except 1 (broadcast) in another operand."""
    size: dict = {}
    for i, (t, x) in enumerate(zip(subs, xs)):
        sh = x if isinstance(x, tuple) else x.shape
        if len(t) != len(sh):
            raise bad(f"operand {i} has {len(sh)} dims but its subscripts name {len(t)}")
        for p, (c, n) in enumerate(zip(t, sh)):
            m = size.setdefault(c, n)
            if m != n and (1 not in (m, n) or c in t[:p]):  # a diagonal needs equal sizes
                raise bad(f"subscript {c!r} has sizes {m} and {n}")
            size[c] = max(m, n)


def _einsum_call(eq: Any, *operands: Any) -> Tensor:
    """einsum(equation, *operands), PyTorch's: repeated letters take diagonals, `...` broadcasts,
    no `->` sums letters seen once in alphabetical order; 3+ operands contract pairwise in the
    order numpy.einsum_path(optimize="greedy") gives (operands may also come as one list)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    xs = [_as_tensor(x, "einsum") for x in operands]
    subs, out = _einsum_parse(eq, [x.shape for x in xs])
    if len(xs) <= 2:
        return _einsum(*xs, eq=",".join(subs) + "->" + out)
    dummies = [np.broadcast_to(np.zeros(()), x.shape) for x in xs]
    path = np.einsum_path(",".join(subs) + "->" + out, *dummies, optimize="greedy")[0][1:]
    for k, pair in enumerate(path):
        picked = [(subs.pop(j), xs.pop(j)) for j in sorted(pair, reverse=True)]
        need = set(out).union(*subs)
        new = out if k == len(path) - 1 else "".join(
            dict.fromkeys(c for t, _ in picked for c in t if c in need))  # fmt: skip
        eq_k = ",".join(t for t, _ in picked) + "->" + new
        subs.append(new)
        xs.append(_einsum(*[x for _, x in picked], eq=eq_k))
    return xs[0]


einsum = public("einsum", _einsum_call, tensor_first=False)
REGISTRY["einsum"] = Composite(einsum, "einsum", (
    [
        Sample("ij,jk->ik", (3, 4), (4, 5)),
        Sample("...ij,...jk", (2, 3, 4), (4, 5)),
        Sample("ii", (3, 3)),
        Sample("ij,jk,kl->il", (2, 3), (3, 4), (4, 5)),
        Sample("bij,bjk,bkl,l->bi", (2, 2, 3), (2, 3, 4), (1, 4, 2), (2,)),
        Sample("i,i", (4,), (4,)),
        Sample("i...i->...", (3, 2, 3)),
        Sample("ij,jk", [(3, 4), (4, 2)]),
        Sample("ab,bc,ca->", (2, 3), (3, 4), (4, 2)),
    ],
    lambda t, eq, *xs: t.einsum(eq, *xs),
    lambda np, eq, *xs: np.einsum(eq, *(xs[0] if isinstance(xs[0], list) else xs)),
    [
        Bad("ij,jk", (3, 4), match=r"einsum: equation 'ij,jk'.*2 operand"),
        Bad("ij->ik", (3, 4), match=r"einsum: equation 'ij->ik'.*'k'"),
        Bad("ij,jk", (3, 4), (5, 6), match=r"einsum: equation 'ij,jk'.*'j' has sizes 4 and 5"),
        Bad("i$", (3,), match=r"einsum: equation 'i\$'"),
        Bad("ijk", (3, 4), match=r"einsum: equation 'ijk'.*operand 0 has 2 dims"),
    ],
))  # fmt: skip


# -- products on einsum -----------------------------------------------------------------------


@composite(
    samples=[
        Sample((3, 4, 5), (4, 5, 2)),
        Sample((3, 4), (4, 5), dims=1),
        Sample((3, 4, 5), (5, 3), dims=[[0, 2], [1, 0]]),
        Sample((3,), (2,), dims=0),
    ],
    torch="tensordot",
    numpy=lambda np, a, b, dims=2: np.tensordot(a, b, axes=dims),
    errors=[
        Bad((2, 3), (4, 5), dims=1, match=r"tensordot: contracted dimensions need to match"),
        Bad((2, 3), (3, 5), dims=-1, match=r"tensordot: dims must be >= 0"),
    ],
)
def tensordot(a: Tensor, b: Tensor, dims: Any = 2) -> Tensor:
    """Sum of products over dims of a and b: an int n (the last n of a, the first n of b) or
    two lists of dims, as PyTorch's tensordot."""
    a, b = _as_tensor(a, "tensordot"), _as_tensor(b, "tensordot")
    if isinstance(dims, (int, np.integer)):
        if dims < 0 or dims > min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: dims must be >= 0 and at most {min(a.ndim, b.ndim)}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    da = [d % max(a.ndim, 1) for d in da]
    db = [d % max(b.ndim, 1) for d in db]
    la, lb = list(_LETTERS[: a.ndim]), list(_LETTERS[a.ndim : a.ndim + b.ndim])
    for i, j in zip(da, db, strict=True):
        if a.shape[i] != b.shape[j]:
            raise ValueError(
                f"tensordot: contracted dimensions need to match, but first has size "
                f"{a.shape[i]} in dim {i} and second has size {b.shape[j]} in dim {j}"
            )
        lb[j] = la[i]
    out = [c for k, c in enumerate(la) if k not in da] + [
        c for k, c in enumerate(lb) if k not in db
    ]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", a, b)


def _vectors(op: str, a: Any, b: Any) -> tuple:
    a, b = _as_tensor(a, op), _as_tensor(b, op)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{op}: 1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    return a, b


@composite(
    samples=[Sample((4,), (4,))],
    torch="dot",
    numpy="dot",
    errors=[
        Bad((2, 3), (3,), match=r"dot: 1D tensors expected, but got 2D and 1D"),
        Bad((3,), (4,), match=r"dot: .*3 and 4 elements"),
    ],
)
def dot(a: Tensor, b: Tensor) -> Tensor:
    """Inner product of two 1-D tensors of one length, as PyTorch's dot."""
    return _dot("dot", a, b)


def _dot(op: str, a: Any, b: Any) -> Tensor:
    a, b = _vectors(op, a, b)
    if a.shape != b.shape:
        raise ValueError(f"{op}: the vectors must have one length, got {a.shape[0]} and "
                         f"{b.shape[0]} elements")  # fmt: skip
    return _einsum(a, b, eq="i,i->")


@composite(
    samples=[Sample((4,), (4,))],
    torch="vdot",
    numpy="vdot",
    errors=[Bad((2, 3), (3,), match=r"vdot: 1D tensors expected")],
)
def vdot(a: Tensor, b: Tensor) -> Tensor:
    """dot with the first vector conjugated (for real tensors, dot)."""
    return _dot("vdot", a, b)


@composite(
    samples=[Sample((2, 3), (4, 3)), Sample((3,), (3,)), Sample((2, 3), (3,))],
    torch="inner",
    numpy="inner",
    errors=[Bad((2, 3), (2, 4), match=r"inner: the last dimension must match")],
)
def inner(a: Tensor, b: Tensor) -> Tensor:
    """Sum of products over the last dims of a and b (a product if one is 0-d), as PyTorch's."""
    a, b = _as_tensor(a, "inner"), _as_tensor(b, "inner")
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: the last dimension must match on both input tensors but got "
                         f"shapes {a.shape} and {b.shape}")  # fmt: skip
    la, lb = _LETTERS[: a.ndim - 1], _LETTERS[a.ndim - 1 : a.ndim + b.ndim - 2]
    return einsum(f"{la}z,{lb}z->{la}{lb}", a, b)


@composite(
    samples=[Sample((3,), (4,))],
    torch="outer",
    numpy="outer",
    errors=[Bad((2, 2), (2,), match=r"outer: 1D tensors expected")],
)
def outer(a: Tensor, b: Tensor) -> Tensor:
    """Outer product of two 1-D tensors: `out[i, j] = a[i] * b[j]`."""
    a, b = _vectors("outer", a, b)
    return a.reshape(-1, 1) * b


# -- matrix functions -------------------------------------------------------------------------


def _square(op: str, a: Any, square: bool = True) -> None:
    """Refuse what is not a batch of (square) matrices, naming the op as torch.linalg does."""
    if a.ndim < 2:
        raise ValueError(f"{op}: the input tensor A must have at least 2 dimensions, got {a.ndim}")
    if square and a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{op}: A must be batches of square matrices, but they are "
                         f"{a.shape[-2]} by {a.shape[-1]} matrices")  # fmt: skip


def _solved(xp: Any, op: str, fn: Any, a: Any, *rest: Any) -> Any:
    """`fn(a, *rest)`, with NumPy's LinAlgError told as the op's, naming the first bad matrix."""
    try:
        return fn(a, *rest)
    except np.linalg.LinAlgError:
        flat = a.reshape((-1,) + a.shape[-2:])
        rows = [r.reshape((-1,) + r.shape[-2:]) for r in rest]
        for i in range(len(flat)):
            try:
                fn(flat[i], *(r[i] for r in rows))
            except np.linalg.LinAlgError:
                break
        at = f" (batch element {tuple(map(int, np.unravel_index(i, a.shape[:-2])))})"
        what = "not positive-definite" if op == "linalg.cholesky" else "singular"
        raise LinAlgError(f"{op}: the input matrix{at if a.ndim > 2 else ''} is {what}") from None


def _float(a: Any) -> Any:
    """Booleans and integers as float64 (NumPy's linalg computes them so; (a + a.T) / 2 must not
    add booleans)."""
    return a if a.dtype.kind in "fc" else a.astype(np.float64)


def _eye(like: Any, n: int) -> Any:
    return _xp(like).eye(n, dtype=like.dtype)


def _diag_embed(v: Any) -> Any:
    return v[..., None, :] * _eye(v, v.shape[-1])


def _pack(xp: Any, *arrays: Any) -> Any:
    """Several results of one factorization as one array (their last dims flattened, joined)."""
    nb = arrays[-1].ndim - 2
    return xp.concatenate([a.reshape(a.shape[:nb] + (math.prod(a.shape[nb:]),)) for a in arrays],
                          axis=-1)  # fmt: skip


def _unpack(packed: Any, cores: list) -> list:
    """The results `_pack` joined (shapes `batch + core`): views of arrays or of Tensors."""
    out, at = [], 0
    for core in cores:
        n = math.prod(core)
        out.append(packed[..., at : at + n].reshape(packed.shape[:-1] + tuple(core)))
        at += n
    return out


def _fix_signs(xp: Any, u: Any) -> Any:
    """Signs (+1 or -1) that make the largest entry of each column of u positive: eigenvectors
    and singular vectors are unique up to sign, and this makes them one answer on every device."""
    if u.size == 0:
        return xp.ones(u.shape[:-2] + (1, u.shape[-1]), u.dtype)
    i = xp.argmax(xp.abs(u), axis=-2)[..., None, :]
    s = xp.sign(xp.take_along_axis(u, i, axis=-2))
    return xp.where(s == 0, 1, s).astype(u.dtype)


def _torch_signs(t: Any, u: Any) -> Any:
    """_fix_signs in PyTorch, for the twins."""
    s = t.sign(t.take_along_dim(u, u.abs().argmax(-2, keepdim=True), -2)).detach()
    return t.where(s == 0, t.ones_like(s), s)


_rng = np.random.default_rng(1234)


def _matrices(*shape: int, spread: float = 0.0, spd: bool = False) -> np.ndarray:
    """A fixed, well-conditioned sample: random, plus `n` times the identity; SPD with `spd`;
    with singular values 1, 2, ... times `spread` (apart) when spread is given."""
    m, n = shape[-2:]
    a = _rng.standard_normal(shape)
    if spread:
        u, _, vh = np.linalg.svd(a, full_matrices=False)
        return (u * (1 + spread * np.arange(min(m, n))[::-1])) @ vh
    if spd:
        return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)
    return a + n * np.eye(m, n)


_SQ = [Sample(_matrices(3, 3)), Sample(_matrices(2, 3, 3)), Sample(_matrices(1, 1))]
_SPD = [Sample(_matrices(3, 3, spd=True)), Sample(_matrices(2, 4, 4, spd=True))]
_SYM = [
    Sample(_matrices(3, 3, spd=True)),
    Sample(_matrices(3, 3, spread=1.0)),
]  # eigh reads (A + A.T) / 2
_SQUARE_BAD = [
    Bad((2, 3), match=r"A must be batches of square matrices, but they are 2 by 3"),
    Bad((3,), match=r"must have at least 2 dimensions"),
]


def _torch_det(t: Any, a: Any) -> Any:
    """torch.linalg.det; where det is 0 its gradient is the cofactors (PyTorch gives 0)."""
    d = t.linalg.det(a)
    if d.all():
        return d
    n = range(a.shape[-1])
    cof = [[(-1) ** (i + j) * t.linalg.det(a[[k for k in n if k != i]][:, [k for k in n if k != j]])
            for j in n] for i in n]  # fmt: skip
    return d.detach() + (t.stack([t.stack(r) for r in cof]).detach() * (a - a.detach())).sum()


def _bad(op: str) -> list[Bad]:
    return [Bad(*b.args, match=f"{op}: .*{b.match}") for b in _SQUARE_BAD]


@primitive("linalg.inv", save="y", samples=_SQ, torch="linalg.inv", numpy="linalg.inv",
           errors=_bad("linalg.inv"))  # fmt: skip
def inv(xp, a):
    """The inverse of each square matrix (a singular one raises LinAlgError on the CPU)."""
    _square("linalg.inv", a)
    return _solved(xp, "linalg.inv", xp.linalg.inv, a)


inv.defvjp(lambda g, y, a: -(_T(y) @ g @ _T(y)))


_SINGULAR = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])  # det is exactly 0


@primitive("linalg.det", save="xy", samples=_SQ + [Sample(_SINGULAR)], numpy="linalg.det",
           torch=_torch_det,
           errors=_bad("linalg.det"))  # fmt: skip
def det(xp, a):
    """The determinant of each square matrix."""
    _square("linalg.det", a)
    return xp.linalg.det(a)


def _det_vjp(g: Any, y: Any, a: Any) -> Any:
    """g times the cofactor matrix, det(A) inv(A).T; where A is singular, the cofactors from the
    SVD: det(U) det(Vh) U diag(product of the other singular values) Vh (PyTorch gives 0 there)."""
    singular = y == 0
    if not bool(singular.any()):
        return (g * y)[..., None, None] * _T(inv(a))
    u, s, vh = _unpack(_svd(a, full_matrices=False), _svd_cores(a.shape, False))
    others = where(_eye(s, s.shape[-1]) != 0, 1, s[..., None, :]).prod(-1)  # [i]: j != i
    cof = (u * others[..., None, :]) @ vh * (det(u) * det(vh))[..., None, None]
    sing = singular[..., None, None]
    eye = _eye(y, a.shape[-1])
    return g[..., None, None] * where(sing, cof, y[..., None, None] * _T(inv(where(sing, eye, a))))


det.defvjp(_det_vjp)

_Slogdet = collections.namedtuple("slogdet", ["sign", "logabsdet"])


@primitive("linalg.slogdet", save="x", samples=_SQ + [Sample(-_matrices(3, 3))],
           torch="linalg.slogdet", numpy="linalg.slogdet",
           errors=_bad("linalg.slogdet"))  # fmt: skip
def _slogdet(xp, a):
    _square("linalg.slogdet", a)
    sign, logabs = xp.linalg.slogdet(a)
    return xp.stack([sign, logabs], axis=-1)


_slogdet.defvjp(lambda g, y, a: g[..., 1, None, None] * _T(inv(a)))


@_slogdet.api
def slogdet(a: Tensor) -> Any:
    """(sign, logabsdet) of each square matrix: det = sign * exp(logabsdet), without overflow."""
    y = _slogdet(_as_tensor(a, "linalg.slogdet"))
    return _Slogdet(y[..., 0].detach(), y[..., 1])


@primitive("linalg.solve", save="xy", samples=[
    Sample(_matrices(3, 3), (3, 2)), Sample(_matrices(3, 3), (3,)),
    Sample(_matrices(2, 3, 3), (2, 3)), Sample(_matrices(2, 3, 3), (3,)),
    Sample(_matrices(2, 1, 3, 3), (4, 3, 1)),
], torch="linalg.solve", errors=[
    Bad((2, 3), (2,), match=r"linalg.solve: A must be batches of square matrices"),
    Bad((3, 3), (4, 2), match=r"linalg.solve: incompatible shapes.*\(3, 3\) and \(4, 2\)"),
])  # fmt: skip
def _solve(xp, a, b):
    _square("linalg.solve", a)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"linalg.solve: incompatible shapes of A and B for the equation AX = B: "
                         f"{a.shape} and {b.shape}")  # fmt: skip
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:])
    return _solved(xp, "linalg.solve", xp.linalg.solve, a, b)


def _solve_vjp(g: Any, y: Any, a: Any, b: Any, *, needs: tuple) -> tuple:
    gb = _solve(_T(a), g)
    ga = unbroadcast(-(gb @ _T(y)), a.shape) if needs[0] else None
    return ga, unbroadcast(gb, b.shape) if needs[1] else None


_solve.defvjp_joint(_solve_vjp)


@_solve.api
def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:
    """X with A @ X = B, batched; B is a (batch of) vector(s) when it is 1-D or has A's shape
    less its last dim (PyTorch's rule), else a (batch of) matrices; left=False solves X @ A = B."""
    A, B = _as_tensor(A, "linalg.solve"), _as_tensor(B, "linalg.solve")
    if not left:
        return _T(solve(_T(A), _T(B)))
    if B.ndim == 1 or (B.ndim == A.ndim - 1 and B.shape == A.shape[:-1]):
        return _solve(A, B[..., None])[..., 0]
    return _solve(A, B)


@primitive("linalg.cholesky", save="y", samples=_SPD, torch=lambda t, a, upper=False:
           t.linalg.cholesky((a + a.mT) / 2, upper=upper), numpy="linalg.cholesky",
           errors=_bad("linalg.cholesky"))  # fmt: skip
def _cholesky(xp, a):
    _square("linalg.cholesky", a)
    a = _float(a)
    return _solved(xp, "linalg.cholesky", xp.linalg.cholesky, (a + xp.swapaxes(a, -1, -2)) / 2)


def _cholesky_vjp(g: Any, y: Any, a: Any) -> Any:
    # PyTorch's rule: L^-T phi(L^T g) L^-1, symmetrized; phi keeps the lower half, half diagonal.
    n = a.shape[-1]
    half = _xp(y).tril(_xp(y).ones((n, n), dtype=y.dtype)) - _eye(y, n) / 2
    li = inv(y)
    ga = _T(li) @ ((_T(y) @ g) * half) @ li
    return (ga + _T(ga)) / 2


_cholesky.defvjp(_cholesky_vjp)


@_cholesky.api
def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:
    """L, lower triangular with A = L @ L.T, for symmetric positive-definite A (its symmetric
    part (A + A.T) / 2 is used, so the gradient is symmetric, as PyTorch's); LinAlgError where A
    is not positive-definite; upper=True gives L.T."""
    L = _cholesky(_as_tensor(A, "linalg.cholesky"))
    return _T(L) if upper else L


_QR = collections.namedtuple("qr", ["Q", "R"])


@primitive("linalg.qr", save="y", samples=[
    Sample(_matrices(3, 3)), Sample(_matrices(4, 3)), Sample(_matrices(2, 5, 2)),
    Sample(_matrices(3, 5)),
], torch="linalg.qr", errors=[
    Bad((3,), match=r"linalg.qr: the input tensor A must have at least 2 dimensions"),
    Bad((4, 3), mode="complete", match=r"linalg.qr: mode 'complete' is not supported for 4 by 3"),
])  # fmt: skip
def _qr(xp, a):
    _square("linalg.qr", a, square=False)
    return _pack(xp, *xp.linalg.qr(a))


def _qr_vjp(g: Any, y: Any, a: Any) -> Any:
    # PyTorch's rule for m >= n (wide matrices are split in `qr`): (gQ + Q copyltu(M)) R^-T with
    # M = triu(gR R^T - Q^T gQ), copyltu(M) = M + M^T less one diagonal.
    n = a.shape[-1]
    gq, gr = _unpack(g, [a.shape[-2:], (n, n)])
    q, r = _unpack(y, [a.shape[-2:], (n, n)])
    m = gr @ _T(r) - _T(q) @ gq
    m = m * _xp(y).triu(_xp(y).ones((n, n), dtype=y.dtype))
    return _T(_solve(r, _T(q @ (m + _T(m) - m * _eye(y, n)) + gq)))


_qr.defvjp(_qr_vjp)


@_qr.api
def qr(A: Tensor, mode: str = "reduced") -> Any:
    """(Q, R) with A = Q @ R, Q with orthonormal columns, R upper triangular: mode "reduced",
    "complete" (for m <= n, where it is the same) or "r" (Q empty). A wide A is factored as
    [X | Y] = Q [R1 | Q.T Y], as LAPACK does, so gradients hold there too."""
    A = _as_tensor(A, "linalg.qr")
    m, n = A.shape[-2:] if A.ndim >= 2 else (1, 1)
    if mode == "r":
        return _QR(Tensor._make(_xp(A.data).zeros((0,), A.dtype)), qr(A).R)
    if mode != "reduced" and not (mode == "complete" and m <= n):
        raise ValueError(f"linalg.qr: mode {mode!r} is not supported for {m} by {n} matrices "
                         "(reduced, r, and complete where m <= n are)")  # fmt: skip
    if m < n:
        q, r1 = qr(A[..., :m])
        return _QR(q, concatenate([r1, _T(q) @ A[..., m:]], axis=-1))
    return _QR(*_unpack(_qr(A), [(m, n), (n, n)]))


_Eigh = collections.namedtuple("eigh", ["eigenvalues", "eigenvectors"])


def _torch_eigh(t: Any, a: Any) -> Any:
    w, v = t.linalg.eigh((a + a.mT) / 2)
    return w, v * _torch_signs(t, v)


@primitive("linalg.eigh", save="y", samples=_SYM + [Sample(_matrices(2, 4, 4, spread=0.7))],
           torch=_torch_eigh, errors=_bad("linalg.eigh"))  # fmt: skip
def _eigh(xp, a):
    _square("linalg.eigh", a)
    a = _float(a)
    w, v = xp.linalg.eigh((a + xp.swapaxes(a, -1, -2)) / 2)
    return _pack(xp, w, v * _fix_signs(xp, v))


def _eigh_vjp(g: Any, y: Any, a: Any) -> Any:
    # PyTorch's rule: V (skew(V^T gV) / E + diag(gw)) V^T, E[i, j] = w[j] - w[i]; pairs of equal
    # eigenvalues (where the eigenvectors are not unique) contribute nothing.
    n = a.shape[-1]
    gw, gv = _unpack(g, [(n,), (n, n)])
    w, v = _unpack(y, [(n,), (n, n)])
    vg = _T(v) @ gv
    e = w[..., None, :] - w[..., :, None]
    same = e == 0
    inner = where(same, 0, (vg - _T(vg)) / 2 / where(same, 1, e)) + _diag_embed(gw)
    return v @ inner @ _T(v)


_eigh.defvjp(_eigh_vjp)


@_eigh.api
def eigh(A: Tensor, UPLO: str = "L") -> Any:
    """(eigenvalues ascending, eigenvectors as columns) of symmetric A: its symmetric part is
    used (UPLO is accepted, and ignored), so the gradient is symmetric, as PyTorch's; each
    eigenvector's largest entry is positive, so the answer is one on every device."""
    A = _as_tensor(A, "linalg.eigh")
    n = A.shape[-1] if A.ndim else 0
    return _Eigh(*_unpack(_eigh(A), [(n,), (n, n)]))


_SVD = collections.namedtuple("svd", ["U", "S", "Vh"])


def _svd_cores(shape: tuple, full: bool) -> list:
    m, n = shape[-2:]
    k = min(m, n)
    return [(m, m if full else k), (k,), (n if full else k, n)]


def _torch_svd(t: Any, a: Any, full_matrices: bool = True) -> Any:
    u, s, vh = t.linalg.svd(a, full_matrices=full_matrices)
    k = s.shape[-1]
    f = _torch_signs(t, u[..., :k])
    vh = t.cat([vh[..., :k, :] * f.mT, vh[..., k:, :]], -2)
    if u.shape[-1] > k:
        return t.cat([u[..., :k] * f, u[..., k:] * _torch_signs(t, u[..., k:])], -1), s, vh
    return u * f, s, vh


@primitive("linalg.svd", save="y", samples=[
    Sample(_matrices(3, 3, spread=1.0)), Sample(_matrices(4, 3, spread=1.0), full_matrices=False),
    Sample(_matrices(2, 3, 5, spread=0.5), full_matrices=False),
    Sample(_matrices(2, 3, 3, spread=0.5), full_matrices=True),
], torch=_torch_svd,
   errors=[Bad((3,), match="linalg.svd: the input tensor A must have")])  # fmt: skip
def _svd(xp, a, *, full_matrices=True):
    _square("linalg.svd", a, square=False)
    try:
        u, s, vh = xp.linalg.svd(a, full_matrices=full_matrices)
    except np.linalg.LinAlgError:  # no convergence (inf in A): NaNs, as svdvals gives
        u, s, vh = (xp.full_like(r, xp.nan) for r in xp.linalg.svd(xp.zeros_like(a), full_matrices))
    k = s.shape[-1]
    f = _fix_signs(xp, u[..., :k])
    vh = xp.concatenate([vh[..., :k, :] * xp.swapaxes(f, -1, -2), vh[..., k:, :]], axis=-2)
    if u.shape[-1] > k:  # full_matrices: the extra columns take the same convention
        u = xp.concatenate([u[..., :k] * f, u[..., k:] * _fix_signs(xp, u[..., k:])], axis=-1)
    return _pack(xp, u if u.shape[-1] > k else u * f, s, vh)


def _svd_vjp(g: Any, y: Any, a: Any, *, full_matrices: bool) -> Any:
    # PyTorch's rule for the reduced factors (extra columns of a full U or Vh get no gradient):
    # U [(skew(U^T gU) S + S skew(V^T gV)) / E + diag(gS)] V^T plus the projections of gU, gV
    # off the ranges of U and V; E[j, k] = s_k^2 - s_j^2, equal pairs contribute nothing.
    m, n = a.shape[-2:]
    k = min(m, n)
    cores = _svd_cores(a.shape, full_matrices)
    gu, gs, gvh = _unpack(g, cores)
    u, s, vh = _unpack(y, cores)
    u, gu, vh, gvh = u[..., :k], gu[..., :k], vh[..., :k, :], gvh[..., :k, :]
    ug, vg = _T(u) @ gu, vh @ _T(gvh)
    s2 = s * s
    e = s2[..., None, :] - s2[..., :, None]
    same = e == 0
    num = (ug - _T(ug)) * s[..., None, :] + s[..., :, None] * (vg - _T(vg))
    core = where(same, 0, num / where(same, 1, e)) + _diag_embed(gs)
    if m > k:
        gus = gu / s[..., None, :]
        return (u @ core + gus - u @ (_T(u) @ gus)) @ vh
    if n > k:
        sgv = gvh / s[..., :, None]
        return u @ (core @ vh + sgv - (sgv @ _T(vh)) @ vh)
    return u @ core @ vh


_svd.defvjp(_svd_vjp)


@_svd.api
def svd(A: Tensor, full_matrices: bool = True) -> Any:
    """(U, S, Vh) with A = U diag(S) Vh, S descending; full_matrices=True (PyTorch's default)
    gives square U and Vh. Gradients are those of the reduced factors (distinct S); each column
    of U has its largest entry positive (Vh's rows follow), one answer on every device."""
    A = _as_tensor(A, "linalg.svd")
    _square("linalg.svd", A, square=False)
    return _SVD(*_unpack(_svd(A, full_matrices=full_matrices),
                         _svd_cores(A.shape, full_matrices)))  # fmt: skip


@primitive("linalg.svdvals", save="x", samples=[
    Sample(_matrices(3, 3, spread=1.0)), Sample(_matrices(2, 4, 3, spread=0.5)),
    Sample(_matrices(3, 5, spread=1.0)),
], torch="linalg.svdvals", numpy=lambda np, a: np.linalg.svd(a, compute_uv=False),
   errors=[Bad((3,), match="linalg.svdvals: the input tensor A must have")])  # fmt: skip
def svdvals(xp, a):
    """The singular values of each matrix, descending (their gradient holds at repeated ones)."""
    _square("linalg.svdvals", a, square=False)
    return xp.linalg.svd(a, compute_uv=False)


def _svdvals_vjp(g: Any, y: Any, a: Any) -> Any:
    u, _, vh = _unpack(_svd(a, full_matrices=False), _svd_cores(a.shape, False))
    return (u * g[..., None, :]) @ vh


svdvals.defvjp(_svdvals_vjp)


@composite(
    "linalg.pinv",
    samples=[
        Sample(_matrices(3, 3, spread=1.0)),
        Sample(_matrices(4, 2, spread=1.0)),
        Sample(_matrices(2, 2, 3, spread=1.0)),
    ],  # fmt: skip
    torch="linalg.pinv",
    numpy="linalg.pinv",
    errors=[Bad((3,), match="linalg.pinv: the input tensor A must have")],
)
def pinv(A: Tensor, *, rtol: float | None = None, hermitian: bool = False) -> Tensor:
    """The pseudo-inverse, through the SVD (also for hermitian=True): singular values at most
    rtol times the largest (default max(m, n) * eps of the dtype) count as zero."""
    A = _as_tensor(A, "linalg.pinv")
    _square("linalg.pinv", A, square=False)
    u, s, vh = svd(A, full_matrices=False)
    if rtol is None:
        rtol = max(A.shape[-2:]) * np.finfo(A.dtype if A.dtype.kind == "f" else float).eps
    keep = s > rtol * amax(s, axis=-1, keepdims=True).detach()
    return (_T(vh) * where(keep, 1 / where(keep, s, 1), 0)[..., None, :]) @ _T(u)


@composite(
    "linalg.matrix_power",
    samples=[
        Sample(_matrices(3, 3), 3),
        Sample(_matrices(2, 3, 3), -2),
        Sample(_matrices(3, 3), 1),
    ],
    torch="linalg.matrix_power",
    numpy="linalg.matrix_power",
    errors=[
        Bad((2, 3), 2, match=r"linalg.matrix_power: A must be batches of square matrices"),
        Bad((3, 3), 1.5, error=TypeError, match="linalg.matrix_power: n must be an int"),
    ],
)
def matrix_power(A: Tensor, n: int) -> Tensor:
    """A @ A @ ... (n times) by repeated squaring; n = 0 gives the identity, n < 0 powers of
    the inverse."""
    A = _as_tensor(A, "linalg.matrix_power")
    _square("linalg.matrix_power", A)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg.matrix_power: n must be an int, not {n!r}")
    if n < 0:
        A, n = inv(A), -n
    out = None
    while n:
        if n & 1:
            out = A if out is None else out @ A
        n >>= 1
        if n:
            A = A @ A
    if out is None:  # the identity, a constant
        return Tensor._make(_xp(A).broadcast_to(_eye(A.data, A.shape[-1]), A.shape).copy())
    return out


# -- norms ------------------------------------------------------------------------------------


def _norm_input(op: str, x: Any, dtype: Any) -> Tensor:
    x = _as_tensor(x, op)
    if dtype is not None:
        x = x.astype(dtype)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor as input, got {x.dtype}")
    return x


@composite(
    "linalg.vector_norm",
    samples=[
        Sample((3, 4)),
        Sample((3, 4), 1, dim=1),
        Sample((2, 3, 4), 3.0, dim=[0, 2], keepdim=True),
        Sample((3, 4), float("inf"), dim=0),
        Sample((3, 4), -float("inf")),
        Sample((5,), 0.5),
    ],  # fmt: skip
    torch="linalg.vector_norm",
    errors=[
        Bad((3,), "fro", error=TypeError, match=r"linalg.vector_norm: ord must be a number"),
        Bad((3,), dim=2, match="out of range"),
    ],  # fmt: skip
)
def vector_norm(
    x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """The ord-norm of x over dim (every element when None), as torch.linalg.vector_norm: ord 2
    (its gradient at 0 is 0, as PyTorch's), inf, -inf, 0 (the count of nonzeros), any number."""
    x = _norm_input("linalg.vector_norm", x, dtype)
    if isinstance(ord, (str, bool)) or not isinstance(ord, (int, float, np.number)):
        raise TypeError(f"linalg.vector_norm: ord must be a number, not {ord!r}")
    axis = normalize_axis("linalg.vector_norm", x.ndim, dim)
    red = {"axis": axis, "keepdims": keepdim}
    if ord == math.inf or ord == -math.inf:
        return (amax if ord > 0 else amin)(abs(x), **red)
    if ord == 0:
        return sum((x != 0).astype(x.dtype), **red)
    if ord == 1:
        return sum(abs(x), **red)
    s = sum(x * x if ord == 2 else abs(x) ** ord, **red)
    zero = s == 0  # the root's derivative is infinite there: select 0 instead, as PyTorch does
    return where(zero, 0, (sqrt(where(zero, 1, s)) if ord == 2 else where(zero, 1, s) ** (1 / ord)))


def _matrix_dims(op: str, A: Tensor, dim: Any) -> tuple[int, int]:
    if A.ndim < 2:
        raise ValueError(f"{op}: the input tensor A must have at least 2 dimensions, got {A.ndim}")
    d = [normalize_axis(op, A.ndim, i)[0] for i in dim]
    if len(d) != 2 or d[0] == d[1]:
        raise ValueError(f"{op}: dim must be two different dims, got {dim!r}")
    return d[0], d[1]


@composite(
    "linalg.matrix_norm",
    samples=[Sample(_matrices(3, 4, spread=1.0))]
    + [Sample(_matrices(2, 3, 3, spread=1.0), o) for o in ("nuc", 2, -2, 1, -1, math.inf)]
    + [
        Sample(_matrices(3, 2, 4, spread=1.0), -math.inf, dim=[2, 0], keepdim=True),
        Sample(_matrices(3, 2, 4, spread=1.0), "nuc", dim=[0, 2], keepdim=True),
    ],  # fmt: skip
    torch="linalg.matrix_norm",
    errors=[
        Bad((3,), match=r"linalg.matrix_norm: the input tensor A must have at least 2"),
        Bad((3, 3), 3, match=r"linalg.matrix_norm: ord must be"),
    ],  # fmt: skip
)
def matrix_norm(
    A: Tensor, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """The ord-norm of the matrices over the two dims `dim`, as torch.linalg.matrix_norm: "fro",
    "nuc", 2 / -2 (largest / smallest singular value), 1 / -1 (column sums), inf / -inf (rows)."""
    op = "linalg.matrix_norm"
    A = _norm_input(op, A, dtype)
    r, c = _matrix_dims(op, A, dim)
    if ord == "fro":
        return vector_norm(A, 2, (r, c), keepdim)
    if ord in ("nuc", 2, -2):
        rest = [i for i in range(A.ndim) if i not in (r, c)]
        s = svdvals(permute(A, rest + [r, c]))
        s = (sum if ord == "nuc" else amax if ord == 2 else amin)(s, axis=(s.ndim - 1,))
        for i in sorted((r, c)) if keepdim else ():
            s = s.reshape(s.shape[:i] + (1,) + s.shape[i:])
        return s
    if ord in (1, -1, math.inf, -math.inf):
        if ord in (math.inf, -math.inf):
            r, c = c, r
        ext = amax if ord > 0 else amin
        sums = sum(abs(A), axis=(r,), keepdims=True)
        out = ext(sums, axis=(c,), keepdims=True)
        return out if keepdim else out.reshape(tuple(n for i, n in enumerate(out.shape)
                                                     if i not in (r, c)))  # fmt: skip
    raise ValueError(f"{op}: ord must be 'fro', 'nuc', 2, -2, 1, -1, inf or -inf, not {ord!r}")


@composite(
    "linalg.norm",
    samples=[
        Sample((3, 4)),
        Sample((4,), 3),
        Sample(_matrices(3, 3, spread=1.0), "nuc"),
        Sample((2, 3, 4), None, [0, 2]),
        Sample((2, 3), 1, 1, True),
        Sample(_matrices(3, 3, spread=1.0), 2),
    ],  # fmt: skip
    torch="linalg.norm",
    errors=[
        Bad((2, 3, 4), 2, match=r"linalg.norm: .*1-D or 2-D"),
        Bad((3,), "fro", match=r"linalg.norm: .*'fro'"),
    ],  # fmt: skip
)
def linalg_norm(
    A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """torch.linalg.norm: a vector norm over one dim (or of every element when ord and dim are
    None), a matrix norm over two; with dim None, A 1-D takes a vector norm, A 2-D a matrix one."""
    op = "linalg.norm"
    A = _norm_input(op, A, dtype)
    if dim is None and ord is not None and A.ndim not in (1, 2):
        raise ValueError(f"{op}: with an ord and no dim, A must be 1-D or 2-D, not {A.ndim}-D")
    vector = isinstance(dim, int) or (dim is None and (ord is None or A.ndim == 1))
    if vector or (dim is not None and len(dim) == 1):
        if isinstance(ord, str):
            raise ValueError(f"{op}: ord {ord!r} is a matrix norm, for two dims")
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim)
    return matrix_norm(A, "fro" if ord is None else ord, (-2, -1) if dim is None else dim, keepdim)


@composite(
    "norm",
    samples=[
        Sample((3, 4)),
        Sample((3, 4), 1, 1),
        Sample((2, 3, 4), "fro", [0, 2], True),
        Sample((2, 3, 4), 3, [1, 2]),
        Sample(_matrices(3, 3, spread=1.0), "nuc"),
    ],  # fmt: skip
    torch="norm",
    errors=[Bad((3,), "xyz", match=r"norm: p must be")],
)
def norm(
    x: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None
) -> Tensor:
    """torch.norm: p "fro" (the 2-norm of the elements over dim), "nuc" (over two dims) or a
    number (a vector norm over dim, one or several)."""
    x = _norm_input("norm", x, dtype)
    if p == "nuc":
        return matrix_norm(x, "nuc", (-2, -1) if dim is None else dim, keepdim)
    if isinstance(p, str) and p != "fro":
        raise ValueError(f"norm: p must be 'fro', 'nuc' or a number, not {p!r}")
    return vector_norm(x, 2 if p in ("fro", None) else p, dim, keepdim)


def _product(name: str, ndims: tuple, twin: str, samples: list, bad: Any) -> Any:
    """PyTorch's matmul of fixed ranks (mm: 2-D by 2-D, bmm: 3-D by 3-D, mv: 2-D by 1-D)."""

    def fn(input: Tensor, mat2: Tensor) -> Tensor:
        if (input.ndim, mat2.ndim) != ndims:
            raise ValueError(
                f"{name}: expected {ndims[0]}-D and {ndims[1]}-D operands, got shapes "
                f"{input.shape} and {mat2.shape}"
            )
        return matmul(input, mat2)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"PyTorch's {name}: matmul of a {ndims[0]}-D and a {ndims[1]}-D tensor."
    return composite(name, samples=samples, torch=twin, numpy="matmul", errors=[bad])(fn)


mm = _product("mm", (2, 2), "mm", [Sample((3, 4), (4, 5))], Bad((3,), (3, 4), match="2-D"))
bmm = _product(
    "bmm", (3, 3), "bmm", [Sample((2, 3, 4), (2, 4, 5))], Bad((3, 4), (4, 5), match="3-D")
)
mv = _product("mv", (2, 1), "mv", [Sample((3, 4), (4,))], Bad((3, 4), (4, 1), match="1-D"))
