"""How an op is defined: forward on arrays, derivative on Tensors, registered in one place.

```python
@primitive(save="y", samples=[Sample((3, 4))])
def exp(xp, x):                 # arrays in, array out
    return xp.exp(x)

exp.defvjp(lambda g, y, x: g * y)   # Tensors in, Tensor out: itself differentiable
```
Registering makes the op callable on Tensors, recorded on the tape, and picked up by the test
harness (which gradchecks every registered op on its `samples`, to first and second order).
"""

from __future__ import annotations

from typing import Any, Callable

from .. import backend
from ..autograd.engine import Meta, Node, SavedInput, SavedOutput, _Mode, check_grad_shape
from ..tensor import Tensor, _to_tensor

REGISTRY: dict[str, Any] = {}  # name -> Primitive or Composite, for the test harness


class Sample:
    """Sample inputs for the test harness: shape tuples become random float64 tensors.

    `domain=(lo, hi)` draws uniformly from that range (log needs positive inputs); other positional
    values (ints, index arrays, bool masks) are passed through unchanged; keywords are op params.
    `rtol` loosens the gradcheck for ops whose output is deliberately less precise than float64.
    """

    def __init__(self, *args: Any, domain: tuple[float, float] | None = None,
                 rtol: float = 1e-3, **kwargs: Any):
        self.args, self.domain, self.rtol, self.kwargs = args, domain, rtol, kwargs

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Sample({', '.join(parts)})"


