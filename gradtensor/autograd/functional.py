"""Function transforms built on reverse mode: vjp, jvp, jacobian, hessian, hvp.

Each takes a function of tensors and the point to differentiate at, as
`torch.autograd.functional` does: `inputs` is a tensor or a tuple of tensors, and results follow
that structure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import tensor as _t
from .engine import grad
from .graph import enable_grad


def _prepare(inputs: Any) -> tuple[bool, tuple]:
    single = isinstance(inputs, _t.Tensor)
    items = (inputs,) if single else tuple(inputs)
    for i, x in enumerate(items):
        if not isinstance(x, _t.Tensor):
            raise TypeError(f"autograd.functional: input {i} is a {type(x).__name__}, not a Tensor")
    # Fresh leaves: differentiating must not touch the caller's tensors or their .grad.
    return single, tuple(x.detach().requires_grad_(x.dtype.kind == "f") for x in items)


def _outputs(fn_name: str, out: Any) -> tuple[bool, tuple]:
    single = isinstance(out, _t.Tensor)
    items = (out,) if single else tuple(out)
    for i, o in enumerate(items):
        if not isinstance(o, _t.Tensor):
            raise TypeError(
                f"{fn_name}: the function's output {i} is a {type(o).__name__}, not a Tensor"
            )
    return single, items


def _grads(outs: tuple, ins: tuple, gouts: tuple, create_graph: bool) -> tuple:
    live = [(o, g) for o, g in zip(outs, gouts) if o.requires_grad]
    if not live:
        return tuple(_t.zeros_like(x) for x in ins)
    got = grad(
        [o for o, _ in live],
        list(ins),
        [g for _, g in live],
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
    )
    return tuple(_t.zeros_like(x) if g is None else g for x, g in zip(ins, got))


def _as_tuple(v: Any, like: tuple, what: str) -> tuple:
    vs = (v,) if isinstance(v, _t.Tensor) else tuple(v)
    if len(vs) != len(like):
        raise ValueError(f"{what}: got {len(vs)} vectors for {len(like)} tensors")
    for a, b in zip(vs, like):
        if a.shape != b.shape:
            raise ValueError(
                f"{what}: vector of shape {a.shape} given for a tensor of shape {b.shape}"
            )
    return vs


def _detach(ts: tuple, create_graph: bool) -> tuple:
    return ts if create_graph else tuple(t.detach() for t in ts)


def vjp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False) -> tuple:
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs`."""
    single_in, ins = _prepare(inputs)
    with enable_grad():
        single_out, outs = _outputs("vjp", func(*ins))
        if v is None:
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("vjp: v may be omitted only when the function returns a scalar")
            vs = (_t.ones_like(outs[0]),)
        else:
            vs = _as_tuple(v, outs, "vjp")
        res = _grads(outs, ins, vs, create_graph)
    outs = _detach(outs, create_graph)
    res = _detach(res, create_graph)
    return (outs[0] if single_out else outs), (res[0] if single_in else res)


def jvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False) -> tuple:
    """(func(inputs), J v): the Jacobian-vector product, by differentiating a vjp once more.

    u -> J^T u is linear in u, and the gradient of <J^T u, v> with respect to u is J v.
    """
    single_in, ins = _prepare(inputs)
    with enable_grad():
        single_out, outs = _outputs("jvp", func(*ins))
        if v is None:
            if len(ins) != 1 or ins[0].numel() != 1:
                raise RuntimeError("jvp: v may be omitted only when the input is a scalar")
            vs = (_t.ones_like(ins[0]),)
        else:
            vs = _as_tuple(v, ins, "jvp")
        us = tuple(_t.zeros_like(o, requires_grad=o.dtype.kind == "f") for o in outs)
        gs = _grads(outs, ins, us, create_graph=True)
        live = [(g, w) for g, w in zip(gs, vs) if g.requires_grad]
        if live:
            got = grad(
                [g for g, _ in live],
                list(us),
                [w for _, w in live],
                create_graph=create_graph,
                allow_unused=True,
            )
            res = tuple(_t.zeros_like(o) if r is None else r for o, r in zip(outs, got))
        else:
            res = tuple(_t.zeros_like(o) for o in outs)
    outs = _detach(outs, create_graph)
    res = _detach(res, create_graph)
    return (outs[0] if single_out else outs), (res[0] if single_out else res)


def jacobian(func: Callable, inputs: Any, create_graph: bool = False) -> Any:
    """d func / d inputs: for one input and one output a tensor of shape out.shape + in.shape;
    tuples of them (per output, then per input) otherwise."""
    single_in, ins = _prepare(inputs)
    with enable_grad():
        single_out, outs = _outputs("jacobian", func(*ins))
        table = []
        for o in outs:
            flat = o.reshape(-1)
            rows: list[list] = [[] for _ in ins]
            for k in range(flat.numel()):
                onehot = _t.zeros(flat.shape, dtype=o.dtype, device=o.device)
                onehot.data[k] = 1
                gs = _grads((flat,), ins, (onehot,), create_graph)
                for r, g in zip(rows, gs):
                    r.append(g if create_graph else g.detach())
            per_in = []
            for x, r in zip(ins, rows):
                if r:
                    from ..ops import stack

                    j = stack(r).reshape(o.shape + x.shape)
                else:
                    j = _t.zeros(o.shape + x.shape, dtype=x.dtype, device=x.device)
                per_in.append(j)
            table.append(per_in[0] if single_in else tuple(per_in))
    return table[0] if single_out else tuple(table)


def hessian(func: Callable, inputs: Any, create_graph: bool = False) -> Any:
    """Second derivatives of a scalar function: shape in.shape + in.shape for one input."""
    single_in, ins = _prepare(inputs)

    def gradient(*xs: Any) -> Any:
        with enable_grad():
            _, outs = _outputs("hessian", func(*xs))
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("hessian: the function must return a single scalar")
            gs = _grads(outs, xs, (_t.ones_like(outs[0]),), create_graph=True)
        return gs[0] if single_in else gs

    return jacobian(gradient, ins[0] if single_in else ins, create_graph)


def hvp(func: Callable, inputs: Any, v: Any, create_graph: bool = False) -> tuple:
    """(func(inputs), H v) for a scalar function, without forming H."""
    single_in, ins = _prepare(inputs)
    vs = _as_tuple(v, ins, "hvp")
    with enable_grad():
        _, outs = _outputs("hvp", func(*ins))
        if len(outs) != 1 or outs[0].numel() != 1:
            raise RuntimeError("hvp: the function must return a single scalar")
        gs = _grads(outs, ins, (_t.ones_like(outs[0]),), create_graph=True)
        live = [(g, w) for g, w in zip(gs, vs) if g.requires_grad]
        if live:
            res = _grads(tuple(g for g, _ in live), ins, tuple(w for _, w in live), create_graph)
        else:
            res = tuple(_t.zeros_like(x) for x in ins)
    out = outs[0] if create_graph else outs[0].detach()
    res = _detach(res, create_graph)
    return out, (res[0] if single_in else res)
