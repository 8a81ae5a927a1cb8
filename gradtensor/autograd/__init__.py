"""The tape: graph nodes, the reverse-mode engine, grad modes, `grad()` and custom `Function`s."""

from . import functional
from .engine import (
    Function,
    Node,
    backward,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

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
