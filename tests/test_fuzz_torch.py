"""Differential fuzzer: random programs of gradtensor ops, run against PyTorch in float64.

Hypothesis draws a small program, a DAG of 1-6 ops over 1-3 input tensors (random shapes,
broadcastable ones, size-1 axes, 0-d, now and then an empty axis; data uniform in a range or on a
grid of quarters, which makes exact zeros and ties), runs it in gradtensor and in PyTorch through
the twin table `TWINS` (one gradtensor and one PyTorch expression per op), and compares every
intermediate value, then the gradients of a random-weighted sum of the output with respect to
every input: by gt.grad, by .backward(), or with create_graph=True (where the derivative rules run
on Tensors instead of plain arrays). Ops that need a domain only get arguments whose value range
(tracked while drawing) lies inside it, so a failure is a disagreement, not an overflow. Layers
and losses bring their own parameter and target tensors (inputs too), and a tie that rounding
breaks differently in the two libraries (a relu input of 1e-17 against 0) discards the example.

Running it:
    python -m pytest tests/test_fuzz_torch.py -q -p no:cacheprovider   # CI: 150 programs, ~3 s
    GRADTENSOR_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz_torch.py -p no:cacheprovider
    ... --hypothesis-seed=1234                 # repeat one run exactly
    GRADTENSOR_FUZZ_EXCLUDE=softplus,std ...   # leave ops out while a known bug is being fixed
                                               # (a debugging aid: CI excludes nothing)
A failure prints the program (`v3 = relu(v2)`, one line per step, with the seed of its data), the
step whose value or the input whose gradient differs, and both values. Replay it with
`check_program(Program.parse(<the printed text>))`, or with the `@reproduce_failure` blob that
hypothesis prints.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch_compare import as_numpy, mismatch, torch_activation

import gradtensor as gt
from gradtensor.ops import REGISTRY

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is the test oracle)")
TF = torch.nn.functional
F = gt.nn.functional

EXAMPLES = int(os.environ.get("GRADTENSOR_FUZZ_EXAMPLES", "150"))
EXCLUDE = {s.strip() for s in os.environ.get("GRADTENSOR_FUZZ_EXCLUDE", "").split(",") if s.strip()}
settings.register_profile(
    "gradtensor-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("gradtensor-fuzz")

RTOL = 1e-9  # float64 results of up to six ops agree to about nine significant digits
ATOL = 1e-11  # relative to the largest |value| of the array compared (norm-wise)
BOUND = 1e6  # no value the generator lets through exceeds this in magnitude


# -- programs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One line of a program: `op(*values[args], **params)`; op "input" makes a leaf tensor."""

    op: str
    args: tuple[int, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def __repr__(self) -> str:
        parts = [f"v{i}" for i in self.args] + [f"{k}={_fmt(v)}" for k, v in self.params]
        return f"{self.op}({', '.join(parts)})"


@dataclass(frozen=True)
class Program:
    steps: tuple[Step, ...]
    seed: int  # of the input data and of the weights of the output's weighted sum

    def __repr__(self) -> str:
        lines = [f"    v{i} = {s!r}" for i, s in enumerate(self.steps)]
        return "Program(seed={}, output=v{}, steps=[\n{}\n])".format(
            self.seed, len(self.steps) - 1, "\n".join(lines)
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # how hypothesis prints a falsifying example

    @staticmethod
    def parse(text: str) -> Program:
        """The program that a failure printed, back from its repr, to replay: `check_program`."""
        found = re.search(r"seed=(\d+)", text)
        assert found, "no seed= in the text"
        lines = re.findall(r"^\s*v(\d+) = (.+)$", text, re.MULTILINE)

        def recorder(op: str) -> Any:
            return lambda *refs, **params: Step(op, tuple(r.i for r in refs), tuple(params.items()))

        names: dict[str, Any] = {op: recorder(op) for op in [*TWINS, "input"]}
        names.update({"slice": slice, "__builtins__": {}})
        steps = []
        for k, (n, call) in enumerate(lines):
            assert int(n) == k, f"line v{n} out of order"
            steps.append(eval(call, names))  # noqa: S307  (test code, reading its own output)
            names[f"v{k}"] = _Ref(k)
        return Program(tuple(steps), int(found.group(1)))


@dataclass(frozen=True)
class _Ref:
    i: int


def _fmt(v: Any) -> str:
    if isinstance(v, slice):
        return f"slice({v.start}, {v.stop}, {v.step})"
    if isinstance(v, tuple):
        inner = ", ".join(_fmt(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if v is Ellipsis:
        return "..."
    return repr(v)


@dataclass(frozen=True)
class Meta:
    """What the generator knows of a value: its shape and a range holding all its elements."""

    shape: tuple[int, ...]
    lo: float
    hi: float

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def _input_data(rng: np.random.Generator, shape: tuple, lo: float, hi: float, grid: bool) -> Any:
    if grid:  # multiples of 1/4: exact zeros, ties, and sums without rounding
        return rng.integers(math.ceil(lo * 4), math.floor(hi * 4) + 1, size=shape) / 4.0
    return rng.uniform(lo, hi, size=shape)


# -- the twin table: each op once in gradtensor, once in PyTorch -------------------------------


def _t_dims(x: Any, axis: Any) -> Any:
    if x.ndim == 0:
        return 0  # PyTorch reduces a 0-d tensor over dim 0 (or -1); NumPy would refuse
    if axis is None:
        return tuple(range(x.ndim))
    return axis


def _t_reduce(fn: Any) -> Any:
    return lambda x, axis, keepdims: fn(x, dim=_t_dims(x, axis), keepdim=keepdims)


def _t_var(fn: Any) -> Any:
    return lambda x, axis, keepdims, ddof: fn(
        x, dim=_t_dims(x, axis), correction=ddof, keepdim=keepdims
    )


def _t_prod(x: Any, axis: Any, keepdims: bool) -> Any:
    if x.ndim == 0:
        return torch.prod(x, dim=0, keepdim=keepdims)
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    for a in sorted((a % x.ndim for a in axes), reverse=True):
        x = torch.prod(x, dim=a, keepdim=keepdims)  # torch.prod takes one dim at a time
    return x


def _t_expand_dims(x: Any, axis: Any) -> Any:
    axes = (axis,) if isinstance(axis, int) else axis
    out_ndim = x.ndim + len(axes)
    for a in sorted(a % out_ndim for a in axes):
        x = torch.unsqueeze(x, a)
    return x


def _index(index: tuple, lib: str) -> tuple:
    """An index stored in a program (arrays as ("array", ints) / ("mask", bools)) for a library."""
    out = []
    for k in index:
        if isinstance(k, tuple) and k[0] == "array":
            a = np.array(k[1], dtype=np.int64)
            out.append(a if lib == "gt" else torch.from_numpy(a))
        elif isinstance(k, tuple) and k[0] == "mask":
            m = np.array(k[1], dtype=bool)
            out.append(m if lib == "gt" else torch.from_numpy(m))
        else:
            out.append(k)
    return tuple(out)


def _t_setitem(x: Any, v: Any, index: tuple) -> Any:
    y = x.clone()
    y[_index(index, "torch")] = v
    return y


def _gt_setitem_inplace(x: Any, v: Any, index: tuple) -> Any:
    y = x.clone()
    y[_index(index, "gt")] = v  # Tensor.__setitem__: the in-place path, versions and all
    return y


def _inplace(fn: Any) -> Any:
    def call(x: Any, y: Any) -> Any:
        z = x.clone()
        fn(z, y)
        return z

    return call


def _iadd(z: Any, y: Any) -> None:
    z += y


def _imul(z: Any, y: Any) -> None:
    z *= y


def _t_linear(x: Any, w: Any, b: Any = None, *, activation: Any) -> Any:
    return torch_activation(activation)(TF.linear(x, w, b))


def _scalar_op(op: Any) -> Any:
    return lambda x, c, reverse: op(c, x) if reverse else op(x, c)


def _t_targets(target: tuple) -> Any:
    return torch.tensor(target, dtype=torch.int64)


def _gt_targets(target: tuple) -> Any:
    return np.array(target, dtype=np.int64)


# Elementwise ops of one name in both libraries.
SAME_NAME = (
    "tan arcsin arccos arctan sinh cosh arcsinh arccosh arctanh exp2 expm1 log2 log10 reciprocal "
    "rsqrt square nan_to_num arctan2 hypot logaddexp logaddexp2"
).split()

TWINS: dict[str, tuple[Any, Any]] = {
    # unary
    "negative": (lambda x: -x, lambda x: -x),
    "abs": (gt.abs, torch.abs),
    "exp": (gt.exp, torch.exp),
    "log": (gt.log, torch.log),
    "log1p": (gt.log1p, torch.log1p),
    "sqrt": (gt.sqrt, torch.sqrt),
    "sin": (gt.sin, torch.sin),
    "cos": (gt.cos, torch.cos),
    "tanh": (gt.tanh, torch.tanh),
    "sigmoid": (gt.sigmoid, torch.sigmoid),
    "relu": (gt.relu, torch.relu),
    "erf": (gt.erf, torch.erf),
    **{n: (getattr(gt, n), getattr(torch, n)) for n in SAME_NAME},
    "leaky_relu": (
        lambda x, slope: F.leaky_relu(x, slope),
        lambda x, slope: TF.leaky_relu(x, slope),
    ),
    "gelu": (
        lambda x, approximate: F.gelu(x, approximate=approximate),
        lambda x, approximate: TF.gelu(x, approximate=approximate),
    ),
    "silu": (F.silu, TF.silu),
    "softplus": (F.softplus, TF.softplus),
    "clip": (
        lambda x, a_min, a_max: gt.clip(x, a_min, a_max),
        lambda x, a_min, a_max: torch.clamp(x, a_min, a_max),
    ),
    # a tensor and a Python number, either side (operators: __add__ and __radd__, ...)
    "add_scalar": (_scalar_op(lambda a, b: a + b),) * 2,
    "sub_scalar": (_scalar_op(lambda a, b: a - b),) * 2,
    "mul_scalar": (_scalar_op(lambda a, b: a * b),) * 2,
    "div_scalar": (_scalar_op(lambda a, b: a / b),) * 2,
    "pow_scalar": (_scalar_op(lambda a, b: a**b),) * 2,
    # binary, broadcasting
    "add": (lambda a, b: a + b,) * 2,
    "subtract": (lambda a, b: a - b,) * 2,
    "multiply": (lambda a, b: a * b,) * 2,
    "divide": (lambda a, b: a / b,) * 2,
    "power": (lambda a, b: a**b,) * 2,
    "maximum": (gt.maximum, torch.maximum),
    "minimum": (gt.minimum, torch.minimum),
    "where": (
        lambda p, x, y, c: gt.where(p > c, x, y),
        lambda p, x, y, c: torch.where(p > c, x, y),
    ),
    # in place on a copy (Tensor._inplace)
    "iadd": (_inplace(_iadd),) * 2,
    "imul": (_inplace(_imul),) * 2,
    # reductions
    "sum": (lambda x, axis, keepdims: gt.sum(x, axis, keepdims), _t_reduce(torch.sum)),
    "mean": (lambda x, axis, keepdims: gt.mean(x, axis, keepdims), _t_reduce(torch.mean)),
    "var": (
        lambda x, axis, keepdims, ddof: gt.var(x, axis, keepdim=keepdims, correction=ddof),
        _t_var(torch.var),
    ),
    "std": (
        lambda x, axis, keepdims, ddof: gt.std(x, axis, keepdim=keepdims, correction=ddof),
        _t_var(torch.std),
    ),
    "amax": (lambda x, axis, keepdims: gt.amax(x, axis, keepdims), _t_reduce(torch.amax)),
    "amin": (lambda x, axis, keepdims: gt.amin(x, axis, keepdims), _t_reduce(torch.amin)),
    "logsumexp": (
        lambda x, axis, keepdims: gt.logsumexp(x, axis, keepdims),
        _t_reduce(torch.logsumexp),
    ),
    "prod": (lambda x, axis, keepdims: gt.prod(x, axis, keepdims), _t_prod),
    "softmax": (lambda x, axis: F.softmax(x, axis), lambda x, axis: TF.softmax(x, dim=axis)),
    "log_softmax": (
        lambda x, axis: F.log_softmax(x, axis),
        lambda x, axis: TF.log_softmax(x, dim=axis),
    ),
    # shapes
    "reshape": (lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape)),
    "permute": (
        lambda x, axes: x.T if axes is None else x.permute(*axes),
        lambda x, axes: x.permute(tuple(reversed(range(x.ndim))) if axes is None else axes),
    ),
    "transpose": (
        lambda x, axis1, axis2: x.transpose(axis1, axis2),
        lambda x, axis1, axis2: x.transpose(axis1, axis2),
    ),
    "expand_dims": (lambda x, axis: gt.expand_dims(x, axis), _t_expand_dims),
    "squeeze": (
        lambda x, axis: gt.squeeze(x, axis),
        lambda x, axis: torch.squeeze(x) if axis is None else torch.squeeze(x, axis),
    ),
    "flatten": (
        lambda x, start, end: gt.flatten(x, start, end),
        lambda x, start, end: torch.flatten(x, start, end),
    ),
    "broadcast_to": (
        lambda x, shape: gt.broadcast_to(x, shape),
        lambda x, shape: torch.broadcast_to(x, shape),
    ),
    "getitem": (
        lambda x, index: x[_index(index, "gt")],
        lambda x, index: x[_index(index, "torch")],
    ),
    "setitem": (
        lambda x, v, index: gt.setitem(x, v, _index(index, "gt")),
        _t_setitem,
    ),
    "setitem_": (_gt_setitem_inplace, _t_setitem),
    "concatenate": (
        lambda a, b, axis: gt.concatenate([a, b], axis),
        lambda a, b, axis: torch.cat([a, b], dim=axis),
    ),
    "stack": (
        lambda a, b, axis: gt.stack([a, b], axis),
        lambda a, b, axis: torch.stack([a, b], dim=axis),
    ),
    "tensor_split": (
        lambda x, points, axis, piece: gt.tensor_split(x, list(points), axis)[piece],
        lambda x, points, axis, piece: torch.tensor_split(x, list(points), dim=axis)[piece],
    ),
    "copy": (lambda x: x.clone(), lambda x: x.clone()),
    # linear algebra and layers
    "matmul": (lambda a, b: a @ b,) * 2,
    "linear": (
        lambda x, w, b=None, *, activation: F.linear(x, w, b, activation=activation),
        _t_linear,
    ),
    # losses
    "mse_loss": (
        lambda x, t, reduction: F.mse_loss(x, t, reduction=reduction),
        lambda x, t, reduction: TF.mse_loss(x, t, reduction=reduction),
    ),
    "cross_entropy": (
        lambda x, target, reduction, ignore_index: F.cross_entropy(
            x, _gt_targets(target), reduction=reduction, ignore_index=ignore_index
        ),
        lambda x, target, reduction, ignore_index: TF.cross_entropy(
            x, _t_targets(target), reduction=reduction, ignore_index=ignore_index
        ),
    ),
    "nll_loss": (
        lambda x, target, reduction, ignore_index: F.nll_loss(
            x, _gt_targets(target), reduction=reduction, ignore_index=ignore_index
        ),
        lambda x, target, reduction, ignore_index: TF.nll_loss(
            x, _t_targets(target), reduction=reduction, ignore_index=ignore_index
        ),
    ),
    "bce_with_logits": (
        lambda x, t, reduction: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
        lambda x, t, reduction: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction),
    ),
}

# Registered differentiable ops the fuzzer does not draw, and why.
NOT_FUZZED = {
    "astype": "dtype conversion; the fuzzer runs in float64 only",
    **dict.fromkeys(
        "conv1d conv2d _conv2d_gemm conv_transpose2d unfold fold max_pool1d max_pool2d "
        "_max_pool2d avg_pool1d avg_pool2d adaptive_avg_pool2d".split(),
        "convolution and pooling need NCHW shapes and kernel arguments; held to PyTorch in "
        "test_conv.py (modules, a conv2d grid, second order, max_pool ties) and the oracle",
    ),
    **dict.fromkeys(
        ("_pick", "_unpick"),
        "a row's entry at an integer class (nll_loss's pick and its adjoint); held to PyTorch "
        "by their records and through nll_loss and cross_entropy",
    ),
    "to_device": "the fuzzer runs on the CPU only",
    "getitem_grad": "the derivative of getitem: runs in every getitem's backward",
    "split": "pieces of slices as tensor_split's, which is fuzzed; sizes checked in test_errors",
    "expand": "a broadcast_to, which is fuzzed; held to PyTorch in test_pytorch_idioms",
    "repeat": "reshape and broadcast_to, both fuzzed; held to PyTorch in test_pytorch_idioms",
    "flip": "a getitem with negative steps (getitem is fuzzed); held to PyTorch in the idioms",
    "take_along_dim": "a getitem with index arrays (fuzzed); held to PyTorch in the idioms",
    **dict.fromkeys(
        "gather scatter scatter_add index_select masked_fill masked_select diagonal diag trace "
        "pad roll repeat_interleave narrow unbind ravel vstack hstack dstack meshgrid".split(),
        "composites of getitem/setitem/concatenate/where (fuzzed); held to PyTorch in "
        "test_ops_indexing.py and the oracle",
    ),
    **dict.fromkeys(["tril", "triu"], "linear masks; held to PyTorch in test_ops_indexing.py"),
    **dict.fromkeys(
        "floor ceil trunc round sign fmod remainder floor_divide".split(),
        "steps (rounding could put the two libraries on either side of one); held to PyTorch "
        "in test_ops_elementwise.py and the oracle",
    ),
    "lerp": "three inputs; held to PyTorch in test_ops_elementwise.py and the oracle",
    "scaled_dot_product_attention": "three (..., L, E) inputs and masks; a composite of matmul, "
    "where and softmax, held to PyTorch in test_attention.py and the oracle",
    **dict.fromkeys(
        "elu selu celu mish hardswish hardsigmoid hardtanh relu6 softsign logsigmoid glu prelu "
        "cross_entropy_options l1_loss smooth_l1_loss huber_loss binary_cross_entropy "
        "kl_div".split(),
        "nn.functional composites of fuzzed ops (where, clamp, expm1, softplus, log_softmax); "
        "held to PyTorch by the oracle and, as modules with every option, in test_module_kit.py",
    ),
    **dict.fromkeys(
        "cumsum cumprod logcumsumexp cummax cummin mode nansum nanmean".split(),
        "scans and selections along a dim; held to PyTorch by the hypothesis properties of "
        "test_ops_scans.py (zeros, ties, infinities, NaN) and the oracle",
    ),
    **dict.fromkeys(
        "_einsum einsum tensordot dot vdot inner outer norm linalg.inv linalg.det linalg.slogdet "
        "linalg.solve linalg.cholesky linalg.qr linalg.eigh linalg.svd linalg.svdvals linalg.pinv "
        "linalg.matrix_power linalg.vector_norm linalg.matrix_norm linalg.norm mm bmm mv".split(),
        "linear algebra needs shaped or well-conditioned operands; held to NumPy and PyTorch by "
        "the einsum property and the torch.linalg idioms of test_ops_linalg.py and the oracle",
    ),
    **dict.fromkeys(
        "tile movedim diff".split(),
        "composites of fuzzed shape ops (repeat, permute, getitem and subtract); held to PyTorch "
        "and NumPy by the oracle on their records' samples",
    ),
    **dict.fromkeys(
        "batch_norm layer_norm group_norm embedding".split(),
        "need (N, C, ...) shapes, channel operands or integer indices; composites of mean and "
        "rsqrt (embedding: a row gather), held to PyTorch by the oracle and, as modules over "
        "training steps, in test_normalization.py",
    ),
}
# Registered ops drawn under another name.
FUZZED_AS = {
    "binary_cross_entropy_with_logits": "bce_with_logits",
    "gelu_tanh": "gelu",  # gelu(x, approximate="tanh")
}


# -- where an op is not smooth: distances to its kinks, to spot rounding on either side --------


def _kink_clip(x: Any, a_min: Any, a_max: Any) -> Any:
    ds = [np.abs(x - b) for b in (a_min, a_max) if b is not None]
    return np.minimum(*ds) if len(ds) == 2 else ds[0]


def _kink_extreme(x: Any, axis: Any, keepdims: bool, fn: Any) -> Any:
    ax = None if x.ndim == 0 or axis is None else axis
    if x.size == 0:
        return x
    return np.abs(x - fn(x, axis=ax, keepdims=True))


def _kink_linear(x: Any, w: Any, b: Any = None, *, activation: Any) -> Any:
    if activation != "relu":
        return None
    z = x @ w.T + (0 if b is None else b)
    return np.abs(z)


KINKS = {  # the distance of each element to the op's kink, from the op's arguments
    "abs": lambda x: np.abs(x),
    "relu": lambda x: np.abs(x),
    "leaky_relu": lambda x, slope: np.abs(x),
    "clip": _kink_clip,
    "maximum": lambda a, b: np.abs(a - b),
    "minimum": lambda a, b: np.abs(a - b),
    "where": lambda p, x, y, c: np.abs(p - c),
    "amax": lambda x, axis, keepdims: _kink_extreme(x, axis, keepdims, np.max),
    "amin": lambda x, axis, keepdims: _kink_extreme(x, axis, keepdims, np.min),
    "linear": _kink_linear,
}
# Ops whose kink is where their own value is 0: std (sqrt at 0; the mean of equal values can
# round to a neighbour of them, so a constant row has a std of 0 in one library and 1e-17 in the
# other).
KINKS_AT_ZERO_OUTPUT = {"std"}


def _ambiguous(step: Step, gt_args: list, torch_args: list, gt_out: Any, torch_out: Any) -> bool:
    """Whether rounding may have put the two libraries on different sides of a kink.

    Exact zeros (ties, grid data) are fine when both have them at the same places; a distance
    that is nonzero but within rounding of zero is not.
    """
    kink = KINKS.get(step.op)
    if kink is None and step.op not in KINKS_AT_ZERO_OUTPUT:
        return False
    ms = []
    for args, out in ((gt_args, gt_out), (torch_args, torch_out)):
        m = np.abs(out) if kink is None else kink(*args, **step.kwargs())
        if m is None:
            return False
        scale = 1.0 + max((float(np.abs(a).max()) for a in args if np.size(a)), default=0.0)
        if np.any((m > 0) & (m < 1e-9 * scale)):
            return True
        ms.append(np.asarray(m) == 0)
    return ms[0].shape != ms[1].shape or bool(np.any(ms[0] != ms[1]))


# -- running a program --------------------------------------------------------------------------


def _leaf(arr: np.ndarray, lib: str) -> Any:
    if lib == "gt":
        return gt.tensor(arr, dtype=gt.float64, requires_grad=True)
    return torch.tensor(arr, dtype=torch.float64, requires_grad=True)


_NOTE = "fuzzed program, "


def _note(exc: BaseException, text: str) -> None:
    """Say which step of which program raised, leaving the exception itself as it was.

    (Numba re-raises one cached exception object: notes from earlier programs are replaced.)
    """
    notes = [n for n in getattr(exc, "__notes__", []) if not n.startswith(_NOTE)]
    exc.__notes__ = [*notes, _NOTE + text]


def run(program: Program, lib: str) -> tuple[list, list, Any]:
    """Evaluate in "gt" or "torch": (values of every step, leaves, upstream weights)."""
    rng = np.random.default_rng(program.seed)
    values: list = []
    leaves: list = []
    for i, step in enumerate(program.steps):
        if step.op == "input":
            p = step.kwargs()
            v = _leaf(_input_data(rng, p["shape"], p["lo"], p["hi"], p["grid"]), lib)
            leaves.append(v)
        else:
            fn = TWINS[step.op][0 if lib == "gt" else 1]
            try:
                v = fn(*[values[j] for j in step.args], **step.kwargs())
            except Exception as exc:
                _note(exc, f"{lib}: at v{i} = {step!r}\nin {program!r}")
                raise
        values.append(v)
    weights = rng.standard_normal(tuple(values[-1].shape))
    return values, leaves, weights


def check_program(program: Program, via: str = "grad") -> None:
    """Run a program in both libraries; raise AssertionError on the first disagreement.

    via: how gradtensor takes the gradient: "grad" (gt.grad, its derivatives on plain arrays),
    "backward" (.backward() into .grad) or "create_graph" (gt.grad recording a graph of the
    gradient: the derivatives run on Tensors).
    """
    with np.errstate(all="ignore"):  # report NaN against a number, not a RuntimeWarning
        got, gt_leaves, weights = run(program, "gt")
    want, torch_leaves, _ = run(program, "torch")

    def fail(msg: str) -> None:
        raise AssertionError(f"{msg}\nin {program!r}")

    for i, (step, g, w) in enumerate(zip(program.steps, got, want)):
        if step.op == "input":
            continue
        gargs = [as_numpy(got[j]) for j in step.args]
        targs = [as_numpy(want[j]) for j in step.args]
        if _ambiguous(step, gargs, targs, as_numpy(g), as_numpy(w)):
            reject()  # a tie broken by rounding, differently in each library: no verdict
        why = mismatch(as_numpy(g), as_numpy(w), RTOL, ATOL, norm_atol=True)
        if why:
            fail(f"value of v{i} = {step!r}: {why}")

    out, tout = got[-1], want[-1]
    try:
        with np.errstate(all="ignore"):
            w = gt.tensor(weights, dtype=gt.float64)
            if via == "backward":
                (out * w).sum().backward()
                ggrads = [leaf.grad for leaf in gt_leaves]
            else:
                graph = via == "create_graph"
                ggrads = gt.grad(out, gt_leaves, w, create_graph=graph, allow_unused=True)
    except Exception as exc:
        _note(exc, f"gt: in the backward pass of {program!r}")
        raise
    tgrads = torch.autograd.grad(tout, torch_leaves, torch.from_numpy(weights), allow_unused=True)
    leaf_steps = [i for i, s in enumerate(program.steps) if s.op == "input"]
    for i, leaf, g, tg in zip(leaf_steps, torch_leaves, ggrads, tgrads):
        gv = np.zeros(leaf.shape) if g is None else as_numpy(g)
        tv = np.zeros(leaf.shape) if tg is None else as_numpy(tg)
        why = mismatch(gv, tv, RTOL, ATOL, norm_atol=True)
        if why:
            fail(f"gradient of v{i} (by {via}): {why}")


# -- drawing programs ---------------------------------------------------------------------------

DOMAINS = [(-2.0, 2.0), (0.5, 2.0), (-3.0, -0.5), (-0.5, 0.5), (-4.0, 4.0)]


class _Builder:
    """Draws one program step by step, keeping what it knows of each value (`Meta`)."""

    def __init__(self, draw: Any):
        self.draw = draw
        self.steps: list[Step] = []
        self.metas: list[Meta] = []

    # values
    def add(self, op: str, args: tuple, params: dict, shape: tuple, lo: float, hi: float) -> bool:
        if not (math.isfinite(lo) and math.isfinite(hi)) or max(abs(lo), abs(hi)) > BOUND:
            return False
        self.steps.append(Step(op, tuple(args), tuple(params.items())))
        self.metas.append(Meta(tuple(int(n) for n in shape), float(lo), float(hi)))
        return True

    def new_input(self, shape: tuple, lo: float, hi: float, grid: bool | None = None) -> int:
        if grid is None:
            grid = self.draw(st.booleans())
        params = {"shape": tuple(shape), "lo": lo, "hi": hi, "grid": grid}
        self.add("input", (), params, shape, lo, hi)
        return len(self.steps) - 1

    def pick(self, candidates: list[int]) -> int:
        """One of the candidate values, the most recent one half the time (and when shrinking)."""
        ordered = sorted(candidates, reverse=True)
        if self.draw(st.booleans()):
            return ordered[0]
        return self.draw(st.sampled_from(ordered))

    def where(self, ok: Any) -> list[int]:
        return [i for i, m in enumerate(self.metas) if ok(m)]

    def one_of(self, options: list) -> Any:
        return self.draw(st.sampled_from(options))

    def axis(self, ndim: int) -> int:
        if ndim == 0:
            return self.one_of([0, -1])
        return self.draw(st.integers(-ndim, ndim - 1))


def _torch_range(op: str, m: Meta, params: dict) -> tuple[float, float]:
    """The range of a unary op's output over [lo, hi], from PyTorch on a fine grid, widened."""
    xs = torch.linspace(m.lo, m.hi, 1025, dtype=torch.float64)
    xs = torch.cat([xs, torch.zeros(1, dtype=torch.float64).clamp(m.lo, m.hi)])
    with torch.no_grad():
        ys = TWINS[op][1](xs, **params)
    lo, hi = float(ys.min()), float(ys.max())
    pad = 1e-3 * (hi - lo) + 1e-12
    return lo - pad, hi + pad


def _corners(fn: Any, a: Meta, b: Meta) -> tuple[float, float]:
    vals = [fn(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return min(vals), max(vals)


def _broadcast(*shapes: tuple) -> tuple | None:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


ANY = lambda m: True  # noqa: E731


def _unary(domain: Any = ANY, params: Any = None) -> Any:
    def build(b: _Builder, op: str) -> bool:
        cands = b.where(domain)
        if not cands:
            return False
        i = b.pick(cands)
        p = params(b, b.metas[i]) if params else {}
        if p is None:
            return False
        lo, hi = _torch_range(op, b.metas[i], p)
        return b.add(op, (i,), p, b.metas[i].shape, lo, hi)

    return build


def _clip_params(b: _Builder, m: Meta) -> dict:
    q = lambda v: round(v * 4) / 4  # noqa: E731  (bounds on the data grid: ties happen)
    lo = q(b.draw(st.floats(m.lo, m.hi)))
    hi = q(b.draw(st.floats(m.lo, m.hi)))
    lo, hi = min(lo, hi), max(lo, hi)
    which = b.one_of(["both", "min", "max"])
    return {"a_min": None if which == "max" else lo, "a_max": None if which == "min" else hi}


SCALARS = [2.5, -1.5, 0.5, 2.0, 0.0, 1.0]


def _scalar(kind: str) -> Any:
    def build(b: _Builder, op: str) -> bool:
        i = b.pick(list(range(len(b.metas))))
        m = b.metas[i]
        reverse = b.draw(st.booleans())
        if kind == "div":
            if reverse:  # c / x
                if m.lo < 0.05 and m.hi > -0.05:
                    return False
            c = b.one_of([2.5, -1.5, 0.5, 4.0] if not reverse else SCALARS)
        elif kind == "pow":
            if reverse:  # c ** x
                c = b.one_of([2.0, 0.5, 3.0, 0.0, 1.0])
                if (c == 0.0 and m.lo < 0) or m.mag > 20:
                    return False
            else:  # x ** c
                c = b.one_of([2, 3, 0, 1, 2.0, 0.5, 1.5, -1, -2, 0.0, 1.0])
                if c != int(c) and m.lo < 0.05:
                    return False  # a fractional power needs a positive base
                if c < 0 and m.lo < 0.05 and m.hi > -0.05:
                    return False  # a negative power needs a base away from 0
        else:
            c = b.one_of(SCALARS)
        p = {"c": c, "reverse": reverse}
        with np.errstate(all="ignore"):
            lo, hi = _torch_range(op, m, p)
        return b.add(op, (i,), p, m.shape, lo, hi)

    return build


def _binary(rng: Any, ok_a: Any = ANY, ok_b: Any = ANY) -> Any:
    def build(b: _Builder, op: str) -> bool:
        cands = b.where(ok_a)
        if not cands:
            return False
        i = b.pick(cands)
        a = b.metas[i]
        partners = [j for j in b.where(ok_b) if _broadcast(a.shape, b.metas[j].shape) is not None]
        if not partners:
            return False
        j = b.pick(partners)
        lo, hi = rng(a, b.metas[j])
        return b.add(op, (i, j), {}, _broadcast(a.shape, b.metas[j].shape), lo, hi)

    return build


def _away_from_zero(m: Meta) -> bool:
    return m.lo >= 0.05 or m.hi <= -0.05


def _build_where(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    p = b.metas[i]
    c = b.one_of([0.0, round((p.lo + p.hi) * 2) / 4])
    xs = [j for j, m in enumerate(b.metas) if _broadcast(p.shape, m.shape) is not None]
    x = b.pick(xs)
    ys = [j for j in xs if _broadcast(p.shape, b.metas[x].shape, b.metas[j].shape) is not None]
    y = b.pick(ys)
    mx, my = b.metas[x], b.metas[y]
    shape = _broadcast(p.shape, mx.shape, my.shape)
    return b.add(op, (i, x, y), {"c": c}, shape, min(mx.lo, my.lo), max(mx.hi, my.hi))


def _build_inplace(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    a = b.metas[i]
    js = [j for j, m in enumerate(b.metas) if _broadcast(a.shape, m.shape) == a.shape]
    j = b.pick(js)
    fn = (lambda x, y: x + y) if op == "iadd" else (lambda x, y: x * y)
    lo, hi = _corners(fn, a, b.metas[j])
    return b.add(op, (i, j), {}, a.shape, lo, hi)


def _reduced(shape: tuple, axis: Any) -> tuple[int, tuple]:
    """(number of elements reduced into each output element, the output shape with keepdims)."""
    if len(shape) == 0 or axis is None:
        return math.prod(shape), (1,) * len(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
    n = math.prod(shape[a] for a in axes)
    return n, tuple(1 if k in axes else s for k, s in enumerate(shape))


def _draw_axes(b: _Builder, ndim: int) -> Any:
    if ndim == 0:
        return b.one_of([None, 0, -1])
    kind = b.one_of(["none", "int", "tuple"])
    if kind == "none":
        return None
    if kind == "int":
        return b.axis(ndim)
    axes = b.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if b.draw(st.booleans()) else a for a in axes)


def _build_reduction(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    axis = _draw_axes(b, len(m.shape))
    keepdims = b.draw(st.booleans())
    n, kept = _reduced(m.shape, axis)
    out_size = math.prod(kept)
    if keepdims or len(m.shape) == 0:
        shape = kept if len(m.shape) else ()
    else:
        axes = (
            set(range(len(m.shape)))
            if axis is None
            else {a % len(m.shape) for a in ((axis,) if isinstance(axis, int) else axis)}
        )
        shape = tuple(s for k, s in enumerate(m.shape) if k not in axes)
    params: dict = {"axis": axis, "keepdims": keepdims}
    if op in ("var", "std"):
        params["ddof"] = b.one_of([0, 1])
        if n - params["ddof"] <= 0 or not out_size:
            return False  # PyTorch warns (no degrees of freedom): an edge case, not a target
    elif op not in ("sum", "prod") and out_size and n == 0:
        return False  # mean, max, min, logsumexp of nothing
    if op == "sum":
        lo, hi = n * m.lo, n * m.hi
    elif op in ("mean", "amax", "amin"):
        lo, hi = m.lo, m.hi
    elif op == "var":
        lo, hi = 0.0, (m.hi - m.lo) ** 2 * n / max(n - params["ddof"], 1)
    elif op == "std":
        lo, hi = 0.0, (m.hi - m.lo) * math.sqrt(n / max(n - params["ddof"], 1))
    elif op == "logsumexp":
        lo, hi = m.lo, m.hi + math.log(max(n, 1))
    else:  # prod
        if n * math.log(max(m.mag, 1.0)) > math.log(BOUND):
            return False
        lo, hi = (m.lo**n, m.hi**n) if m.lo >= 0 else (-(m.mag**n), m.mag**n)
        lo, hi = min(lo, hi, 1.0), max(lo, hi, 1.0)
    return b.add(op, (i,), params, shape, lo, hi)


def _build_softmax(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    axis = b.axis(len(m.shape))
    n = m.shape[axis] if m.shape else 1
    if op == "softmax":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = m.lo - m.hi - math.log(max(n, 1)), 0.0
    return b.add(op, (i,), {"axis": axis}, m.shape, lo, hi)


def _factor_shape(b: _Builder, size: int) -> tuple:
    """A random shape of `size` elements (maybe with one -1)."""
    if size == 0:
        dims = b.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
        return tuple(dims) if 0 in dims else tuple(dims) + (0,)
    factors = []
    n, p = size, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    ndim = b.draw(st.integers(0 if size == 1 else 1, 4))
    dims = [1] * max(ndim, 1 if factors else 0)
    for f in factors:
        dims[b.draw(st.integers(0, len(dims) - 1))] *= f
    if dims and b.draw(st.booleans()):
        dims[b.draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


def _build_reshape(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    shape = _factor_shape(b, math.prod(m.shape))
    out = np.zeros(m.shape).reshape(shape).shape
    return b.add(op, (i,), {"shape": shape}, out, m.lo, m.hi)


def _build_permute(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    axes = None
    if b.draw(st.booleans()):
        axes = tuple(b.draw(st.permutations(range(len(m.shape)))))
    out = np.zeros(m.shape).transpose(axes).shape
    return b.add(op, (i,), {"axes": axes}, out, m.lo, m.hi)


def _build_transpose(b: _Builder, op: str) -> bool:
    cands = b.where(lambda m: len(m.shape) >= 1)
    if not cands:
        return False
    i = b.pick(cands)
    m = b.metas[i]
    a1, a2 = b.axis(len(m.shape)), b.axis(len(m.shape))
    out = np.swapaxes(np.zeros(m.shape), a1, a2).shape
    return b.add(op, (i,), {"axis1": a1, "axis2": a2}, out, m.lo, m.hi)


def _build_expand_dims(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    k = b.draw(st.integers(1, 2))
    out_ndim = len(m.shape) + k
    pos = b.draw(st.lists(st.integers(0, out_ndim - 1), min_size=k, max_size=k, unique=True))
    pos = [p - out_ndim if b.draw(st.booleans()) else p for p in pos]
    axis = pos[0] if k == 1 and b.draw(st.booleans()) else tuple(pos)
    out = np.expand_dims(np.zeros(m.shape), axis).shape
    return b.add(op, (i,), {"axis": axis}, out, m.lo, m.hi)


def _build_squeeze(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    ones = [k for k, s in enumerate(m.shape) if s == 1]
    axis: Any = None
    if ones and b.draw(st.booleans()):
        chosen = b.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True))
        chosen = [a - len(m.shape) if b.draw(st.booleans()) else a for a in chosen]
        axis = chosen[0] if len(chosen) == 1 else tuple(chosen)
    out = np.squeeze(np.zeros(m.shape), axis).shape
    return b.add(op, (i,), {"axis": axis}, out, m.lo, m.hi)


def _build_flatten(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    nd = len(m.shape)
    if nd == 0:
        start, end = 0, -1
    else:
        s, e = sorted((b.draw(st.integers(0, nd - 1)), b.draw(st.integers(0, nd - 1))))
        start, end = s, (e - nd if b.draw(st.booleans()) else e)
    out = torch.flatten(torch.zeros(m.shape), start, end).shape
    return b.add(op, (i,), {"start": start, "end": end}, tuple(out), m.lo, m.hi)


def _build_broadcast_to(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    lead = tuple(b.draw(st.lists(st.integers(1, 3), max_size=2)))
    body = tuple(b.draw(st.integers(1, 3)) if s == 1 else s for s in m.shape)
    shape = lead + body
    return b.add(op, (i,), {"shape": shape}, shape, m.lo, m.hi)


def _draw_basic_index(b: _Builder, shape: tuple) -> tuple:
    items: list = []
    k = b.draw(st.integers(0, len(shape)))
    for side in shape[:k]:
        kind = b.one_of(["slice", "int", "none"] if side else ["slice", "none"])
        if kind == "int":
            items.append(b.draw(st.integers(-side, side - 1)))
        elif kind == "none":
            items.append(None)
            items.append(slice(None, None, None))
        else:
            bound = st.one_of(st.none(), st.integers(-side - 1, side + 1))
            step = b.one_of([None, 1, 2, 3])
            items.append(slice(b.draw(bound), b.draw(bound), step))
    if b.draw(st.booleans()):  # anywhere when it stands for no axis, else where it keeps order
        items.insert(b.draw(st.integers(0, len(items))) if k == len(shape) else len(items), ...)
    return tuple(items)


def _build_getitem(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    kind = b.one_of(["basic", "array", "mask"]) if m.shape and m.shape[0] else "basic"
    if kind == "basic":
        index = _draw_basic_index(b, m.shape)
    else:
        axis = b.draw(st.integers(0, len(m.shape) - 1))
        side = m.shape[axis]
        if side == 0:
            return False
        if kind == "array":
            picks = b.draw(st.lists(st.integers(-side, side - 1), max_size=5))
            key: Any = ("array", tuple(picks))
        else:
            key = ("mask", tuple(b.draw(st.lists(st.booleans(), min_size=side, max_size=side))))
        index = (slice(None, None, None),) * axis + (key,)
    out = np.zeros(m.shape)[_index(index, "gt")].shape
    return b.add(op, (i,), {"index": index}, out, m.lo, m.hi)


def _build_setitem(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    index = _draw_basic_index(b, m.shape)
    sel = np.zeros(m.shape)[_index(index, "gt")].shape
    vshape = tuple(s if b.draw(st.booleans()) else 1 for s in sel)
    vshape = vshape[b.draw(st.integers(0, len(vshape))) :]
    v = b.new_input(vshape, -1.0, 1.0)
    return b.add(op, (i, v), {"index": index}, m.shape, min(m.lo, -1.0), max(m.hi, 1.0))


def _build_join(b: _Builder, op: str) -> bool:
    cands = b.where(lambda m: len(m.shape) >= (0 if op == "stack" else 1))
    if not cands:
        return False
    i = b.pick(cands)
    a = b.metas[i]
    nd = len(a.shape)
    if op == "stack":
        partners = [j for j in cands if b.metas[j].shape == a.shape]
        axis = b.draw(st.integers(-nd - 1, nd))
    else:
        axis = b.axis(nd)
        k = axis % nd

        def fits(m: Meta) -> bool:
            return len(m.shape) == nd and all(
                s == t for d, (s, t) in enumerate(zip(m.shape, a.shape)) if d != k
            )

        partners = [j for j in cands if fits(b.metas[j])]
    j = b.pick(partners)
    out = (np.stack if op == "stack" else np.concatenate)(
        [np.zeros(a.shape), np.zeros(b.metas[j].shape)], axis
    ).shape
    lo, hi = min(a.lo, b.metas[j].lo), max(a.hi, b.metas[j].hi)
    return b.add(op, (i, j), {"axis": axis}, out, lo, hi)


def _build_split(b: _Builder, op: str) -> bool:
    cands = b.where(lambda m: len(m.shape) >= 1)
    if not cands:
        return False
    i = b.pick(cands)
    m = b.metas[i]
    axis = b.axis(len(m.shape))
    side = m.shape[axis]
    points = tuple(sorted(b.draw(st.lists(st.integers(0, side), min_size=1, max_size=3))))
    piece = b.draw(st.integers(0, len(points)))
    out = np.split(np.zeros(m.shape), list(points), axis)[piece].shape
    return b.add(op, (i,), {"points": points, "axis": axis, "piece": piece}, out, m.lo, m.hi)


def _build_copy(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    return b.add(op, (i,), {}, m.shape, m.lo, m.hi)


def _matmul_shape(sa: tuple, sb: tuple) -> tuple | None:
    if not sa or not sb:
        return None
    try:
        return np.matmul(np.zeros(sa), np.zeros(sb)).shape
    except ValueError:
        return None


def _build_matmul(b: _Builder, op: str) -> bool:
    cands = b.where(lambda m: len(m.shape) >= 1)
    if not cands:
        return False
    i = b.pick(cands)
    a = b.metas[i]
    partners = [j for j in cands if _matmul_shape(a.shape, b.metas[j].shape) is not None]
    how = b.one_of(["value", "weight-right", "weight-left"] if partners else ["weight-right"])
    if how == "value":
        j = b.pick(partners)
        args = (i, j)
    elif how == "weight-right":  # a @ W, W fresh: (k,) or (k, n)
        k = a.shape[-1]
        wshape = (k,) if b.draw(st.booleans()) else (k, b.draw(st.integers(1, 4)))
        args = (i, b.new_input(wshape, -1.0, 1.0))
    else:  # W @ a
        k = a.shape[0] if len(a.shape) == 1 else a.shape[-2]
        wshape = (k,) if b.draw(st.booleans()) else (b.draw(st.integers(1, 4)), k)
        args = (b.new_input(wshape, -1.0, 1.0), i)
    ma, mb = b.metas[args[0]], b.metas[args[1]]
    shape = _matmul_shape(ma.shape, mb.shape)
    if shape is None:
        return False
    k = ma.shape[-1]
    bound = k * ma.mag * mb.mag
    return b.add(op, args, {}, shape, -bound, bound)


def _build_linear(b: _Builder, op: str) -> bool:
    cands = b.where(lambda m: len(m.shape) >= 1)
    if not cands:
        return False
    i = b.pick(cands)
    m = b.metas[i]
    n_in, n_out = m.shape[-1], b.draw(st.integers(1, 4))
    args = [i, b.new_input((n_out, n_in), -1.0, 1.0)]
    if b.draw(st.booleans()):
        args.append(b.new_input((n_out,), -1.0, 1.0))
    act = b.one_of([None, "identity", "relu", "gelu", "gelu_tanh", "sigmoid", "tanh"])
    bound = n_in * m.mag + (1.0 if len(args) == 3 else 0.0) + 1e-9
    with torch.no_grad():
        ys = torch_activation(act)(torch.linspace(-bound, bound, 1025, dtype=torch.float64))
    lo, hi = float(ys.min()) - 1e-9, float(ys.max()) + 1e-9
    return b.add(op, tuple(args), {"activation": act}, m.shape[:-1] + (n_out,), lo, hi)


def _build_mse(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    t = b.new_input(m.shape, -1.0, 1.0)
    reduction = b.one_of(["mean", "sum", "none"])
    n = math.prod(m.shape)
    if reduction == "mean" and n == 0:
        return False  # the mean of nothing: NaN
    d2 = (m.mag + 1.0) ** 2
    shape = m.shape if reduction == "none" else ()
    return b.add(
        op, (i, t), {"reduction": reduction}, shape, 0.0, d2 * (n if reduction == "sum" else 1)
    )


def _build_bce(b: _Builder, op: str) -> bool:
    i = b.pick(list(range(len(b.metas))))
    m = b.metas[i]
    t = b.new_input(m.shape, 0.0, 1.0)
    reduction = b.one_of(["mean", "sum", "none"])
    n = math.prod(m.shape)
    if reduction == "mean" and n == 0:
        return False
    top = 2 * m.mag + 1.0
    shape = m.shape if reduction == "none" else ()
    return b.add(
        op, (i, t), {"reduction": reduction}, shape, -1e-9, top * (n if reduction == "sum" else 1)
    )


def _build_class_loss(b: _Builder, op: str) -> bool:
    cands = b.where(lambda m: not m.shape or m.shape[-1] >= 1)
    if not cands:
        return False
    i = b.pick(cands)
    m = b.metas[i]
    if len(m.shape) != 2:  # make it (N, C) first, as a step of its own
        shape = (math.prod(m.shape[:-1]), m.shape[-1]) if m.shape else (1, 1)
        b.add("reshape", (i,), {"shape": shape}, shape, m.lo, m.hi)
        i, m = len(b.metas) - 1, b.metas[-1]
    n, c = m.shape
    reduction = b.one_of(["mean", "sum", "none"])
    ignore_index = b.one_of([-100, 0])
    target = list(b.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    for k in range(n):
        if b.draw(st.integers(0, 4)) == 0:
            target[k] = -100 if ignore_index == -100 else 0
    if reduction == "mean" and all(t == ignore_index for t in target):
        return False  # the mean over no targets: PyTorch gives NaN, gradtensor 0 (by choice)
    params = {"target": tuple(target), "reduction": reduction, "ignore_index": ignore_index}
    per_row = (m.hi - m.lo) + math.log(c) if op == "cross_entropy" else m.mag
    lo = 0.0 if op == "cross_entropy" else -m.mag * max(n, 1)
    hi = per_row * max(n, 1)
    shape = (n,) if reduction == "none" else ()
    return b.add(op, (i,), params, shape, min(lo, -per_row), hi)


BUILDERS: dict[str, Any] = {
    "negative": _unary(),
    "abs": _unary(),
    "exp": _unary(lambda m: m.hi <= 12),
    "log": _unary(lambda m: m.lo >= 0.05),
    "log1p": _unary(lambda m: m.lo >= -0.9),
    "sqrt": _unary(lambda m: m.lo >= 0.05),
    "sin": _unary(),
    "cos": _unary(),
    "tanh": _unary(),
    "sigmoid": _unary(),
    "relu": _unary(),
    "erf": _unary(),
    "tan": _unary(lambda m: m.mag <= 1.2),
    "arcsin": _unary(lambda m: m.mag <= 0.95),
    "arccos": _unary(lambda m: m.mag <= 0.95),
    "arctan": _unary(),
    "sinh": _unary(lambda m: m.mag <= 10),
    "cosh": _unary(lambda m: m.mag <= 10),
    "arcsinh": _unary(),
    "arccosh": _unary(lambda m: m.lo >= 1.05),
    "arctanh": _unary(lambda m: m.mag <= 0.95),
    "exp2": _unary(lambda m: m.hi <= 16),
    "expm1": _unary(lambda m: m.hi <= 12),
    "log2": _unary(lambda m: m.lo >= 0.05),
    "log10": _unary(lambda m: m.lo >= 0.05),
    "reciprocal": _unary(_away_from_zero),
    "rsqrt": _unary(lambda m: m.lo >= 0.05),
    "square": _unary(),
    "nan_to_num": _unary(),
    # atan2 and hypot away from (0, 0) and from atan2's cut at a = 0
    "arctan2": _binary(lambda a, b: (-math.pi, math.pi), ok_a=_away_from_zero),
    "hypot": _binary(lambda a, b: (0.0, math.hypot(a.mag, b.mag)), ok_a=_away_from_zero),
    "logaddexp": _binary(lambda a, b: (max(a.lo, b.lo), max(a.hi, b.hi) + math.log(2))),
    "logaddexp2": _binary(lambda a, b: (max(a.lo, b.lo), max(a.hi, b.hi) + 1)),
    "leaky_relu": _unary(params=lambda b, m: {"slope": b.one_of([0.01, 0.2])}),
    "gelu": _unary(params=lambda b, m: {"approximate": b.one_of(["none", "tanh"])}),
    "silu": _unary(),
    "softplus": _unary(),
    "clip": _unary(params=_clip_params),
    "add_scalar": _scalar("add"),
    "sub_scalar": _scalar("sub"),
    "mul_scalar": _scalar("mul"),
    "div_scalar": _scalar("div"),
    "pow_scalar": _scalar("pow"),
    "add": _binary(lambda a, b: (a.lo + b.lo, a.hi + b.hi)),
    "subtract": _binary(lambda a, b: (a.lo - b.hi, a.hi - b.lo)),
    "multiply": _binary(lambda a, b: _corners(lambda x, y: x * y, a, b)),
    "divide": _binary(lambda a, b: _corners(lambda x, y: x / y, a, b), ok_b=_away_from_zero),
    "power": _binary(
        lambda a, b: _corners(lambda x, y: x**y, a, b),
        ok_a=lambda m: m.lo >= 0.1 and m.hi <= 8,
        ok_b=lambda m: m.mag <= 3,
    ),
    "maximum": _binary(lambda a, b: (max(a.lo, b.lo), max(a.hi, b.hi))),
    "minimum": _binary(lambda a, b: (min(a.lo, b.lo), min(a.hi, b.hi))),
    "where": _build_where,
    "iadd": _build_inplace,
    "imul": _build_inplace,
    "sum": _build_reduction,
    "mean": _build_reduction,
    "var": _build_reduction,
    "std": _build_reduction,
    "amax": _build_reduction,
    "amin": _build_reduction,
    "logsumexp": _build_reduction,
    "prod": _build_reduction,
    "softmax": _build_softmax,
    "log_softmax": _build_softmax,
    "reshape": _build_reshape,
    "permute": _build_permute,
    "transpose": _build_transpose,
    "expand_dims": _build_expand_dims,
    "squeeze": _build_squeeze,
    "flatten": _build_flatten,
    "broadcast_to": _build_broadcast_to,
    "getitem": _build_getitem,
    "setitem": _build_setitem,
    "setitem_": _build_setitem,
    "concatenate": _build_join,
    "stack": _build_join,
    "tensor_split": _build_split,
    "copy": _build_copy,
    "matmul": _build_matmul,
    "linear": _build_linear,
    "mse_loss": _build_mse,
    "cross_entropy": _build_class_loss,
    "nll_loss": _build_class_loss,
    "bce_with_logits": _build_bce,
}
# copy first: what hypothesis shrinks an op to, so that steps a failure does not need read as no-ops
OPS = sorted((n for n in BUILDERS if n not in EXCLUDE), key=lambda n: (n != "copy", n))


@st.composite
def programs(draw: Any) -> Program:
    b = _Builder(draw)
    n_inputs = draw(st.integers(1, 3))
    shapes = list(
        draw(
            hnp.mutually_broadcastable_shapes(
                num_shapes=n_inputs, min_dims=0, max_dims=3, min_side=1, max_side=4
            )
        ).input_shapes
    )
    if draw(st.integers(0, 9)) == 0:  # now and then an empty axis, kept broadcastable
        nd = max(len(s) for s in shapes)
        if nd:
            k = draw(st.integers(1, nd))  # the k-th axis from the end
            for j, s in enumerate(shapes):
                if len(s) >= k and (s[-k] != 1 or all(len(t) < k or t[-k] == 1 for t in shapes)):
                    shapes[j] = s[:-k] + (0,) + s[len(s) - k + 1 :]
    for s in shapes:
        b.new_input(s, *draw(st.sampled_from(DOMAINS)))
    n_ops = draw(st.integers(1, 6))
    done = 0
    for _ in range(3 * n_ops):
        if done == n_ops:
            break
        op = draw(st.sampled_from(OPS))
        done += BUILDERS[op](b, op)
    if b.steps[-1].op == "input":  # every program ends in an op
        BUILDERS["tanh"](b, "tanh")
    seed = draw(st.integers(0, 2**32 - 1))
    return Program(tuple(b.steps), seed)


# -- the tests ----------------------------------------------------------------------------------


@FUZZ
@given(program=programs(), via=st.sampled_from(["grad", "backward", "create_graph"]))
def test_random_programs_match_pytorch(program, via):
    assert Program.parse(repr(program)) == program  # what a failure prints can be replayed
    check_program(program, via)


def test_every_drawn_op_has_a_twin_and_every_twin_is_drawn():
    assert set(BUILDERS) == set(TWINS)


def test_every_differentiable_op_is_fuzzed_or_has_a_reason():
    fuzzed = set(TWINS) | set(FUZZED_AS)
    missing = [
        name
        for name, op in REGISTRY.items()
        if getattr(op, "differentiable", True) and name not in fuzzed and name not in NOT_FUZZED
    ]
    assert not missing, f"registered ops neither fuzzed nor given a reason: {missing}"


@pytest.mark.parametrize(
    "name, wrong, what",
    [
        # the same values, a different derivative: only the gradient comparison can catch it
        ("relu", lambda x: torch.relu(x.detach()) + (x - x.detach()) * 0.5, "gradient of v0"),
        ("tanh", lambda x: torch.tanh(x) * (1 + 1e-6), "value of v1"),
    ],
)
def test_the_harness_catches_a_wrong_twin(monkeypatch, name, wrong, what):
    program = Program(
        (Step("input", (), (("shape", (3,)), ("lo", 0.5), ("hi", 2.0), ("grid", False))),)
        + (Step(name, (0,)),),
        seed=0,
    )
    check_program(program)
    monkeypatch.setitem(TWINS, name, (TWINS[name][0], wrong))
    with pytest.raises(AssertionError, match=what):
        check_program(program)


def test_programs_print_as_readable_steps():
    program = Program(
        (
            Step("input", (), (("shape", (2, 3)), ("lo", -2.0), ("hi", 2.0), ("grid", True))),
            Step("getitem", (0,), (("index", (slice(None, None, 2), ("array", (0, 2)))),)),
            Step("sum", (1,), (("axis", -1), ("keepdims", False))),
        ),
        seed=7,
    )
    text = repr(program)
    assert "v1 = getitem(v0, index=(slice(None, None, 2), ('array', (0, 2))))" in text
    assert "v2 = sum(v1, axis=-1, keepdims=False)" in text
    assert text.startswith("Program(seed=7, output=v2")
