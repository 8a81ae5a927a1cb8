"""How an op is defined: forward on arrays, one derivative rule, registered in one place.

```python
@primitive(save="y", samples=[Sample((3, 4))])
def exp(xp, x):                 # arrays in, array out
    return xp.exp(x)

exp.defvjp(lambda g, y, x: g * y)   # arrays in a plain backward, Tensors under create_graph
```
Registering makes the op callable on Tensors, recorded on the tape, and picked up by the test
harness (which gradchecks every registered op on its `samples`, to first and second order).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import backend
from .. import kernels as _kernels
from ..autograd.engine import grad
from ..autograd.graph import (
    RECORDING,
    Meta,
    Node,
    SavedOutput,
    check_grad_shape,
    grad_mode,
    modified_error,
    next_seq,
    recorder,
)
from ..backend import Device
from ..errors import USER_ERRORS, names, public, renamed
from ..tensor import Tensor, tensor

_np = backend.np
_ndarray = _np.ndarray
_CPU = backend.CPU
_SCALARS = (int, float, bool)
_NUMBERS = backend.NUMBERS
_new = object.__new__

REGISTRY: dict[str, Any] = {}  # name -> Primitive or Composite, for the test harness


class _KernelSwitch(threading.local):
    """Whether ops may run their registered implementations (the kernels), per thread, like
    grad mode: `use_kernels(False)` in one thread leaves every other thread as it was."""

    enabled = os.environ.get("GRADTENSOR_KERNELS", "1").strip().lower() not in ("0", "false", "no")


_switch = _KernelSwitch()


def active_kernels() -> Any:
    """gradtensor's kernels (`gradtensor.kernels`), or None where they are off in this thread."""
    return _kernels if _switch.enabled else None


def kernels_enabled() -> bool:
    return _switch.enabled


class use_kernels:
    """Turn the kernels on or off in the calling thread: `gt.use_kernels(False)`, or
    `with gt.use_kernels(False):` to restore the previous setting on exit."""

    def __init__(self, enabled: bool = True):
        self.prev = _switch.enabled
        _switch.enabled = bool(enabled)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        _switch.enabled = self.prev


class Implementation(NamedTuple):
    """Another way to run an op (a kernel), taken when `accepts` says it can and kernels are on.

    `forward(xp, *arrays, **params)` is the op's forward; `backward` is a joint derivative rule
    on arrays (as `defvjp_joint` takes) for outputs it made. The node records which one ran.
    `plan(xp, *arrays, keep=..., **params)` and `plan_backward(g, y, *arrays, needs=...,
    keep=..., **params)`, where given, return `run(*arrays)` (the forward's result) and
    `rule(g, *saved inputs, aux)` (a gradient per input, already fitted to it, None where not
    needed) for operands of these shapes, dtypes and layouts, the checks and choices already
    made: gt.compile replays them, with keep=True (each run writes its results into the arrays
    of the run before, once nothing else holds them).
    """

    name: str
    accepts: Callable[..., bool]
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    plan: Callable[..., Callable] | None = None
    plan_backward: Callable[..., Callable] | None = None


class Sample:
    """Sample inputs for the test harness: shape tuples become random float64 tensors.

    `domain=(lo, hi)` draws uniformly from that range (log needs positive inputs); other positional
    values (ints, index arrays, bool masks) are passed through unchanged; keywords are op params.
    `rtol` loosens the gradcheck for ops whose output is deliberately less precise than float64.
    """

    def __init__(
        self,
        *args: Any,
        domain: tuple[float, float] | None = None,
        rtol: float = 1e-3,
        **kwargs: Any,
    ):
        self.args, self.domain, self.rtol, self.kwargs = args, domain, rtol, kwargs

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"


