"""Gradient checking: analytic gradients against central finite differences, in float64.

>>> x = gt.randn(3, dtype=gt.float64, requires_grad=True)
>>> gt.testing.gradcheck(lambda x: (x * x).sum(), [x])
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import backend
from .autograd.engine import grad
from .tensor import Tensor, tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference one."""


def _flat_outputs(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [o for o in out if isinstance(o, Tensor)]
    raise TypeError(f"gradcheck: the function returned a {type(out).__name__}, not tensors")


def _differentiable(inputs: Sequence[Any]) -> list[int]:
    idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not idx:
        raise ValueError("gradcheck: no input requires grad")
    for i in idx:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64"
            )
    return idx


def _probes(outs: list[Tensor], seed: int) -> list[Tensor]:
    """Fixed random vectors that contract each output to a scalar (v^T f)."""
    rng = np.random.default_rng(seed)
    return [tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=o.device) for o in outs]


def gradcheck(
    fn: Callable,
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check d fn / d inputs against central differences; True, or raise GradcheckError.

    Every output is contracted with a fixed random vector v, so one backward pass gives
    v^T J, which is compared element by element with (f(x + eps) - f(x - eps)) / (2 eps) . v.
    """
    inputs = list(inputs)
    diff = _differentiable(inputs)
    outs = _flat_outputs(fn(*inputs))
    vs = _probes(outs, seed)
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    targets = [inputs[i] for i in diff]
    if live:
        analytic = grad(
            [o for o, _ in live],
            targets,
            [v for _, v in live],
            retain_graph=True,
            allow_unused=True,
        )
    else:
        analytic = (None,) * len(targets)

    def contracted() -> float:
        total = 0.0
        for o, v in zip(_flat_outputs(fn(*inputs)), vs):
            total += float(
                (
                    backend.to_device(o.data, backend.CPU).astype(np.float64)
                    * backend.to_device(v.data, backend.CPU)
                ).sum()
            )
        return total

    for i, x, a in zip(diff, targets, analytic):
        flat = x.data.reshape(-1)  # a view: nudging it nudges x
        numeric = np.zeros(flat.shape)
        for k in range(flat.size):
            old = flat[k].item()
            flat[k] = old + eps
            hi = contracted()
            flat[k] = old - eps
            lo = contracted()
            flat[k] = old
            numeric[k] = (hi - lo) / (2 * eps)
        got = (
            np.zeros(flat.shape)
            if a is None
            else backend.to_device(a.data, backend.CPU).reshape(-1).astype(np.float64)
        )
        err = np.abs(got - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            k = int(err.argmax())
            where = np.unravel_index(k, x.shape) if x.ndim else ()
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}): analytic gradient {got[k]:.8g} but "
                f"numerical {numeric[k]:.8g} at index {tuple(int(j) for j in where)} "
                f"(worst of {flat.size}; atol={atol}, rtol={rtol})"
            )
    return True


def gradgradcheck(
    fn: Callable,
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of the (create_graph) gradient of fn."""
    inputs = list(inputs)
    diff = _differentiable(inputs)
    outs = _flat_outputs(fn(*inputs))
    vs = _probes(outs, seed + 1)

    def first_order(*xs: Any) -> tuple:
        os_ = [(o, v) for o, v in zip(_flat_outputs(fn(*xs)), vs) if o.requires_grad]
        if not os_:
            return ()
        gs = grad(
            [o for o, _ in os_],
            [xs[i] for i in diff],
            [v for _, v in os_],
            create_graph=True,
            allow_unused=True,
        )
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_order, inputs, eps, atol, rtol, seed)


def sample_call(
    op: Any, sample: Any, dtype: Any = np.float64, seed: int = 0, device: Any = None
) -> tuple[Callable, list[Tensor]]:
    """Instantiate a registered op's Sample: returns (fn, tensors) with fn(*tensors) calling it.

    Tuples of ints (shapes) and float arrays become random tensors that require grad; a list of
    shapes becomes a list argument (as concatenate takes); everything else is passed through.
    """
    rng = np.random.default_rng(seed)
    lo, hi = sample.domain if sample.domain is not None else (None, None)
    tensors: list[Tensor] = []

    def leaf(arr: np.ndarray) -> Tensor:
        t = tensor(arr, dtype=dtype, requires_grad=True, device=device)
        tensors.append(t)
        return t

    def draw(shape: tuple) -> np.ndarray:
        if lo is None:
            return rng.standard_normal(shape)
        return rng.uniform(lo, hi, shape)

    def is_shape(a: Any) -> bool:
        return isinstance(a, tuple) and all(type(n) is int for n in a)

    def build(a: Any) -> Any:
        if is_shape(a):
            return leaf(draw(a))
        if isinstance(a, list) and a and all(is_shape(s) for s in a):
            return [build(s) for s in a]
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return leaf(a)
        if isinstance(a, np.ndarray) and device is not None:
            return backend.to_device(a, backend.device(device))
        return a

    structure = [build(a) for a in sample.args]
    # Constant array params (running statistics, class weights) live on the op's device too.
    params = {
        k: backend.to_device(v, backend.device(device))
        if device is not None and isinstance(v, np.ndarray)
        else v
        for k, v in sample.kwargs.items()
    }

    def fn(*xs: Tensor) -> Any:
        it = iter(xs)

        def swap(a: Any) -> Any:
            if isinstance(a, Tensor):
                return next(it)
            if isinstance(a, list) and a and all(isinstance(t, Tensor) for t in a):
                return [next(it) for _ in a]
            return a

        return op.call(*[swap(a) for a in structure], **params)

    fn.args, fn.kwargs = structure, params  # for oracles that call a twin of the op
    return fn, tensors


def twin(op: Any, lib: Any, which: str = "torch") -> Callable | None:
    """The op's twin in `lib` (its record's `torch` or `numpy` entry) as a plain function, or
    None where the record names none: a dotted name is looked up under `lib`, a function is
    given `lib` first."""
    spec = getattr(op, which, None)
    if spec is None:
        return None
    if callable(spec):
        return lambda *args, **kwargs: spec(lib, *args, **kwargs)
    fn = lib
    for part in spec.split("."):
        fn = getattr(fn, part)
    return fn
