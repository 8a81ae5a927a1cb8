"""gradtensor: a tensor autodiff library on NumPy (CPU) and CuPy (GPU).

>>> import gradtensor as gt
>>> x = gt.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4., 6.], dtype=float32)
"""

import builtins

import numpy as _np

from . import autograd, backend, cuda, nn, ops, testing
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd import functional as _functional  # noqa: F401  (gt.autograd.functional)
from .backend import Device, device
from .ops import *  # noqa: F403  (every op is also a gt. function)
from .ops import methods as _methods  # noqa: F401  (gives the Tensor its op methods)
from .ops import use_kernels
from .tensor import (
    Tensor,
    arange,
    as_dtype,
    bool_,
    empty,
    empty_like,
    eye,
    float16,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    get_default_dtype,
    int32,
    int64,
    linspace,
    logspace,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    set_default_dtype,
    tensor,
    zeros,
    zeros_like,
)

bool = bool_  # noqa: A001  (gt.bool, as torch.bool)


def manual_seed(seed: int) -> None:
    """Seed gradtensor's random generators (randn, rand, dropout, init)."""
    if isinstance(seed, builtins.bool) or not isinstance(seed, (int, _np.integer)):
        raise TypeError(f"manual_seed: the seed must be an int, not {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: the seed must be non-negative, got {seed}")
    backend.manual_seed(int(seed))


def set_num_threads(n: int) -> None:
    """At most `n` threads for CPU work from now on (as torch.set_num_threads): the BLAS behind
    matrix products, OpenMP pools and the kernels' passes. OMP_NUM_THREADS sets the start value."""
    from .kernels import blas

    blas.set_num_threads(n)


def get_num_threads() -> int:
    """The threads CPU work may use now (see set_num_threads)."""
    from .kernels import blas

    return blas.get_num_threads()


def from_dlpack(obj: object) -> Tensor:
    """A tensor sharing memory with any DLPack-capable array (NumPy, CuPy, PyTorch, JAX)."""
    return Tensor._make(backend.from_dlpack(obj))


__version__ = "0.1.0"

from . import data, distributed, optim, viz  # noqa: E402  (the training layer)
from .compile import CompileError, compile  # noqa: E402
from .linalg import __all__ as _linalg  # noqa: E402, F401  (gt.linalg: over the ops' module)
from .serialization import load, save  # noqa: E402
