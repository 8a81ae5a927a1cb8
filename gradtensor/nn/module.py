"""Module: the base class of layers and models. It finds its parameters by attribute assignment.

>>> class Net(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.fc = nn.Linear(4, 2)          # registered as a child module
...     def forward(self, x):
...         return self.fc(x)
>>> [name for name, _ in Net().named_parameters()]
['fc.weight', 'fc.bias']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import backend
from ..autograd.engine import Function, RemovableHandle
from ..autograd.graph import RECORDING, grad_mode, recorder
from ..tensor import Tensor, as_dtype
from .parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` did not match: keys the module has that the dict
    lacked, and keys the dict had that the module does not."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model: subclass it, assign layers and Parameters as
    attributes in `__init__`, and write `forward`."""

    training: bool
    # Changes so far to any module's train/eval state or to what it holds (parameters, buffers,
    # submodules): gt.compile checks the modules a recording called only when this has moved.
    _edits = 0

    def __init__(self) -> None:
        # Registries, in assignment order (which fixes the order of parameters() and state_dict).
        # The objects are also ordinary instance attributes, so `self.weight` is a plain lookup.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        for hooks in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            object.__setattr__(self, hooks, {})

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define it in the class")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if RECORDING and (rec := recorder()) is not None:
            rec.module(self)  # gt.compile guards its train/eval state
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks:
            return self._call_hooked(args, kwargs)
        return self.forward(*args, **kwargs)

    # -- hooks (PyTorch's order: pre-hooks, forward, forward hooks; backward hooks in backward) --
    def _call_hooked(self, args: tuple, kwargs: dict) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        bw = _BackwardHooks(self) if self._backward_hooks and grad_mode.enabled else None
        if bw is not None:
            args = bw.wrap_inputs(args)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            new = hook(self, args, out)
            if new is not None:
                out = new
        return out if bw is None else bw.wrap_outputs(out)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, args) runs before forward; a result other than None replaces the
        positional arguments (a tuple, or a single value)."""
        return _add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, args, output) runs after forward; a result other than None replaces the
        output."""
        return _add_hook(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, grad_input, grad_output) runs in backward once the gradients of the
        module's positional inputs are known (None for inputs that are not tensors requiring
        grad); a tuple it returns replaces grad_input."""
        return _add_hook(self._backward_hooks, hook)

    # -- registration --------------------------------------------------------------------------
    def _registries(self, name: str) -> tuple[dict, dict, dict]:
        try:
            return self._parameters, self._modules, self._buffers
        except AttributeError:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() has run: call "
                "super().__init__() first in your __init__"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            params, mods, bufs = self._registries(name)
            mods.pop(name, None)
            bufs.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params, mods, bufs = self._registries(name)
            params.pop(name, None)
            bufs.pop(name, None)
            mods[name] = value
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to parameter {name!r}: use "
                    "nn.Parameter(...) or None (or change its values under gt.no_grad())"
                )
            self._parameters[name] = None
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to submodule {name!r}: "
                    "use a Module or None"
                )
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to buffer {name!r}: "
                    "use a Tensor or None"
                )
            self._buffers[name] = value
        object.__setattr__(self, name, value)
        Module._edits += 1  # after the change: a check that saw the old state checks again

    def __delattr__(self, name: str) -> None:
        for reg in (self._parameters, self._modules, self._buffers):
            reg.pop(name, None)
        self._non_persistent.discard(name)
        object.__delattr__(self, name)
        Module._edits += 1

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register a parameter (or None, as a placeholder that state_dict skips)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: {name!r} must be a Parameter or None, "
                f"not {type(param).__name__}"
            )
        self._registries(name)[0][name] = param
        object.__setattr__(self, name, param)
        Module._edits += 1

    def register_buffer(self, name: str, value: Tensor | None, persistent: bool = True) -> None:
        """State that is not learnable: moved by `to`, saved unless persistent=False."""
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None")
        self._registries(name)[2][name] = value
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, value)
        Module._edits += 1

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, not {type(module).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(
                f"add_module: a module name must be a non-empty str without '.', not {name!r}"
            )
        if hasattr(type(self), name) or name in self._parameters or name in self._buffers:
            raise KeyError(f"add_module: attribute {name!r} already exists")
        self._registries(name)[1][name] = module
        object.__setattr__(self, name, module)
        Module._edits += 1

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path: `model.get_submodule("layers.0")`; "" is self."""
        m = self
        for part in target.split(".") if target else ():
            child = m._modules.get(part)
            if child is None:
                raise AttributeError(
                    f"{type(m).__name__} has no submodule {part!r} (in {target!r})"
                )
            m = child
        return m

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at a dotted path: `model.get_parameter("layers.0.weight")`."""
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if m._parameters.get(name) is None:
            raise AttributeError(f"{type(m).__name__} has no parameter {name!r} (in {target!r})")
        return m._parameters[name]

    # -- traversal -----------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(name, module) for this module and every descendant, depth first, each once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [
                (f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None
            ]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter), each parameter once even when shared: 'layers.0.weight'."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mname, m in mods:
            for pname, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every learnable parameter, in registration order: pass them to an optimizer."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mname, m in self.named_modules(prefix):
            for bname, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every submodule, then on self (for custom initialisation)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes and gradients -------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all below it; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        Module._edits += 1
        return self

    def eval(self) -> Module:
        """Evaluation mode: `model.eval()` is `model.train(False)`."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradients on or off for every parameter (freeze a part of a model); self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients (None, or zeros in place with set_to_none=False)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            elif p.grad._node is not None:  # a gradient that is part of a graph: cut it loose
                p.grad = Tensor._make(backend.array_module(p.data).zeros_like(p.grad.data))
            else:
                p.grad.data.fill(0)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, sharing memory with the module."""
        out: dict[str, Tensor] = {}
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[pre + name] = b.detach()
        return out

    def _state_targets(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[pre + name] = b
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values into the parameters and buffers in place (they keep their identity).

        Values may be Tensors, NumPy (or CuPy) arrays or nested lists of numbers. Each is checked
        and converted before anything is written: its shape must match (ValueError), its dtype
        must convert to the target's by NumPy's same_kind rule (TypeError: int or float into a
        float parameter is fine, float into an int buffer is not), and it moves to the target's
        device. So when anything fails, every parameter and buffer is left as it was.

        strict=True: a missing or unexpected key raises KeyError naming it.
        """
        owner = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict, got {type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict for {owner}: " + "; ".join(parts))
        staged = {
            key: _converted(state_dict[key], t, f"load_state_dict for {owner}: {key!r}")
            for key, t in targets.items()
            if key in state_dict
        }
        # A value that views one of our own arrays (a permuted state dict, say) must not be
        # overwritten before it is read: copy it first.
        ours = {id(_root(t.data)) for t in targets.values()}
        for key, arr in staged.items():
            if id(_root(arr)) in ours:
                staged[key] = arr.copy()
        for key, arr in staged.items():
            targets[key]._write(arr)  # same shape, dtype and device: this cannot fail halfway
        return IncompatibleKeys(missing, unexpected)

    def to(self, device: Any = None, dtype: Any = None) -> Module:
        """Move (and/or cast floating) parameters and buffers in place: `model.to("cuda")`."""
        if dtype is None and device is not None and not isinstance(device, (str, backend.Device)):
            device, dtype = None, device
        dev = backend.device(device) if device is not None else None
        dt = as_dtype(dtype) if dtype is not None else None
        if dt is not None and dt.kind != "f":
            raise TypeError(f"Module.to: only floating-point dtypes are allowed, not {dt}")

        def convert(a: Any) -> Any:
            if dev is not None:
                a = backend.to_device(a, dev)
            if dt is not None and a.dtype.kind == "f" and a.dtype != dt:
                a = a.astype(dt)
            return a

        for m in self.modules():
            for t in list(m._parameters.values()) + list(m._buffers.values()):
                if t is None:
                    continue
                t.data = convert(t.data)
                if t.grad is not None:
                    t.grad = Tensor._make(convert(t.grad.data))
        return self

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown inside this module's parentheses in `repr`."""
        return ""

    def __repr__(self) -> str:
        lines = [ln for ln in self.extra_repr().split("\n") if ln]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        head = type(self).__name__
        if not self._modules:
            return f"{head}({', '.join(lines)})"
        return head + "(\n  " + "\n  ".join(lines) + "\n)"


def _add_hook(hooks: dict, hook: Callable) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"register hook: the hook must be callable, not {type(hook).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


class _BackwardHooks:
    """One call's full backward hooks, as PyTorch's BackwardHook: identity ops on the module's
    tensor inputs and outputs see the gradients of both, and the hooks fire from the inputs'."""

    def __init__(self, module: Module):
        self.module, self.n_in, self.at_in, self.grad_output = module, 0, [], ()

    def wrap_inputs(self, args: tuple) -> tuple:
        self.n_in = len(args)
        self.at_in = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not self.at_in:
            return args
        args = list(args)
        for i, t in zip(self.at_in, _HookInputs.apply(self, *[args[i] for i in self.at_in])):
            args[i] = t
        return tuple(args)

    def wrap_outputs(self, out: Any) -> Any:
        outs = (out,) if isinstance(out, Tensor) else out
        if not isinstance(outs, (tuple, list)):
            return out
        at = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not at:
            return out
        self.n_out, self.at_out = len(outs), at
        new = list(outs)
        for i, t in zip(at, _HookOutputs.apply(self, *[outs[i] for i in at])):
            new[i] = t
        return new[0] if isinstance(out, Tensor) else type(out)(new)

    def fire(self, grad_input: tuple) -> tuple:
        for hook in list(self.module._backward_hooks.values()):
            new = hook(self.module, grad_input, self.grad_output)
            if new is not None:
                new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
                if len(new) != len(grad_input):
                    raise RuntimeError(
                        f"{type(self.module).__name__}: a full backward hook returned "
                        f"{len(new)} gradients for {len(grad_input)} inputs"
                    )
                grad_input = new
        return grad_input


class _HookInputs(Function):
    @staticmethod
    def forward(ctx: Any, hooks: _BackwardHooks, *xs: Tensor) -> tuple:
        ctx.hooks = hooks
        return xs

    @staticmethod
    def backward(ctx: Any, *gs: Tensor) -> tuple:
        h = ctx.hooks
        full: list = [None] * h.n_in
        for i, g in zip(h.at_in, gs):
            full[i] = g
        full = list(h.fire(tuple(full)))
        return (None, *[full[i] for i in h.at_in])


class _HookOutputs(Function):
    @staticmethod
    def forward(ctx: Any, hooks: _BackwardHooks, *xs: Tensor) -> tuple:
        ctx.hooks = hooks
        return xs

    @staticmethod
    def backward(ctx: Any, *gs: Tensor) -> tuple:
        h = ctx.hooks
        full: list = [None] * h.n_out
        for i, g in zip(h.at_out, gs):
            full[i] = g
        h.grad_output = tuple(full)
        if not h.at_in:  # no input wants a gradient: the hooks fire here, with None for each
            h.fire((None,) * h.n_in)
        return (None, *gs)


def _root(a: Any) -> Any:
    """The array that owns a view's memory."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "shape"):
        a = a.base
    return a


def _converted(value: Any, t: Tensor, where: str) -> Any:
    """value as an array of t's shape, dtype and device, ready to copy into t; raises naming
    `where` when it cannot be."""
    if isinstance(value, Tensor):
        arr = value.data
    elif backend.is_cuda_array(value):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists, say
            raise ValueError(f"{where} cannot be made into an array: {exc}") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{where} is a {type(value).__name__} of dtype {arr.dtype}; expected numbers "
            "(a Tensor, an array or nested lists)"
        )
    if tuple(arr.shape) != t.shape:
        raise ValueError(
            f"{where} has shape {tuple(arr.shape)} in the state dict but {t.shape} in the module"
        )
    if not np.can_cast(arr.dtype, t.dtype, casting="same_kind"):
        raise TypeError(
            f"{where} has dtype {arr.dtype} in the state dict but {t.dtype} in the module, "
            "and that conversion would lose information (NumPy's same_kind rule)"
        )
    if not getattr(t.data.flags, "writeable", True):
        raise ValueError(f"{where}: the module's array is read-only")
    arr = backend.to_device(arr, t.device)
    return arr if arr.dtype == t.dtype else arr.astype(t.dtype)
