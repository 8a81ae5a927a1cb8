"""Matrix products with NumPy's matmul rules (1-D operands, broadcast batch dimensions)."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .registry import Bad, Sample, primitive, unbroadcast


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
