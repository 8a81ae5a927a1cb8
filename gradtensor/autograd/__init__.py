"""The tape: graph nodes, the reverse-mode engine, grad modes, `grad()` and custom `Function`s."""

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
from . import functional

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