class Bad(Sample):
    """Bad input for an op, built as a Sample is: the call must raise `error` with a message
    that names the op and matches the regular expression `match`."""

    def __init__(self, *args: Any, error: type = ValueError, match: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.error, self.match = error, match


class Record:
    """What the test harness knows of an op besides its code: `samples`, the twins it must agree
    with (`torch`, `numpy`: a name under that library, e.g. "nn.functional.silu", or a function
    `twin(lib, *args, **params)`) and `errors`, Bad inputs it must refuse (PyTorch's OpInfo)."""

    samples: list[Sample]
    torch: Any = None
    numpy: Any = None
    errors: list[Bad] = []

    def _record(self, samples: Any, torch: Any, numpy: Any, errors: Any) -> None:
        self.samples, self.torch, self.numpy = samples or [], torch, numpy
        self.errors = errors or []


class Primitive(Record):
    """An op with a hand-written derivative."""

    def __init__(
        self,
        fwd: Callable,
        name: str,
        save: str,
        elementwise: bool,
        differentiable: bool,
        aux: bool,
        record: tuple,
        view: bool = False,
        casts_numbers: bool = False,
    ):
        self.fwd, self.name, self.save = fwd, name, save
        self.save_inputs = save in ("x", "xy")
        self.save_output = save in ("y", "xy")
        self.elementwise = elementwise  # broadcasting op: gradients are summed back to each shape
        self.differentiable = differentiable
        self.aux = aux  # forward returns (y, aux): residuals only the derivative reads
        self._record(*record)
        self.view = view
        # An op of IEEE arithmetic on one float array and one Python number: the number is cast
        # to the array's dtype before the forward, which is what NumPy's weak promotion does (so
        # the results are the same), for less than NumPy's own handling of a number costs.
        self.casts_numbers = casts_numbers
        self.call: Callable = self  # what users call (a wrapper that checks arguments, or self)
        self.vjps: tuple[Callable, ...] = ()
        self.joint_vjp: Callable | None = None
        self.composite: Callable | None = None
        self.impls: tuple[Implementation, ...] = ()
        self.__name__ = name
        self.__doc__ = fwd.__doc__

    def defvjp(self, *vjps: Callable | None) -> Primitive:
        """One derivative per positional input: `vjp(g, y, *inputs, **params) -> gradient`."""
        self.vjps = vjps
        return self

    def implementation(
        self,
        name: str,
        accepts: Callable,
        backward: Callable,
        plan: Callable | None = None,
        plan_backward: Callable | None = None,
    ) -> Callable:
        """Register `forward` as another implementation of this op (a decorator); see
        `Implementation`. The first that accepts the operands runs, while kernels are on."""

        def register(forward: Callable) -> Callable:
            impl = Implementation(name, accepts, forward, backward, plan, plan_backward)
            self.impls += (impl,)
            return forward

        return register

    def _choose(self, arrays: Any, params: dict) -> Implementation | None:
        if _switch.enabled:
            for impl in self.impls:
                if impl.accepts(*arrays, **params):
                    return impl
        return None

    def defcomposite(self, fn: Callable) -> Callable:
        """What the op means, written with differentiable ops: `fn(*inputs, **params)`.

        For an op whose value comes from a kernel or a shortcut (a fused layer, a fused loss):
        its derivative rule then only needs to run on arrays, and gradients of gradients come
        from differentiating `fn` (JAX's custom_jvp idea). The test harness checks the two agree.
        """
        if not self.save_inputs:
            raise ValueError(f"{self.name}: an op with a composite must save its inputs (save='x')")
        self.composite = fn
        return fn

    def defvjp_joint(self, vjp: Callable) -> Callable:
        """One derivative for all inputs at once, for ops whose gradients share work.

        `vjp(g, y, *inputs, needs=(bool, ...), **params) -> tuple of gradients`.
        """
        self.joint_vjp = vjp
        return vjp

    def api(self, wrapper: Callable) -> Callable:
        """Mark `wrapper` as the public function for this op (the test harness calls it)."""
        wrapper.__doc__ = wrapper.__doc__ or self.__doc__
        self.call = public(self.name, wrapper)
        return self.call

    def __call__(self, *args: Any, **params: Any) -> Tensor:
        # The hot path of the library: every op of every step comes through here, so it is
        # written for speed: one pass over the operands gathers the arrays for the forward and,
        # at the same time, the edges and saved inputs a node needs.
        if args and type(args[0]) is _ndarray and _host_plain(args):
            return self._on_arrays(args, params, _np)  # a derivative's maths on host arrays
        save = self.save_inputs
        arrays = []
        nxt = []
        ins = []
        versions = [] if save else None
        requires = on_gpu = False
        n_plain = 0
        for a in args:
            if isinstance(a, Tensor):
                d = a.data
                arrays.append(d)
                if type(d) is not _ndarray:
                    on_gpu = True
                if a.requires_grad:
                    requires = True
                    nxt.append(a if a._node is None else (a._node, a._idx))
                else:
                    nxt.append(None)
                ins.append(a)
                if save:
                    versions.append(a._version[0])
            elif a is None or type(a) in _SCALARS:
                arrays.append(a)  # Python scalars stay weak: float32 * 2.0 is float32
                nxt.append(None)
                ins.append(a)
                if save:
                    versions.append(0)
                n_plain += 1
            else:
                if all(_is_plain(b) for b in args):  # no Tensor: arrays in, array out
                    return self._on_arrays(args, params)
                if isinstance(a, _np.generic):
                    # Next to a Tensor a NumPy number is a number, as in PyTorch (and CuPy takes
                    # it): float32 * np.float64(2) stays float32, on whichever device.
                    args = [b.item() if isinstance(b, _np.generic) else b for b in args]
                    return self(*args, **params)
                return self(*self._convert(args), **params)
        if n_plain:
            if n_plain == len(args):  # numbers only: they become tensors, as lists would
                args = [a if a is None else _to_tensor(a, self.name, None) for a in args]
                return self(*args, **params)
            if self.casts_numbers and not on_gpu:
                a0, a1 = arrays
                i, v, dtype = (1, a1, a0.dtype) if type(a0) is _ndarray else (0, a0, a1.dtype)
                c = _NUMBERS.get((v, dtype))  # a number met before, as its 0-d array
                arrays[i] = c if c is not None else backend.number_as(v, dtype)
        impl = fwd = None
        if self.impls:
            impl = self._choose(arrays, params)
            if impl is not None:
                fwd = impl.forward
        if fwd is None:
            fwd = self.fwd
        try:
            if on_gpu:
                xp, dev = self._gpu_device(args)
                with backend.on(dev):  # CuPy works on the current GPU: make it the operands'
                    out = fwd(xp, *arrays, **params)
            else:
                xp, dev = _np, _CPU
                out = fwd(xp, *arrays, **params) if params else fwd(xp, *arrays)
        except USER_ERRORS as exc:
            raise _op_error(self.name, exc, args) from exc
        aux = None
        if self.aux:
            out, aux = out
        if type(out) is not _ndarray and not backend.is_cuda_array(out):
            out = xp.asarray(out)  # NumPy returns scalars from 0-d operations
        if RECORDING:
            rec = recorder()
            if rec is not None:
                rec.forward(self, impl, xp, dev, args, arrays, params, out, aux)
        y = _new(Tensor)
        y.data = out
        y.requires_grad = False
        y._grad = y._node = None
        y._idx = 0
        y._version = [0]
        y._view = False
        if self.view and xp.may_share_memory(out, arrays[0]):
            # A view shares memory with its base, so it shares the version counter too: an
            # in-place change through either is seen by whatever saved the other.
            y._version, y._view = args[0]._version, True
        if requires and grad_mode.enabled and self.differentiable:
            if not save:
                # Only shapes are needed: keeping the tensors would keep their memory alive.
                for i, t in enumerate(ins):
                    if isinstance(t, Tensor):
                        ins[i] = _meta(t, dev)
                arrays = None
            keeps_y = self.save_output
            if aux is not None:
                params = dict(params, aux=aux)
                # A residual that is the output's own memory (relu's mask read from y) makes the
                # output saved: its version is then checked like any saved tensor's.
                keeps_y = keeps_y or _aliases(out, aux)
            y.requires_grad = True
            saved = SavedOutput(out, y._version) if keeps_y else Meta(out.shape, out.dtype, dev)
            # A Node with its fields set here: the hot path spares itself the constructor's call.
            y._node = node = _new(Node)
            node.fn, node.inputs, node.output, node.params = self, ins, saved, params
            node.next, node.n_out, node.impl, node.versions = nxt, 1, impl, versions
            node.arrays, node.retained, node.seq = arrays, None, next_seq()
        return y

    def _on_arrays(self, args: tuple, params: dict, xp: Any = None) -> Any:
        """The op on plain arrays, nothing recorded: arrays in, array out (`xp`: NumPy when the
        caller found them all on the host).

        This is what lets one derivative rule serve both speeds: in a plain backward the engine
        hands it arrays and every op it calls runs here; under create_graph it gets Tensors.
        """
        if (
            xp is None
        ):  # on arrays, CuPy's rule holds: the current GPU (a backward makes it the node's)
            xp = next((backend.array_module(a) for a in args if backend.is_cuda_array(a)), _np)
        impl = self._choose(args, params) if self.impls else None
        fwd = self.fwd if impl is None else impl.forward
        try:
            out = fwd(xp, *args, **params)
        except USER_ERRORS as exc:
            raise _op_error(self.name, exc, args) from exc
        if self.aux:
            out = out[0]
        return out if type(out) is _ndarray or backend.is_cuda_array(out) else xp.asarray(out)

    def _convert(self, args: tuple) -> list:
        """Operands that are neither Tensors nor Python scalars become constant tensors."""
        dev = next((a._device for a in args if isinstance(a, Tensor)), None)
        return [
            a
            if isinstance(a, Tensor) or a is None or type(a) in _SCALARS
            else _to_tensor(a, self.name, dev)
            for a in args
        ]

    def _gpu_device(self, items: Any) -> tuple:
        devs = {a._device for a in items if isinstance(a, Tensor)}
        if len(devs) > 1:
            a, b = sorted(devs, key=str)[:2]
            raise RuntimeError(
                f"{self.name}: tensors are on different devices, {a} and {b}; move one with "
                ".to(device) (gradtensor never copies between devices silently)"
            )
        (dev,) = devs
        return backend.xp_of_device(dev), dev

    def _fit(self, i: int, gi: Any, shape: tuple) -> Any:
        """Sum a broadcast gradient back to its input's shape; any other mismatch is a bug."""
        if gi.shape != shape:
            if self.elementwise:
                gi = unbroadcast(gi, shape)
            check_grad_shape(self.name, i, gi, shape)
        return gi

    def backward(self, node: Node, gouts: list, raw: bool) -> list:
        """The input gradients from the output's: arrays when `raw`, else Tensors.

        One derivative rule serves both. A plain backward (`raw`) hands it arrays: its operators
        are the arrays' own, and primitives given arrays return arrays, so no Tensor is made.
        Under create_graph it gets Tensors and every step is recorded; an op whose value comes
        from a kernel is then differentiated through the composite it declared instead.
        """
        ins = node.inputs
        versions = node.versions
        if versions is not None:  # nothing saved may have changed in place since
            for t, v in zip(ins, versions):
                if isinstance(t, Tensor) and t._version[0] != v:
                    raise modified_error(self.name, t.shape, v, t._version[0])
        y = node.output  # what stands for the output: its array (or Tensor) if the rule reads it
        if type(y) is SavedOutput:
            saved = y
            y = saved.array(self.name)  # raises if y was changed in place
            if not raw and self.save_output:
                y = Tensor._make(y, node, saved.idx)  # the output as it was, in its graph
                y._version = saved.box
        g = gouts[0]
        params = node.params
        nxt = node.next
        if not raw:
            if self.composite is not None:
                return self._through_composite(ins, g, _needs(nxt), params)
            if node.impl is not None:
                raise RuntimeError(
                    f"{self.name}: ran {node.impl.name!r}, whose derivative is on arrays only; "
                    "the op must declare its composite (defcomposite) for gradients of gradients"
                )
        xs = node.arrays if raw and self.save_inputs else ins  # unsaved inputs: only shapes
        joint = self.joint_vjp if node.impl is None else node.impl.backward
        if joint is not None:
            return self.fit_grads(list(joint(g, y, *xs, needs=_needs(nxt), **params)), xs, raw)
        # The hot loop of a plain backward: one call per input that wants a gradient, and a
        # gradient that already has its input's shape and dtype goes as it is.
        vjps = self.vjps
        grads = [None] * len(nxt)
        for i, e in enumerate(nxt):
            if e is not None and vjps[i] is not None:  # None: no derivative (where's cond)
                gi = vjps[i](g, y, *xs, **params) if params else vjps[i](g, y, *xs)
                x = xs[i]
                if type(gi) is _ndarray and gi.dtype is x.dtype and gi.shape == x.shape:
                    grads[i] = gi
                else:
                    grads[i] = self._fit_one(i, gi, x, raw)
        return grads

    def fit_grads(self, grads: list, ins: Any, raw: bool) -> list:
        """A rule's gradients made to match their inputs (`ins`: arrays, tensors or Meta):
        broadcasts summed back, 0-d results as arrays, each in its input's float dtype."""
        for i, gi in enumerate(grads):
            if gi is not None:
                grads[i] = self._fit_one(i, gi, ins[i], raw)
        return grads

    def _fit_one(self, i: int, gi: Any, x: Any, raw: bool) -> Any:
        if gi.shape != x.shape:
            gi = self._fit(i, gi, x.shape)
        if raw and type(gi) is not _ndarray and not backend.is_cuda_array(gi):
            gi = _np.asarray(gi)  # a 0-d NumPy result comes back as a scalar
        xd = x.dtype
        if gi.dtype is not xd and gi.dtype != xd and xd.kind in "fc":
            # An input's gradient has its dtype (float32 / an int tensor: float64 maths)
            gi = gi.astype(xd)
        return gi

    def _through_composite(self, ins: Any, g: Tensor, needs: tuple, params: dict) -> list:
        wanted = [t for t, n in zip(ins, needs) if n]
        params = {k: v for k, v in params.items() if k != "aux"}
        got = iter(grad(self.composite(*ins, **params), wanted, g, create_graph=True))
        return [next(got) if n else None for n in needs]

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
    casts_numbers: bool = False,
    samples: list[Sample] | None = None,
    torch: Any = None,
    numpy: Any = None,
    errors: list[Bad] | None = None,
) -> Callable[[Callable], Primitive]:
    """Register `fwd(xp, *arrays, **params)` as a primitive op.

    save: what the derivative reads besides shapes: "x" (inputs), "y" (output), "xy", or "" (none),
    so an input the derivative never reads may be changed in place after the op without error.
    samples, torch, numpy and errors are the op's test record (see `Record`).
    A derivative (`defvjp`) is written with operators, methods arrays share with Tensors
    (.reshape, .sum) and primitives, which given arrays return arrays: a plain backward runs it
    on arrays, create_graph=True on Tensors.
    """
    if save not in ("", "x", "y", "xy"):
        raise ValueError(f"primitive: save must be '', 'x', 'y' or 'xy', not {save!r}")

    def register(fwd: Callable) -> Primitive:
        op = Primitive(
            fwd,
            name or fwd.__name__,
            save,
            elementwise,
            differentiable,
            aux,
            (samples, torch, numpy, errors),
            view,
            casts_numbers,
        )
        if op.name in REGISTRY:
            raise ValueError(f"primitive: an op named {op.name!r} is already registered")
        REGISTRY[op.name] = op
        return op

    return register


