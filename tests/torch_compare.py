"""Helpers for tests that hold gradtensor to PyTorch: one comparison that also knows NaN and inf.

Used by test_fuzz_torch.py and test_edge_points.py. PyTorch is the oracle of these tests only,
never a dependency of the library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import gradtensor as gt


def as_numpy(x: Any) -> np.ndarray:
    """The values of a gradtensor or PyTorch tensor (or None: no gradient) as a NumPy array."""
    if isinstance(x, gt.Tensor):
        return np.asarray(x.detach().data)
    if hasattr(x, "detach"):  # a torch.Tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _show(a: np.ndarray) -> str:
    if a.size <= 16:
        return np.array2string(a, precision=17, separator=", ", floatmode="maxprec")
    return f"array of shape {a.shape}"


def mismatch(
    got: np.ndarray, want: np.ndarray, rtol: float, atol: float, norm_atol: bool = False
) -> str | None:
    """Why `got` (gradtensor) is not `want` (PyTorch), or None when they agree.

    NaN must meet NaN and an infinity the same infinity; finite values must satisfy
    |got - want| <= atol + rtol * |want|. With `norm_atol`, atol is taken relative to the largest
    finite |want| (a norm-wise comparison, for values that went through cancelling sums).
    """
    if got.shape != want.shape:
        return f"shape {got.shape} but PyTorch has {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} but PyTorch has {want.dtype}"
    if got.size == 0:
        return None
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    finite = np.isfinite(w)
    if norm_atol and finite.any():
        atol = atol * max(1.0, float(np.abs(w[finite]).max()))
    with np.errstate(invalid="ignore", over="ignore"):
        bad = np.where(
            finite,
            ~(np.abs(g - w) <= atol + rtol * np.abs(w)),
            ~((g == w) | (np.isnan(g) & np.isnan(w))),
        )
    if not bad.any():
        return None
    k = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
    at = tuple(int(i) for i in k)
    head = f"{int(bad.sum())} of {bad.size} differ; first at {at}: {g[k]!r} vs PyTorch {w[k]!r}"
    return f"{head}\n    gradtensor: {_show(got)}\n    PyTorch:    {_show(want)}"


def torch_activation(name: Any) -> Any:
    """PyTorch's twin of one of F.linear's activations (None and "identity" are no activation)."""
    import torch

    tf = torch.nn.functional
    return {
        None: lambda z: z,
        "identity": lambda z: z,
        "relu": torch.relu,
        "gelu": tf.gelu,
        "gelu_tanh": lambda z: tf.gelu(z, approximate="tanh"),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "silu": tf.silu,
    }[name]
