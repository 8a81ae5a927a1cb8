"""Derivatives at kinks and special points, against PyTorch: each edge case is its own test.

Each case runs one expression in gradtensor and its twin in PyTorch on the same inputs, and
compares the value and the gradient of every input that requires grad, for a given upstream
gradient (ones by default), once by gt.grad and once with create_graph=True (the derivative rules
then run on Tensors, and fused ops differentiate their composites). Where PyTorch gives NaN or an
infinity, gradtensor must give the same; where PyTorch gives a number, gradtensor must give that
number. Float64 unless a case says float32 (then both libraries run in float32, and the tolerance
is float32's).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from torch_compare import as_numpy, mismatch

import gradtensor as gt

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TF = torch.nn.functional
F = gt.nn.functional

INF = float("inf")
NAN = float("nan")
TOL = {"float64": (1e-12, 1e-15), "float32": (1e-5, 1e-6)}  # (rtol, atol)


@dataclass(frozen=True)
class Edge:
    """gt_fn(*inputs) against torch_fn(*inputs); gradients of the float inputs not in `const`."""

    gt_fn: Callable
    torch_fn: Callable
    inputs: tuple
    upstream: Any = None  # the gradient of the output (ones when None)
    dtype: str = "float64"
    const: tuple = ()  # positions of float inputs that do not require grad
    rtol: float | None = None
    torch_warns: str | None = None  # a warning PyTorch gives here (and gradtensor need not)
    kernels: bool | None = None  # for linear: the fused kernels on, off, or as configured


def _tensors(case: Edge, lib: str) -> list:
    out = []
    for k, a in enumerate(case.inputs):
        a = np.asarray(a)
        floating = a.dtype.kind == "f"
        grad = floating and k not in case.const
        if lib == "gt":
            out.append(gt.tensor(a, dtype=case.dtype if floating else None, requires_grad=grad))
        else:
            dt = getattr(torch, case.dtype) if floating else None
            out.append(torch.tensor(a, dtype=dt, requires_grad=grad))
    return out


def _kernels(case: Edge) -> Any:
    if case.kernels is None:
        return contextlib.nullcontext()
    if case.kernels and not gt.kernels_enabled():
        pytest.skip("the fused kernels (Numba) are not available here")
    return gt.use_kernels(case.kernels)


def check_edge(case: Edge, create_graph: bool = False) -> None:
    rtol, atol = TOL[case.dtype]
    rtol = case.rtol if case.rtol is not None else rtol
    xs, ts = _tensors(case, "gt"), _tensors(case, "torch")
    with np.errstate(all="ignore"), _kernels(case):  # NaN against a number, not a warning
        y = case.gt_fn(*xs)
    with warnings.catch_warnings():
        if case.torch_warns:
            warnings.filterwarnings("ignore", message=case.torch_warns)
        ty = case.torch_fn(*ts)
    failures = []
    why = mismatch(as_numpy(y), as_numpy(ty), rtol, atol)
    if why:
        failures.append(f"value: {why}")

    live = [k for k, t in enumerate(ts) if t.requires_grad]
    up = np.ones(tuple(ty.shape)) if case.upstream is None else np.asarray(case.upstream)
    with warnings.catch_warnings():
        if case.torch_warns:
            warnings.filterwarnings("ignore", message=case.torch_warns)
        tgrads = torch.autograd.grad(
            ty, [ts[k] for k in live], torch.tensor(up, dtype=ty.dtype), allow_unused=True
        )
    try:
        with np.errstate(all="ignore"), _kernels(case):
            ggrads = gt.grad(
                y,
                [xs[k] for k in live],
                gt.tensor(up, dtype=case.dtype),
                create_graph=create_graph,
                allow_unused=True,
            )
    except Exception as exc:  # a crash in backward is a finding like a wrong number
        failures.append(f"backward raised {type(exc).__name__}: {exc}")
        ggrads = None
    if ggrads is not None:
        for k, g, tg in zip(live, ggrads, tgrads):
            shape = np.shape(case.inputs[k])
            want = np.zeros(shape, case.dtype) if tg is None else as_numpy(tg)
            got = np.zeros(shape, case.dtype) if g is None else as_numpy(g)
            why = mismatch(got, want, rtol, atol)
            if why:
                failures.append(f"gradient of input {k}: {why}")
    assert not failures, "\n".join(failures)


# -- the cases ----------------------------------------------------------------------------------


def f64(*values: Any) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _t_where_float(c: Any, a: Any, b: Any) -> Any:
    return torch.where(c != 0, a, b)


CASES: dict[str, Edge] = {}

# relu, abs, leaky_relu at 0 (and -0.0)
CASES["relu-at-0"] = Edge(gt.relu, torch.relu, (f64(-1.0, -0.0, 0.0, 1e-300, 1.0),))
CASES["abs-at-0"] = Edge(gt.abs, torch.abs, (f64(-1.0, -0.0, 0.0, 1.0),))
CASES["leaky_relu-at-0"] = Edge(
    lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), (f64(-1.0, 0.0, 1.0),)
)

# maximum / minimum at ties: PyTorch splits the gradient evenly
TIES_A, TIES_B = f64(0.0, 1.0, -2.0, 3.0, 5.0), f64(0.0, 1.0, -2.0, 2.0, 6.0)
CASES["maximum-ties"] = Edge(gt.maximum, torch.maximum, (TIES_A, TIES_B))
CASES["minimum-ties"] = Edge(gt.minimum, torch.minimum, (TIES_A, TIES_B))
CASES["maximum-ties-broadcast"] = Edge(
    gt.maximum, torch.maximum, (f64(0.0, 1.0, 2.0), np.array([[1.0], [0.0]]))
)
CASES["maximum-scalar-0-tie"] = Edge(
    lambda x: gt.maximum(x, 0.0),
    lambda x: torch.maximum(x, torch.zeros((), dtype=x.dtype)),
    (f64(-1.0, 0.0, 1.0),),
)

# clip at its bounds: PyTorch passes the gradient at x == bound
CLIP_X = f64(-1.0, -0.5, 0.0, 0.5, 1.0)
CASES["clip-at-bounds"] = Edge(
    lambda x: gt.clip(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5), (CLIP_X,)
)
CASES["clip-min-only-at-bound"] = Edge(
    lambda x: gt.clip(x, 0.0, None), lambda x: torch.clamp(x, min=0.0), (CLIP_X,)
)
CASES["clip-max-only-at-bound"] = Edge(
    lambda x: gt.clip(x, None, 0.5), lambda x: torch.clamp(x, max=0.5), (CLIP_X,)
)
CASES["clip-min-equals-max"] = Edge(
    lambda x: gt.clip(x, 0.0, 0.0), lambda x: torch.clamp(x, 0.0, 0.0), (CLIP_X,)
)
CASES["clip-tensor-bounds-at-ties"] = Edge(
    gt.clip,
    torch.clamp,
    (f64(0.0, 1.0, 2.0, 3.0, -1.0), f64(0.0, 0.0, 2.0, 0.0, 0.0), f64(1.0, 1.0, 2.0, 3.0, 1.0)),
)

# max / min reductions with ties (torch.amax / amin share the gradient among the ties)
CASES["max-ties"] = Edge(gt.max, torch.amax, (f64(1.0, 3.0, 3.0, 2.0),))
CASES["max-all-equal"] = Edge(gt.max, torch.amax, (f64(2.0, 2.0, 2.0, 2.0),))
CASES["min-ties"] = Edge(gt.min, torch.amin, (f64(1.0, -3.0, 2.0, -3.0, -3.0),))
TIES_2D = np.array([[1.0, 5.0, 0.0], [1.0, 2.0, 0.0], [0.0, 5.0, 0.0]])
CASES["max-ties-axis0"] = Edge(
    lambda x: gt.amax(x, axis=0), lambda x: torch.amax(x, dim=0), (TIES_2D,), f64(1.0, -2.0, 3.0)
)
CASES["min-ties-axis1-keepdims"] = Edge(
    lambda x: gt.amin(x, axis=1, keepdims=True),
    lambda x: torch.amin(x, dim=1, keepdim=True),
    (TIES_2D,),
    np.array([[2.0], [-1.0], [0.5]]),
)
# max / min along a dim (PyTorch's values and indices): the gradient reaches the index only
CASES["max-dim-ties"] = Edge(
    lambda x: gt.max(x, 1).values, lambda x: torch.max(x, 1).values, (TIES_2D,), f64(1.0, -2.0, 3.0)
)
CASES["min-dim-ties-keepdim"] = Edge(
    lambda x: x.min(dim=0, keepdim=True)[0],
    lambda x: x.min(dim=0, keepdim=True)[0],
    (TIES_2D,),
    np.array([[2.0, -1.0, 0.5]]),
)
CASES["max-ties-two-axes"] = Edge(
    lambda x: gt.amax(x, dim=(0, 2)),
    lambda x: torch.amax(x, dim=(0, 2)),
    (np.array([[[1.0, 4.0], [2.0, 2.0]], [[4.0, 0.0], [2.0, 1.0]]]),),
    f64(1.0, -3.0),
)

# softplus and BCE-with-logits at 0: the derivative is sigmoid(0) = 1/2
CASES["softplus-at-0"] = Edge(F.softplus, TF.softplus, (f64(0.0, -0.0),))
CASES["softplus-around-0"] = Edge(F.softplus, TF.softplus, (f64(-1.0, -1e-20, 1e-20, 1.0),))
CASES["softplus-far-out"] = Edge(F.softplus, TF.softplus, (f64(-800.0, -40.0, 40.0, 800.0),))
BCE_T = f64(0.0, 0.5, 1.0)
for _red in ("mean", "sum", "none"):
    CASES[f"bce_with_logits-at-0-{_red}"] = Edge(
        lambda x, t, r=_red: F.binary_cross_entropy_with_logits(x, t, reduction=r),
        lambda x, t, r=_red: TF.binary_cross_entropy_with_logits(x, t, reduction=r),
        (f64(0.0, 0.0, 0.0), BCE_T),
        const=(1,),
    )
CASES["bce_with_logits-at-0-target-grad"] = Edge(
    F.binary_cross_entropy_with_logits,
    TF.binary_cross_entropy_with_logits,
    (f64(0.0, 0.0, 2.0), BCE_T),
)
CASES["sigmoid-saturated"] = Edge(gt.sigmoid, torch.sigmoid, (f64(-800.0, -40.0, 40.0, 800.0),))
CASES["gelu-at-0"] = Edge(F.gelu, TF.gelu, (f64(0.0, -0.0),))
CASES["gelu-tanh-at-0"] = Edge(
    lambda x: F.gelu(x, approximate="tanh"),
    lambda x: TF.gelu(x, approximate="tanh"),
    (f64(0.0, -0.0),),
)
CASES["silu-at-0"] = Edge(F.silu, TF.silu, (f64(0.0, -0.0),))

# sqrt and log at 0: an infinite derivative, as in PyTorch
CASES["sqrt-at-0"] = Edge(gt.sqrt, torch.sqrt, (f64(0.0, 1.0, 4.0),))
CASES["sqrt-at-0-zero-upstream"] = Edge(gt.sqrt, torch.sqrt, (f64(0.0, 1.0),), f64(0.0, 1.0))
CASES["log-at-0"] = Edge(gt.log, torch.log, (f64(0.0, 1.0),))
CASES["log1p-at-minus-1"] = Edge(gt.log1p, torch.log1p, (f64(-1.0, 0.0),))

# powers at base 0: d(x**0)/dx is 0 everywhere, 0 included
for _p, _x in [(0, f64(0.0, 1.0, -2.0)), (1, f64(0.0, 1.0, -2.0)), (2, f64(0.0, 1.0, -2.0))]:
    for _e in (_p, float(_p)):
        CASES[f"pow-base-0-exponent-{_e!r}"] = Edge(
            lambda x, e=_e: x**e, lambda x, e=_e: x**e, (_x,)
        )
CASES["pow-base-0-exponent-3"] = Edge(lambda x: x**3, lambda x: x**3, (f64(0.0, 1.0, -2.0),))
CASES["pow-base-0-exponent-0.5"] = Edge(lambda x: x**0.5, lambda x: x**0.5, (f64(0.0, 1.0, 4.0),))
for _e in (0.0, 1.0, 2.0, 0.5):
    CASES[f"pow-base-0-tensor-exponent-{_e!r}"] = Edge(
        lambda x, e: x**e, lambda x, e: x**e, (f64(0.0, 0.0), f64(_e, _e))
    )
CASES["pow-tensor-exponent-0-at-nonzero"] = Edge(
    lambda x, e: x**e, lambda x, e: x**e, (f64(2.0, 0.5), f64(0.0, 0.0))
)
CASES["rpow-base-0"] = Edge(lambda x: 0.0**x, lambda x: 0.0**x, (f64(0.0, 1.0, 2.0),))
CASES["square-via-pow-at-0-second-input"] = Edge(
    lambda x, y: x**2 * y, lambda x, y: x**2 * y, (f64(0.0, 0.0), f64(1.0, -1.0))
)

# std / var of a constant and over an axis of length 1: PyTorch's std gives 0 where std is 0
CONST = f64(3.0, 3.0, 3.0, 3.0)
CASES["std-constant"] = Edge(gt.std, torch.std, (CONST,))
CASES["std-constant-population"] = Edge(
    lambda x: gt.std(x, correction=0), lambda x: torch.std(x, correction=0), (CONST,)
)
CASES["std-constant-ddof1"] = Edge(
    lambda x: gt.std(x, ddof=1), lambda x: torch.std(x, correction=1), (CONST,)
)
CASES["var-constant"] = Edge(gt.var, torch.var, (CONST,))
CASES["std-constant-row"] = Edge(
    lambda x: gt.std(x, axis=1),
    lambda x: torch.std(x, dim=1),
    (np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]]),),
    f64(1.0, -2.0),
)
COLUMN = np.array([[3.0], [-1.0], [0.0]])
CASES["std-axis-of-length-1"] = Edge(
    lambda x: gt.std(x, axis=1, ddof=0), lambda x: torch.std(x, dim=1, correction=0), (COLUMN,)
)
CASES["var-axis-of-length-1"] = Edge(
    lambda x: gt.var(x, axis=1, ddof=0), lambda x: torch.var(x, dim=1, correction=0), (COLUMN,)
)
CASES["std-axis-of-length-1-ddof1"] = Edge(
    lambda x: gt.std(x, axis=1, ddof=1),
    lambda x: torch.std(x, dim=1, correction=1),
    (COLUMN,),
    torch_warns="std\\(\\): degrees of freedom",
)
CASES["var-axis-of-length-1-ddof1"] = Edge(
    lambda x: gt.var(x, axis=1, ddof=1),
    lambda x: torch.var(x, dim=1, correction=1),
    (COLUMN,),
    torch_warns="var\\(\\): degrees of freedom",
)
CASES["std-0d"] = Edge(
    lambda x: gt.std(x, correction=0), lambda x: torch.std(x, correction=0), (np.array(2.5),)
)

# infinite upstream gradients at dead units: 0 * inf must be 0 where the unit is off
RELU_UP = f64(INF, -INF, INF, 1.0)
CASES["relu-inf-upstream-dead"] = Edge(gt.relu, torch.relu, (f64(-1.0, -2.0, 0.0, 2.0),), RELU_UP)
CASES["relu-inf-upstream-live"] = Edge(gt.relu, torch.relu, (f64(-1.0, 2.0),), f64(INF, -INF))
CASES["maximum-0-inf-upstream-dead"] = Edge(
    lambda x: gt.maximum(x, 0.0),
    lambda x: torch.maximum(x, torch.zeros((), dtype=x.dtype)),
    (f64(-1.0, -2.0, 3.0),),
    f64(INF, -INF, 1.0),
)
CASES["clip-inf-upstream-outside"] = Edge(
    lambda x: gt.clip(x, -1.0, 1.0),
    lambda x: torch.clamp(x, -1.0, 1.0),
    (f64(-2.0, 2.0, 0.0),),
    f64(INF, -INF, 1.0),
)
CASES["abs-inf-upstream-at-0"] = Edge(gt.abs, torch.abs, (f64(0.0, 1.0),), f64(INF, INF))
LIN_X = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
LIN_W = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
LIN_B = f64(0.0, 0.0, 0.0, 0.0)
# z = x @ w.T + b = [[1, -1, 0, 0], [0.5, -0.5, 2, -2]]: infinities only where z <= 0
LIN_UP = np.array([[1.0, INF, -INF, INF], [2.0, -INF, -1.0, INF]])
for _on, _path in [(True, "kernels"), (False, "arrays")]:
    CASES[f"linear-relu-inf-upstream-dead-{_path}"] = Edge(
        lambda x, w, b: F.linear(x, w, b, activation="relu"),
        lambda x, w, b: torch.relu(TF.linear(x, w, b)),
        (LIN_X, LIN_W, LIN_B),
        LIN_UP,
        kernels=_on,
    )
    CASES[f"linear-relu-at-0-{_path}"] = Edge(
        lambda x, w, b: F.linear(x, w, b, activation="relu"),
        lambda x, w, b: torch.relu(TF.linear(x, w, b)),
        (LIN_X, LIN_W, LIN_B),
        np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]),
        kernels=_on,
    )

# division by tiny denominators: the gradient a / b**2 is finite where (a / b) / b is
CASES["divide-tiny-denominator"] = Edge(
    lambda a, b: a / b, lambda a, b: a / b, (f64(1e-200, 1e-300), f64(1e-200, 1e-160))
)
CASES["divide-tiny-denominator-float32"] = Edge(
    lambda a, b: a / b,
    lambda a, b: a / b,
    (np.array([1e-30, 1e-20]), np.array([1e-30, 1e-20])),
    dtype="float32",
)
CASES["divide-gradient-overflows-like-torch"] = Edge(
    lambda a, b: a / b, lambda a, b: a / b, (f64(1.0), f64(1e-160))
)
CASES["divide-by-zero"] = Edge(
    lambda a, b: a / b, lambda a, b: a / b, (f64(1.0, 0.0, -1.0), f64(0.0, 0.0, 0.0))
)

# softmax, log_softmax, cross_entropy, logsumexp with logits near 1e4, float64 and float32
BIG = np.array([[1e4, 1e4 + 1, 1e4 - 2, -1e4], [-1e4, -1e4 + 0.5, -1e4 - 3, -1e4 + 2]])
BIG_UP = np.array([[1.0, -2.0, 0.5, 3.0], [0.25, -1.0, 2.0, -0.5]])  # not ones: sum(softmax) = 1
CE_TARGET = np.array([1, 3])
for _dt in ("float64", "float32"):
    _r = 1e-10 if _dt == "float64" else None
    CASES[f"softmax-logits-1e4-{_dt}"] = Edge(
        lambda x: F.softmax(x, axis=-1),
        lambda x: TF.softmax(x, dim=-1),
        (BIG,),
        BIG_UP,
        dtype=_dt,
        rtol=_r,
    )
    CASES[f"log_softmax-logits-1e4-{_dt}"] = Edge(
        lambda x: F.log_softmax(x, axis=-1),
        lambda x: TF.log_softmax(x, dim=-1),
        (BIG,),
        BIG_UP,
        dtype=_dt,
        rtol=_r,
    )
    CASES[f"cross_entropy-logits-1e4-{_dt}"] = Edge(
        lambda x, t: F.cross_entropy(x, t),
        lambda x, t: TF.cross_entropy(x, t),
        (BIG, CE_TARGET),
        dtype=_dt,
        rtol=_r,
    )
    CASES[f"logsumexp-logits-1e4-{_dt}"] = Edge(
        lambda x: gt.logsumexp(x, axis=-1),
        lambda x: torch.logsumexp(x, dim=-1),
        (BIG,),
        f64(1.0, -2.0),
        dtype=_dt,
        rtol=_r,
    )

# -inf logits (masking): probability 0, finite gradients
MASKED = f64(0.0, -INF, 1.0)
CASES["softmax-minus-inf-logit"] = Edge(
    lambda x: F.softmax(x, axis=0), lambda x: TF.softmax(x, dim=0), (MASKED,), f64(1.0, 2.0, 3.0)
)
CASES["log_softmax-minus-inf-logit"] = Edge(
    lambda x: F.log_softmax(x, axis=0),
    lambda x: TF.log_softmax(x, dim=0),
    (MASKED,),
    f64(1.0, 2.0, 3.0),
)
CASES["logsumexp-minus-inf-entry"] = Edge(
    lambda x: gt.logsumexp(x, axis=0), lambda x: torch.logsumexp(x, dim=0), (MASKED,)
)
CASES["logsumexp-all-minus-inf"] = Edge(
    lambda x: gt.logsumexp(x, axis=0), lambda x: torch.logsumexp(x, dim=0), (f64(-INF, -INF),)
)
CASES["cross_entropy-minus-inf-other-class"] = Edge(
    lambda x, t: F.cross_entropy(x, t),
    lambda x, t: TF.cross_entropy(x, t),
    (np.array([[0.0, -INF, 1.0], [2.0, 0.0, -INF]]), np.array([2, 0])),
)

# where: a condition that is itself a float tensor requiring grad (it gets no gradient)
CASES["where-float-condition-requires-grad"] = Edge(
    gt.where, _t_where_float, (f64(1.0, 0.0, -2.0), f64(1.0, 2.0, 3.0), f64(4.0, 5.0, 6.0))
)
CASES["where-condition-is-the-value"] = Edge(
    lambda x: gt.where(x, x, -x), lambda x: torch.where(x != 0, x, -x), (f64(2.0, 0.0, -1.0),)
)
CASES["where-condition-from-the-value"] = Edge(
    lambda x: gt.where(x > 0, x, 0.0),
    lambda x: torch.where(x > 0, x, 0.0),
    (f64(2.0, 0.0, -1.0),),
    f64(INF, INF, -INF),
)

# prod with zeros: the product of the others, exactly
CASES["prod-one-zero"] = Edge(gt.prod, torch.prod, (f64(0.0, 2.0, 3.0),))
CASES["prod-two-zeros"] = Edge(gt.prod, torch.prod, (f64(0.0, 2.0, 0.0),))
CASES["prod-zeros-axis1"] = Edge(
    lambda x: gt.prod(x, axis=1),
    lambda x: torch.prod(x, dim=1),
    (np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0], [1.0, 2.0, 3.0]]),),
    f64(1.0, -1.0, 2.0),
)

# empty tensors: what PyTorch (and NumPy) do, not an error
CASES["logsumexp-over-empty-axis"] = Edge(
    lambda x: gt.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, dim=1), (np.zeros((3, 0)),)
)
CASES["log_softmax-of-empty"] = Edge(
    lambda x: F.log_softmax(x, axis=0), lambda x: TF.log_softmax(x, dim=0), (np.zeros((0,)),)
)
CASES["max-over-nonempty-axis-of-empty"] = Edge(
    lambda x: gt.amax(x, axis=1), lambda x: torch.amax(x, dim=1), (np.zeros((0, 3)),)
)
CASES["flatten-empty"] = Edge(
    lambda x: gt.flatten(x, 1), lambda x: torch.flatten(x, 1), (np.zeros((0, 1)),)
)
CASES["linear-no-input-features"] = Edge(
    lambda x, w: F.linear(x, w), TF.linear, (np.zeros((2, 0)), np.zeros((3, 0)))
)


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_edge_point_matches_pytorch(case):
    check_edge(case)


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_edge_point_matches_pytorch_with_create_graph(case):
    # The same derivative recorded as a graph: the rules run on Tensors, not plain arrays, and
    # fused ops (linear, cross_entropy) differentiate their composite instead.
    check_edge(case, create_graph=True)


# -- integer operators: bitwise, as PyTorch and NumPy (logical only on bools) ----------------

INT_A = np.array([5, 3, -1, 0, 12], dtype=np.int64)
INT_B = np.array([3, 6, 4, 7, 10], dtype=np.int64)
BOOL_A = np.array([True, True, False, False])
BOOL_B = np.array([True, False, True, False])
OPERATORS = {
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "invert": lambda a, b: ~a,
}


@pytest.mark.parametrize("kind", ["int64", "bool"])
@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_integer_operators_match_pytorch(op, kind):
    a, b = (INT_A, INT_B) if kind == "int64" else (BOOL_A, BOOL_B)
    fn = OPERATORS[op]
    want = fn(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    got = as_numpy(fn(gt.tensor(a), gt.tensor(b)))
    why = mismatch(got, want, 0.0, 0.0)
    assert why is None, why


def test_the_harness_fails_on_a_nan_gradient_and_on_a_value_off_by_1e_9():
    # sqrt(x * x) is |x|, but its derivative at 0 is inf * 0 = NaN: not torch.abs's 0
    with pytest.raises(AssertionError, match="gradient of input 0"):
        check_edge(Edge(lambda x: gt.sqrt(x * x), torch.abs, (f64(0.0, 1.0),)))
    with pytest.raises(AssertionError, match="value"):
        check_edge(Edge(gt.exp, lambda x: torch.exp(x) * (1 + 1e-9), (f64(1.0),)))