class Composite(Record):
    """A function written with primitives (its gradient comes from theirs), registered for tests."""

    def __init__(self, fn: Callable, name: str, record: tuple):
        self.fn, self.name, self.call = fn, name, fn
        self._record(*record)


def composite(
    name: str | None = None,
    *,
    samples: list[Sample] | None = None,
    torch: Any = None,
    numpy: Any = None,
    errors: list[Bad] | None = None,
) -> Callable:
    """Register a composite function with the test harness; returns it as a public function
    (whose errors name it, see `public`)."""

    def register(fn: Callable) -> Callable:
        op_name = name or fn.__name__
        if op_name in REGISTRY:
            raise ValueError(f"composite: an op named {op_name!r} is already registered")
        call = public(op_name, fn)
        REGISTRY[op_name] = Composite(call, op_name, (samples, torch, numpy, errors))
        return call

    return register


def _needs(nxt: tuple) -> tuple[bool, ...]:
    """Which inputs want a gradient: those with somewhere for it to go."""
    return tuple(e is not None for e in nxt)


def _meta(t: Tensor, dev: Any) -> Meta:
    """The shape, dtype and device of `t`: its node's record of them where that still holds
    (Meta is immutable, so nodes can share one), else a new one."""
    node = t._node
    if node is not None:
        m = node.output
        d = t.data
        if type(m) is Meta and m.shape == d.shape and m.dtype == d.dtype:
            return m
    d = t.data
    return Meta(d.shape, d.dtype, dev)


