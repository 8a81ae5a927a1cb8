"""Fused linear + activation kernels for gradtensor: plain arrays in, plain arrays out.

`linear_act_forward` / `linear_act_backward` dispatch on the array type: NumPy arrays go to
`kernels.cpu` (BLAS + Numba), CuPy arrays and other `__cuda_array_interface__` objects to
`kernels.cuda` (cuBLAS + Numba-CUDA). Both backends are imported on first use, so importing
`kernels` costs no Numba compilation, imports no CuPy and touches no GPU.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from kernels._api import ACTIVATIONS, AUX_KIND

# gradtensor checks this marker so that an unrelated top-level `kernels` package is never used.
GRADTENSOR_KERNELS_API = 1

__all__ = [
    "ACTIVATIONS",
    "AUX_KIND",
    "GRADTENSOR_KERNELS_API",
    "linear_act_backward",
    "linear_act_forward",
]


def _backend(fn: str, x: Any) -> ModuleType:
    if isinstance(x, np.ndarray):
        return importlib.import_module("kernels.cpu")
    # The class attribute, not the instance's: reading the interface can mean a stream query.
    if hasattr(type(x), "__cuda_array_interface__"):
        return importlib.import_module("kernels.cuda")
    raise ValueError(
        f"{fn}: x must be a NumPy array or a CUDA array (CuPy), got "
        f"{type(x).__module__}.{type(x).__qualname__}"
    )


def linear_act_forward(
    x: Any, weight: Any, bias: Any | None, activation: str
) -> tuple[Any, Any | None]:
    """y, aux = act(x @ weight.T + bias); e.g. y, aux = linear_act_forward(x, w, b, "gelu")."""
    return _backend("linear_act_forward", x).linear_act_forward(x, weight, bias, activation)


def linear_act_backward(
    gy: Any,
    x: Any,
    weight: Any,
    aux: Any | None,
    activation: str,
    bias: bool = True,
    input_grad: bool = True,
) -> tuple[Any | None, Any, Any | None]:
    """gx, gw, gb for linear_act_forward; e.g. linear_act_backward(gy, x, w, aux, "gelu").

    gx is None when input_grad=False (the GEMM for it is skipped).
    """
    module = _backend("linear_act_backward", x)
    return module.linear_act_backward(gy, x, weight, aux, activation, bias, input_grad)
