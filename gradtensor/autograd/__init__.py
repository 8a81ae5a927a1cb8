"""The tape: graph nodes, the reverse-mode engine, grad modes, `grad()` and custom `Function`s.

`gradtensor.autograd.functional` (jacobian, hessian, ...) is built on the ops, above this package,
and is loaded by `import gradtensor`.
"""

from .engine import Function, backward, grad
from .graph import Node, enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = [
    "Function",
    "Node",
    "backward",
    "enable_grad",
    "functional",
    "grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]