def _host_plain(args: tuple) -> bool:
    """Host arrays, Python scalars and None only: an op's arguments in a CPU plain backward."""
    for a in args:
        t = type(a)
        if t is not _ndarray and t not in _SCALARS and a is not None:
            return False
    return True


def _is_plain(a: Any) -> bool:
    """An array, a NumPy scalar, a Python scalar or None: what an op runs on without Tensors."""
    return (
        a is None
        or type(a) in _SCALARS
        or isinstance(a, (_ndarray, _np.generic))
        or backend.is_cuda_array(a)
    )


def _aliases(out: Any, aux: Any) -> bool:
    """Whether an array among an op's residuals is its output's memory (the same buffer: an op's
    residuals are its output, views of it, or arrays of their own)."""
    buffer = _buffer(out)
    for a in aux if type(aux) is tuple else (aux,):
        if _aliases(out, a) if type(a) is tuple else hasattr(a, "base") and _buffer(a) is buffer:
            return True
    return False


def _buffer(a: Any) -> Any:
    return a if a.base is None else a.base


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


def _op_error(name: str, exc: Exception, operands: Any) -> Exception:
    """Turn an error from inside an op into one that names the op and what it was given."""
    msg = str(exc)
    if "broadcast" in msg and not names(msg, name):
        shapes = " and ".join(str(t.shape) for t in operands if isinstance(t, Tensor))
        return ValueError(f"{name}: shapes {shapes} cannot be broadcast together")
    desc = ", ".join(
        f"{t.shape} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__ for t in operands
    )
    return renamed(name, exc, f" (inputs: {desc})")


