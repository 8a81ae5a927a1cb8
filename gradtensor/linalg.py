"""gradtensor.linalg: torch.linalg's functions, differentiable and batched over leading dims.

>>> A = gt.tensor([[2.0, 1.0], [1.0, 3.0]], requires_grad=True)
>>> gt.linalg.slogdet(A).logabsdet.backward()      # d log|det A| / dA = inv(A).T
"""

from .ops.linalg import (
    LinAlgError,
    cholesky,
    det,
    eigh,
    inv,
    matmul,
    matrix_norm,
    matrix_power,
    pinv,
    qr,
    slogdet,
    solve,
    svd,
    svdvals,
    vector_norm,
)
from .ops.linalg import linalg_norm as norm

__all__ = [
    "LinAlgError",
    "cholesky",
    "det",
    "eigh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "vector_norm",
]