class Primitive:
    """An op with a hand-written derivative."""

    def __init__(
        self,
        fwd: Callable,
        name: str,
        save: str,
        elementwise: bool,
        differentiable: bool,
        aux: bool,
        samples: list[Sample],
        view: bool = False,
    ):
        self.fwd, self.name, self.save = fwd, name, save
        self.save_inputs = save in ("x", "xy")
        self.save_output = save in ("y", "xy")
        self.elementwise = elementwise  # broadcasting op: gradients are summed back to each shape
        self.differentiable = differentiable
        self.aux = aux  # forward returns (y, aux): residuals only the derivative reads
        self.samples = samples
        self.view = view
        self.call: Callable = self  # what users call (a wrapper that checks arguments, or self)
        self.vjps: tuple[Callable, ...] = ()
        self.joint_vjp: Callable | None = None
        self.__name__ = name
        self.__doc__ = fwd.__doc__

    def defvjp(self, *vjps: Callable | None) -> Primitive:
        """One derivative per positional input: `vjp(g, y, *inputs, **params) -> gradient`."""
        self.vjps = vjps
        return self

    def defvjp_joint(self, vjp: Callable) -> Callable:
        """One derivative for all inputs at once, for ops whose gradients share work.

        `vjp(g, y, *inputs, needs=(bool, ...), **params) -> tuple of gradients`.
        """
        self.joint_vjp = vjp
        return vjp

    def api(self, wrapper: Callable) -> Callable:
        """Mark `wrapper` as the public function for this op (the test harness calls it)."""
        self.call = wrapper
        wrapper.__doc__ = wrapper.__doc__ or self.__doc__
        return wrapper

    def __call__(self, *args: Any, **params: Any) -> Tensor:
        tensors = []
        arrays = []
        dev = None
        requires = False
        for a in args:
            if type(a) is not Tensor:
                if isinstance(a, (int, float, bool)) or a is None:
                    # Python scalars stay weak: float32 * 2.0 is float32, as in NumPy.
                    tensors.append(a)
                    arrays.append(a)
                    continue
                if not isinstance(a, Tensor):
                    a = _to_tensor(a, self.name, dev)
            if dev is None:
                dev = a._device
            elif a._device != dev:
                raise RuntimeError(
                    f"{self.name}: tensors are on different devices, {dev} and {a._device}; "
                    "move one with .to(device)"
                )
            requires = requires or a.requires_grad
            tensors.append(a)
            arrays.append(a.data)
        xp = backend.xp_of_device(dev) if dev is not None else backend.np
        try:
            out = self.fwd(xp, *arrays, **params)
        except (ValueError, TypeError, IndexError) as exc:
            raise _op_error(self.name, exc, tensors) from None
        aux = None
        if self.aux:
            out, aux = out
        if type(out) is not xp.ndarray and not backend.is_cuda_array(out):
            out = xp.asarray(out)  # NumPy returns scalars from 0-d operations
        y = Tensor._make(out)
        if self.view and isinstance(tensors[0], Tensor) and xp.may_share_memory(out, arrays[0]):
            # A view shares memory with its base, so it shares the version counter too: an
            # in-place change through either is seen by whatever saved the other.
            y._version, y._view = tensors[0]._version, True
        if requires and _Mode.enabled and self.differentiable:
            nxt = tuple(
                (t if t._node is None else (t._node, t._idx))
                if isinstance(t, Tensor) and t.requires_grad else None
                for t in tensors
            )
            if self.save_inputs:
                ins = tuple(SavedInput(t) if isinstance(t, Tensor) else t for t in tensors)
            else:
                ins = tuple(Meta(t) if isinstance(t, Tensor) else t for t in tensors)
            if aux is not None:
                params = dict(params, aux=aux)
            y.requires_grad = True
            y._node = node = Node(self, ins, None, params, nxt)
            node.output = SavedOutput(y) if self.save_output else Meta(y)
        return y

    def backward(self, node: Node, gouts: list) -> tuple:
        """Gradients for the node's inputs from the gradient of its output."""
        name = self.name
        g = gouts[0]
        y = node.output.unpack(name) if self.save_output else node.output
        xs = [x.unpack(name) if type(x) is SavedInput else x for x in node.inputs]
        params = node.params
        if self.joint_vjp is not None:
            needs = tuple(e is not None for e in node.next)
            grads = list(self.joint_vjp(g, y, *xs, needs=needs, **params))
        else:
            grads = [
                self.vjps[i](g, y, *xs, **params) if e is not None else None
                for i, e in enumerate(node.next)
            ]
        for i, gi in enumerate(grads):
            if gi is None or node.next[i] is None:
                continue
            shape = xs[i].shape
            if self.elementwise and gi.shape != shape:
                gi = grads[i] = unbroadcast(gi, shape)
            check_grad_shape(name, i, gi, shape)
        return grads

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def primitive(
    name: str | None = None,
    *,
    save: str = "x",
    elementwise: bool = False,
    differentiable: bool = True,
    aux: bool = False,
    view: bool = False,
    samples: list[Sample] | None = None,
) -> Callable[[Callable], Primitive]:
    """Register `fwd(xp, *arrays, **params)` as a primitive op.

    save: what the derivative reads besides shapes: "x" (inputs), "y" (output), "xy", or "" (none),
    so an input the derivative never reads may be changed in place after the op without error.
    """
    if save not in ("", "x", "y", "xy"):
        raise ValueError(f"primitive: save must be '', 'x', 'y' or 'xy', not {save!r}")

    def register(fwd: Callable) -> Primitive:
        op = Primitive(fwd, name or fwd.__name__, save, elementwise, differentiable, aux,
                       samples or [], view)
        if op.name in REGISTRY:
            raise ValueError(f"primitive: an op named {op.name!r} is already registered")
        REGISTRY[op.name] = op
        return op

    return register


class Composite:
    """A function written with primitives: its gradient comes from theirs. Registered for testing."""

    def __init__(self, fn: Callable, name: str, samples: list[Sample]):
        self.fn, self.name, self.samples = fn, name, samples
        self.call = fn


def composite(name: str | None = None, *, samples: list[Sample] | None = None) -> Callable:
    """Register a composite function with the test harness; returns the function unchanged."""

    def register(fn: Callable) -> Callable:
        op_name = name or fn.__name__
        if op_name in REGISTRY:
            raise ValueError(f"composite: an op named {op_name!r} is already registered")
        REGISTRY[op_name] = Composite(fn, op_name, samples or [])
        return fn

    return register


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum a broadcast gradient back to `shape`: the derivative of broadcasting."""
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and g.shape[i + extra] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if extra:
        g = g.reshape(shape)
    return g


def _op_error(name: str, exc: Exception, tensors: list) -> Exception:
    """Turn an array library's error into one that names the op and what it was given."""
    desc = ", ".join(
        f"{t.shape} {t.dtype}" if isinstance(t, Tensor) else repr(t) for t in tensors
    )
    msg = str(exc)
    if "broadcast" in msg:
        shapes = " and ".join(str(t.shape) for t in tensors if isinstance(t, Tensor))
        return ValueError(f"{name}: shapes {shapes} cannot be broadcast together")
    return type(exc)(f"{name}: {msg} (inputs: {desc})")