def _to_tensor(a: Any, op: str, dev: Device | None) -> Tensor:
    """An op's non-Tensor operand (a list, a NumPy array) as a constant tensor.

    Host data next to a GPU tensor is an error, not a silent copy to the device.
    """
    if backend.is_cuda_array(a):
        if dev is None or dev == backend.device_of_array(a):
            return Tensor._make(a)
        raise RuntimeError(
            f"{op}: operands are on different devices, {dev} and "
            f"{backend.device_of_array(a)}; move one with .to(device)"
        )
    if isinstance(a, (list, tuple)) and _holds_tensor(a):
        # Stacked as an op, so that gradients reach every tensor in the list (NumPy reads
        # np.mean([a, b]) as the mean of the stacked arrays).
        parts = [e if isinstance(e, Tensor) else _to_tensor(e, op, dev) for e in a]
        shapes = {p.shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(
                f"{op}: a list of tensors must hold one shape to be stacked, got {sorted(shapes)}"
            )
        return REGISTRY["stack"].call(parts)  # a composite of the shape ops, above this one
    if dev is not None and dev.type == "cuda":
        raise RuntimeError(
            f"{op}: a {type(a).__name__} (host memory) was given with a tensor on {dev}; make it "
            f"a tensor on {dev} first (gradtensor never copies between devices silently)"
        )
    # A NumPy array keeps its float dtype, as PyTorch's operands do (float32 + a float64 array
    # is float64); a list takes the default float dtype, as gt.tensor([...]) does.
    keep = isinstance(a, _ndarray) and a.dtype.kind == "f"
    try:
        t = tensor(a, dtype=a.dtype if keep else None, device=dev)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: cannot use a {type(a).__name__} as an operand ({exc})") from None
    return t


def _holds_tensor(seq: list | tuple) -> bool:
    return any(
        isinstance(e, Tensor) or (isinstance(e, (list, tuple)) and _holds_tensor(e)) for e in seq
    )
