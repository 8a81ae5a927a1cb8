"""The Tensor's methods that are ops: operators, `x.sum()`, `x.to()`, in-place writes, backward.

gradtensor.tensor defines the Tensor (an array, its gradient, the node that made it) below the
engine and the ops; this module, above them, gives it the methods that call them (as jax.numpy
gives its arrays theirs), so that every module of the core imports only downwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from .. import ops as _ops
from ..autograd.engine import (
    RemovableHandle,
    _root_grads,
    register_hook,
    register_post_accumulate_grad_hook,
)
from ..autograd.engine import backward as _backward
from ..autograd.graph import RECORDING, grad_mode, no_grad, recorder
from ..backend import CPU, Device
from ..tensor import Tensor, bool_, float32, float64, int64, zeros


class _Methods:
    @property
    def T(self) -> Tensor:
        return _ops.reverse_dims(self)

    @property
    def mT(self) -> Tensor:
        return _ops.swapaxes(self, -1, -2)

    def backward(
        self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`."""
        (g,) = _root_grads("backward", [self], gradient)
        _backward([self], [g], retain_graph or create_graph, create_graph)

    # -- devices and dtypes --------------------------------------------------------------------
    def to(self, device: Any = None, dtype: Any = None) -> Tensor:
        """Move to a device and/or convert dtype: `t.to("cuda")`, `t.to(gt.float64)`."""
        if dtype is None and device is not None and not isinstance(device, (str, Device)):
            device, dtype = None, device
        t = self
        if device is not None:
            t = _ops.to_device(t, backend.device(device))
        if dtype is not None:
            t = t.astype(dtype)
        return t

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(Device("cuda", index))

    def cpu(self) -> Tensor:
        return self.to(CPU)

    def astype(self, dtype: Any) -> Tensor:
        return _ops.astype(self, dtype)

    def float(self) -> Tensor:
        return self.astype(float32)

    def double(self) -> Tensor:
        return self.astype(float64)

    def long(self) -> Tensor:
        return self.astype(int64)

    def clone(self) -> Tensor:
        return _ops.copy(self)

    # -- operators -----------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.divide(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops.power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _ops.power(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _ops.remainder(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _ops.remainder(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops.negative(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.equal(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.not_equal(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _ops.less(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops.less_equal(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _ops.greater(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops.greater_equal(self, other)

    # Bitwise, as in PyTorch and NumPy: on bool tensors these are the logical operations.
    def __invert__(self) -> Tensor:
        return _ops.bitwise_not(self)

    def __and__(self, other: Any) -> Tensor:
        return _ops.bitwise_and(self, other)

    def __rand__(self, other: Any) -> Tensor:
        return _ops.bitwise_and(other, self)

    def __or__(self, other: Any) -> Tensor:
        return _ops.bitwise_or(self, other)

    def __ror__(self, other: Any) -> Tensor:
        return _ops.bitwise_or(other, self)

    def __xor__(self, other: Any) -> Tensor:
        return _ops.bitwise_xor(self, other)

    def __rxor__(self, other: Any) -> Tensor:
        return _ops.bitwise_xor(other, self)

    def __lshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_left_shift(self, other)

    def __rlshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_left_shift(other, self)

    def __rshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_right_shift(self, other)

    def __rrshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_right_shift(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    # -- in place ------------------------------------------------------------------------------
    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(_ops.add, other, "+=")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(_ops.subtract, other, "-=")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(_ops.multiply, other, "*=")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(_ops.divide, other, "/=")

    def __imod__(self, other: Any) -> Tensor:
        return self._inplace(_ops.remainder, other, "%=")

    def __ifloordiv__(self, other: Any) -> Tensor:
        return self._inplace(_ops.floor_divide, other, "//=")

    def __iand__(self, other: Any) -> Tensor:
        return self._inplace(_ops.bitwise_and, other, "&=")

    def __ior__(self, other: Any) -> Tensor:
        return self._inplace(_ops.bitwise_or, other, "|=")

    def __ixor__(self, other: Any) -> Tensor:
        return self._inplace(_ops.bitwise_xor, other, "^=")

    def __ilshift__(self, other: Any) -> Tensor:
        return self._inplace(_ops.bitwise_left_shift, other, "<<=")

    def __irshift__(self, other: Any) -> Tensor:
        return self._inplace(_ops.bitwise_right_shift, other, ">>=")

    # PyTorch's in-place methods: as `+=`, recorded in a graph, refused on a leaf that requires
    # grad outside no_grad, and each bumps the version so a stale saved value is caught.
    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        return self._inplace(_ops.add, other if alpha == 1 else other * alpha, "add_")

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        return self._inplace(_ops.subtract, other if alpha == 1 else other * alpha, "sub_")

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(_ops.multiply, other, "mul_")

    def div_(self, other: Any) -> Tensor:
        return self._inplace(_ops.divide, other, "div_")

    def pow_(self, exponent: Any) -> Tensor:
        return self._inplace(_ops.power, exponent, "pow_")

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace(_ops.clamp, min, "clamp_", max=max)

    def neg_(self) -> Tensor:
        return self._inplace(lambda x, _: _ops.negative(x), None, "neg_")

    def exp_(self) -> Tensor:
        return self._inplace(lambda x, _: _ops.exp(x), None, "exp_")

    def copy_(self, src: Any) -> Tensor:
        """Write src (broadcast to this shape, converted to this dtype) into this tensor."""
        return self._inplace(_set, src, "copy_")

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, Tensor) and value.ndim:
            raise ValueError(
                f"fill_: the value must be a number or a 0-d tensor, not shape {value.shape}"
            )
        return self._inplace(_set, value, "fill_")

    def zero_(self) -> Tensor:
        return self._inplace(_set, 0, "zero_")

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        """Fill with samples from U(a, b), drawn from the generator `gt.manual_seed` seeds."""
        return _draw(self, backend.random_uniform, "uniform_", a, b - a)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Fill with samples from N(mean, std^2)."""
        return _draw(self, backend.random_normal, "normal_", mean, std)

    def register_hook(self, hook: Any) -> RemovableHandle:
        """Call hook(grad) whenever backward computes this tensor's gradient; a Tensor it returns
        replaces the gradient. Returns a handle whose .remove() takes the hook out."""
        return register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook: Any) -> RemovableHandle:
        """Call hook(self) once per backward, as soon as this leaf's .grad holds the whole of
        that backward's gradient (while backward goes on)."""
        return register_post_accumulate_grad_hook(self, hook)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._inplace(_ops.setitem, value, "__setitem__", index=index)

    def _inplace(self, op: Any, other: Any, symbol: str, **params: Any) -> Tensor:
        """Change this tensor's data in place; in a graph, the op is recorded and this tensor
        takes the op's node as its own, and its version goes up so stale saved copies are caught."""
        other_grad = isinstance(other, Tensor) and other.requires_grad
        if grad_mode.enabled and (self.requires_grad or other_grad):
            if self.requires_grad and self._node is None:
                raise RuntimeError(
                    f"{symbol}: a leaf tensor that requires grad cannot be changed in place "
                    "(its gradient would be lost); do it under gt.no_grad(), or on a copy"
                )
            if self._view:
                raise RuntimeError(
                    f"{symbol}: this tensor is a view of another that is part of a graph; changing "
                    "it in place would change the other behind the graph's back: use .clone()"
                )
            src = self
            if getattr(op, "save_inputs", True):
                # The op's derivative reads its input, and the input is about to be overwritten.
                src = Tensor._make(self.data.copy(), self._node, self._idx)
                src.requires_grad = self.requires_grad
                if other is self:  # y *= y: both operands are the value from before
                    other = src
            out = op(src, other, **params)
        else:
            with no_grad():
                out = op(self, other, **params)
        if out.shape != self.shape:
            raise ValueError(
                f"{symbol}: the result has shape {out.shape}, which cannot be written into a "
                f"tensor of shape {self.shape}"
            )
        if out.dtype != self.dtype and not np.can_cast(out.dtype, self.dtype, "same_kind"):
            raise TypeError(
                f"{symbol}: a {out.dtype} result cannot be stored in a {self.dtype} tensor in place"
            )
        if out.data is not self.data:
            self.data[...] = out.data
            if RECORDING:
                rec = recorder()
                if rec is not None:
                    rec.copy_into(self, out.data)
        if out._node is not None:
            old, old_idx = self._node, self._idx
            ref = old.retained.get(old_idx) if old is not None and old.retained else None
            self._node, self._idx, self.requires_grad = out._node, out._idx, True
            if ref is not None and ref() is self:
                # retain_grad() follows the tensor: its .grad is that of the value it now holds.
                del old.retained[old_idx]
                self.retain_grad()
        self._changed()
        return self


