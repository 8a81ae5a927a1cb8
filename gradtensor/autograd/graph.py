"""What the tape is made of: nodes, the values they save, and the grad mode that records them.

A Node is what one op leaves on the tape: the function that knows its derivative, the tensors that
derivative needs (saved with their version, so an in-place change after saving is caught), and one
edge per input saying where that input's gradient goes (the input's own node, or a leaf to
accumulate into). This module is the bottom of the autodiff core: it imports no other part of it.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any


class _GradMode(threading.local):
    """Whether ops record themselves on the tape, per thread (as in PyTorch): a `no_grad` block or
    a running backward in one thread never switches recording off in another."""

    enabled = True  # the class attribute is every thread's starting value


grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops record themselves on the tape (in the calling thread)."""
    return grad_mode.enabled


class _GradModeContext:
    """Sets the recording mode inside a `with` block, or in every call of a decorated function."""

    mode = True

    def __enter__(self) -> None:
        self.prev = grad_mode.enabled
        grad_mode.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        grad_mode.enabled = self.prev

    def __call__(self, fn: Callable) -> Callable:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = grad_mode.enabled
            grad_mode.enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                grad_mode.enabled = prev

        return wrapper


class no_grad(_GradModeContext):
    """`with gt.no_grad():` nothing inside is recorded (and no graph memory is held)."""

    mode = False


class enable_grad(_GradModeContext):
    """`with gt.enable_grad():` record again inside a `no_grad` block."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """`gt.set_grad_enabled(False)` switches recording at once; as a context it restores on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = grad_mode.enabled
        grad_mode.enabled = self.mode

    def __enter__(self) -> None:
        pass  # already switched by the constructor; __exit__ restores the mode from before


# ----------------------------------------------------------------------------------------------
# What a node keeps of its inputs and outputs.


class Meta:
    """Shape, dtype and device of a tensor whose values the derivative does not need."""

    __slots__ = ("shape", "dtype", "device")

    def __init__(self, shape: tuple, dtype: Any, device: Any):
        self.shape, self.dtype, self.device = shape, dtype, device

    @classmethod
    def of(cls, t: Any) -> Meta:
        return cls(t.shape, t.dtype, t.device)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class SavedInput:
    """An input tensor the derivative reads, with the version it had when it was saved."""

    __slots__ = ("tensor", "version")

    def __init__(self, t: Any):
        self.tensor, self.version = t, t._version[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape

    def unpack(self, op: str) -> Any:
        t = self.tensor
        if t._version[0] != self.version:
            raise modified_error(op, t.shape, self.version, t._version[0])
        return t


class SavedOutput:
    """An op's output, kept as its array, index and version box rather than the Tensor object.

    It is its node's own `output`, so it holds neither the Tensor nor the node: either would make
    a reference cycle (node -> saved output -> node) that only the garbage collector could break,
    and a graph that is never differentiated (a forward for evaluation, say) would hold its
    arrays until then instead of freeing them when its last tensor goes.
    """

    __slots__ = ("data", "box", "version", "idx", "requires_grad")

    def __init__(self, data: Any, box: list):
        # An op's output array and its tensor's version box: the op's only output, recorded.
        self.data, self.box, self.version = data, box, box[0]
        self.idx, self.requires_grad = 0, True

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def array(self, op: str) -> Any:
        """The saved array, after checking that nothing changed it in place since."""
        if self.box[0] != self.version:
            raise modified_error(op, self.data.shape, self.version, self.box[0])
        return self.data


def modified_error(op: str, shape: tuple, saved: int, now: int) -> RuntimeError:
    return RuntimeError(
        f"{op}: a tensor of shape {tuple(shape)} that this op saved for backward was modified by "
        f"an in-place operation (its version went from {saved} to {now}); compute the gradient "
        "before changing it, or change a copy"
    )


next_seq = itertools.count().__next__  # nodes' creation order


class Node:
    """One recorded op: how to differentiate it, what it saved, and where its gradients go."""

    __slots__ = (
        "fn",
        "inputs",
        "versions",
        "arrays",
        "output",
        "params",
        "next",
        "n_out",
        "retained",
        "seq",
        "impl",
        "__weakref__",
    )

    def __init__(self, fn: Any, inputs: tuple, output: Any, params: dict, next: tuple, n_out=1):
        # ops/registry.py's Primitive.__call__ sets these same fields itself, on its hot path.
        self.fn = fn  # has .name and .backward(node, grads) -> tuple of input gradients
        self.inputs = inputs  # per positional input: a Tensor (saved), a Meta, or a constant
        self.versions = None  # for saved Tensor inputs: their versions when saved
        self.arrays = None  # for saved inputs: their arrays, which the derivative on arrays reads
        self.output = output  # SavedOutput or Meta (or a tuple of Metas for several outputs)
        self.params = params  # non-tensor arguments (axis, keepdims, ...), and aux residuals
        self.next = next  # per input: None, a leaf Tensor, or (Node, output index)
        self.n_out = n_out
        self.retained = None  # {output index: weakref to a tensor that called retain_grad()}
        self.seq = next_seq()  # creation order, which backward runs in reverse
        self.impl = None  # the implementation that ran, when not the op's own (a kernel)

    @property
    def name(self) -> str:
        return self.fn.name

    def __repr__(self) -> str:
        return f"<{self.fn.name}Backward>"


def check_grad_shape(op: str, i: int, g: Any, shape: tuple) -> None:
    """Each gradient must have its input's shape: a wrong one is a bug in the op's derivative."""
    if g.shape != tuple(shape):
        raise RuntimeError(
            f"{op}: the derivative returned a gradient of shape {g.shape} for input {i}, "
            f"which has shape {tuple(shape)}"
        )


# ----------------------------------------------------------------------------------------------
# The hook gt.compile records through. The layers below it (ops, the engine, the Tensor) report
# what they compute to the recorder of their thread, if there is one; gradtensor.compile
# implements the recorder. `RECORDING` is empty unless some thread records, so the check that
# every op makes costs one global read.

RECORDING: list[Any] = []  # the recorders in use, any thread


def recorder() -> Any:
    """The calling thread's recorder, or None (also while it is paused)."""
    if RECORDING:
        me = threading.get_ident()
        for rec in RECORDING:
            if rec.thread == me:
                return None if rec.paused else rec
    return None


def values_read(what: str) -> None:
    """A Tensor's values are read into Python (item(), bool(), .numpy(), ...): a recorded step
    cannot replay what Python then does with them, so the recorder is told."""
    rec = recorder()
    if rec is not None:
        rec.values_read(what)
