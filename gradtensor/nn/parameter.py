"""Parameter: a tensor that a Module registers as learnable when it is assigned as an attribute."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor, tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and that modules collect in `parameters()`.

    It is a Tensor in every other way: ops accept it and return plain Tensors.

    >>> w = nn.Parameter(gt.zeros(3)); w.requires_grad
    True
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        # Share the array of a Tensor (as torch.nn.Parameter shares storage); copy anything else.
        if data is None:
            data = tensor([])
        src = data if isinstance(data, Tensor) else tensor(data)
        if src._node is not None:
            src = src.detach()
        if requires_grad and src.dtype.kind != "f":
            raise TypeError(
                f"Parameter: only floating-point tensors can require gradients, not {src.dtype}"
            )
        self.data = src.data
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node, self._idx, self._view = None, 0, False
        self._version = src._version  # the same array, so the same version counter

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copy.deepcopy and pickle rebuild a Parameter from its array, not from the slots.
        return (_rebuild_parameter, (self.data, self.requires_grad))


def _rebuild_parameter(data: Any, requires_grad: bool) -> Parameter:
    return Parameter(Tensor._make(data), requires_grad)