def _set(x: Tensor, value: Any) -> Tensor:
    """value in x's shape and dtype; x's own gradient through it is zero (fill_, copy_)."""
    y = _ops.where(zeros((), dtype=bool_, device=x.device), x, value)
    return y if y.dtype == x.dtype else _ops.astype(y, x.dtype)


def _draw(x: Tensor, draw: Any, op: str, shift: float, scale: float) -> Tensor:
    if RECORDING and recorder() is not None:
        recorder().unsupported(f"{op} (an in-place random fill)")
    """Fill x in place with random samples, times scale plus shift (uniform_, normal_)."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: only floating-point tensors take random samples, not {x.dtype}")
    return x._inplace(_set, Tensor._make(draw(x.shape, x.dtype, x.device) * scale + shift), op)


for _name, _value in vars(_Methods).items():
    # __hash__ too: defining __eq__ gave _Methods a None hash; tensors stay usable as dict keys.
    if _name not in (
        "__module__",
        "__qualname__",
        "__dict__",
        "__weakref__",
        "__doc__",
        "__hash__",
    ):
        setattr(Tensor, _name, _value)


def _method(fn: Any) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    method.__name__ = getattr(fn, "__name__", "method")
    method.__doc__ = fn.__doc__
    return method


# Named ops as methods: `x.sum(axis=0)` is `gt.sum(x, axis=0)`.
for _name in (
    "abs",
    "all",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "clip",
    "cos",
    "exp",
    "expand_dims",
    "flatten",
    "log",
    "log1p",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "prod",
    "relu",
    "reshape",
    "sigmoid",
    "sign",
    "sin",
    "split",
    "tensor_split",
    "expand",
    "repeat",
    "flip",
    "sort",
    "topk",
    "median",
    "cumsum",
    "cumprod",
    "cummax",
    "cummin",
    "logcumsumexp",
    "argsort",
    "mode",
    "count_nonzero",
    "nansum",
    "nanmean",
    "take_along_dim",
    "tile",
    "movedim",
    "moveaxis",
    "diff",
    "mm",
    "bmm",
    "mv",
    "logical_xor",
    "softmax",
    "log_softmax",
    "chunk",
    "sqrt",
    "squeeze",
    "std",
    "sum",
    "swapaxes",
    "swapdims",
    "permute",
    "tanh",
    "transpose",
    "unsqueeze",
    "var",
    "broadcast_to",
    "erf",
    "isnan",
    "isfinite",
    # indexing, under PyTorch's method names
    "roll",
    "repeat_interleave",
    "tril",
    "triu",
    "diag",
    "diagonal",
    "trace",
    "gather",
    "scatter",
    "scatter_add",
    "index_select",
    "masked_fill",
    "masked_select",
    "ravel",
    "unbind",
    "narrow",
    "nonzero",
    "argwhere",
    # the elementwise family, under PyTorch's method names
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "asin",
    "acos",
    "atan",
    "arctan2",
    "atan2",
    "sinh",
    "cosh",
    "arcsinh",
    "arccosh",
    "arctanh",
    "asinh",
    "acosh",
    "atanh",
    "exp2",
    "expm1",
    "log2",
    "log10",
    "reciprocal",
    "rsqrt",
    "square",
    "floor",
    "ceil",
    "round",
    "trunc",
    "fmod",
    "remainder",
    "floor_divide",
    "logaddexp",
    "logaddexp2",
    "hypot",
    "isinf",
    "isposinf",
    "isneginf",
    "isclose",
    "allclose",
    "nan_to_num",
    "lerp",
    "dot",
    "vdot",
    "inner",
    "outer",
    "det",
    "inverse",
    "matrix_power",
    "norm",
):
    setattr(Tensor, _name, _method(getattr(_ops, _name)))
Tensor.neg = _method(_ops.negative)
Tensor.pow = _method(_ops.power)
Tensor.clamp = _method(_ops.clamp)
Tensor.view = Tensor.reshape
del _name
