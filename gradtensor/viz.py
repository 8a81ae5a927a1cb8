"""See the tape: the graph of ops behind a tensor, as Graphviz DOT text or a rendered picture.

>>> w = gt.tensor([0.5, -1.0], requires_grad=True)
>>> loss = (w * w).sum()
>>> print(gt.viz.to_dot(loss))             # paste into any Graphviz viewer
>>> gt.viz.render(loss, "graph.svg")       # needs Graphviz's `dot` program

Boxes are tensors (the leaves you asked gradients for, and the result), ellipses are ops; arrows
run the way values flow in the forward pass, so backward runs against them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["render", "to_dot"]

_SMALL = 6  # tensors with at most this many elements show their values


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _values(data: Any) -> str:
    arr = np.asarray(backend.to_device(data, backend.CPU))
    return np.array2string(arr, precision=4, separator=", ", suppress_small=True)


def _describe(shape: tuple, dtype: Any) -> str:
    return f"{tuple(shape)} {dtype}"


def _tensor_label(t: Tensor, name: str | None) -> str:
    lines = [name] if name else []
    lines.append(_describe(t.shape, t.dtype))
    if t.numel() <= _SMALL:
        lines.append(f"value {_values(t.data)}")
    if t.grad is not None and t.grad.numel() <= _SMALL:
        lines.append(f"grad {_values(t.grad.data)}")
    return "\n".join(lines)


def _op_label(node: Any) -> str:
    # The implementation that ran, when not the op's own: linear [kernel].
    lines = [node.fn.name if node.impl is None else f"{node.fn.name} [{node.impl.name}]"]
    for k, v in (node.params or {}).items():
        text = f"{k}={v!r}"
        # aux is the derivative's residuals, not an argument; None/False are mostly defaults.
        if k != "aux" and v is not None and v is not False and len(text) <= 30:
            lines.append(text)
    out = node.output
    metas = out if isinstance(out, tuple) else (out,)
    for m in metas:
        # After a backward pass without retain_graph the node has dropped what it saved.
        if m is not None and hasattr(m, "shape"):
            dtype = m.dtype if hasattr(m, "dtype") else m.data.dtype
            lines.append(_describe(m.shape, dtype))
    return "\n".join(lines)


def to_dot(tensor: Tensor, names: Mapping[str, Tensor] | None = None) -> str:
    """Graphviz DOT text of the graph that computed `tensor`: one node per op and per leaf.

    names: optional {name: tensor}, e.g. dict(model.named_parameters()), to label leaves.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    label_of = {id(t): n for n, t in (names or {}).items()}
    lines = ["digraph gradtensor {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    ids: dict[int, str] = {}

    def node_id(obj: Any, prefix: str) -> str:
        key = id(obj)
        if key not in ids:
            ids[key] = f"{prefix}{len(ids)}"
        return ids[key]

    root = node_id(tensor, "t")
    root_style = "filled" if tensor.requires_grad else "solid"
    lines.append(
        f"  {root} [shape=box, style={root_style}, fillcolor=lightblue, "
        f"label={_quote(_tensor_label(tensor, label_of.get(id(tensor))))}];"
    )
    if tensor._node is None:
        lines.append("}")
        return "\n".join(lines) + "\n"
    stack = [tensor._node]
    lines.append(f"  {node_id(tensor._node, 'op')} -> {root};")
    seen = {id(tensor._node)}
    while stack:
        node = stack.pop()
        me = node_id(node, "op")
        lines.append(f"  {me} [shape=ellipse, label={_quote(_op_label(node))}];")
        for e in node.next:
            if e is None:
                continue  # an input that needs no gradient (a constant): not on the tape
            if type(e) is tuple:
                child, idx = e
                edge = f' [label="{idx}"]' if child.n_out > 1 else ""
                lines.append(f"  {node_id(child, 'op')} -> {me}{edge};")
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
            else:
                leaf_known = id(e) in ids
                leaf = node_id(e, "t")
                if not leaf_known:
                    lines.append(
                        f"  {leaf} [shape=box, style=filled, fillcolor=lightgrey, "
                        f"label={_quote(_tensor_label(e, label_of.get(id(e))))}];"
                    )
                lines.append(f"  {leaf} -> {me};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_HOW = (
    "install Graphviz, which provides the `dot` program: `apt-get install graphviz` "
    "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`; "
    "`pip install graphviz` adds the optional Python bindings"
)


def render(
    tensor: Tensor, path: str | os.PathLike, names: Mapping[str, Tensor] | None = None
) -> str:
    """Draw the graph behind `tensor` to an image file; the format comes from the suffix
    (.svg, .png, .pdf). Returns the path written.

    Uses the `graphviz` Python package when installed, else runs Graphviz's `dot` directly;
    either way `dot` must be on PATH, or a RuntimeError says how to get it.
    """
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(
            f"render: cannot tell the image format from {path!r}; use a path "
            "ending in .svg, .png or .pdf"
        )
    dot = to_dot(tensor, names)
    try:
        import graphviz
    except ImportError:
        graphviz = None
    if graphviz is not None:
        try:
            data = graphviz.Source(dot).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise RuntimeError(f"render: Graphviz's `dot` program was not found; {_HOW}") from None
    else:
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(f"render: Graphviz's `dot` program was not found; {_HOW}")
        proc = subprocess.run(
            [exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"render: dot failed: {proc.stderr.decode(errors='replace')}")
        data = proc.stdout
    with open(path, "wb") as f:
        f.write(data)
    return path
