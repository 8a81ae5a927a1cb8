"""How errors reach the user: every public function names itself in what it raises.

A public function may fail deep inside (NumPy refusing a dtype, Python refusing to compare a string
with a number); the user should read which gradtensor function they called wrongly, not where
inside it the problem surfaced. The original error stays attached as the cause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any


class LinAlgError(RuntimeError):
    """A matrix the op cannot take: singular (inv, solve) or not positive-definite (cholesky),
    as torch.linalg.LinAlgError. Raised on the CPU; CuPy does not check (the result is NaN or
    meaningless there, as PyTorch's *_ex functions on a GPU), so no step waits on the device."""


# What bad input makes Python, NumPy or CuPy raise; re-raised naming the function.
USER_ERRORS = (
    TypeError, ValueError, IndexError, AttributeError, KeyError, ArithmeticError, LinAlgError
)  # fmt: skip


def public(name: str, fn: Callable, tensor_first: bool = True) -> Callable:
    """`fn` as the public function `name`: an error from anywhere inside names it.

    tensor_first: the first argument is a tensor, so a string there is refused at once.
    """

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if tensor_first and args and isinstance(args[0], (str, bytes)):
            raise TypeError(f"{name}: expected a tensor, got a {type(args[0]).__name__}")
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            if names(str(exc), name):
                raise
            raise renamed(name, exc) from exc

    return call


def names(msg: str, name: str) -> bool:
    """Whether an error message starts with `name` (ours, or Python's own `name() got ...`)."""
    return msg.startswith(name) and msg[len(name) : len(name) + 1] in (":", "(", " ")


def renamed(name: str, exc: BaseException, detail: str = "") -> Exception:
    """`exc` as a builtin error that starts with `name`."""
    # The builtin class: a library's own subclass may not be constructible from a message.
    kinds = (LinAlgError, IndexError, TypeError, ValueError)
    kind = next((k for k in kinds if isinstance(exc, k)), TypeError)
    if isinstance(exc, ArithmeticError):
        kind = ValueError
    msg = str(exc) if not isinstance(exc, KeyError) else str(exc.args[0] if exc.args else "")
    if names(msg, name):
        return kind(msg)
    # The function the user called replaces the names of the ones it called in turn.
    return kind(f"{name}: {_INNER_NAMES.sub('', msg)}{detail}")


_INNER_NAMES = re.compile(r"^(?:[a-z_][a-z0-9_]*: )+")
