"""gt.compile: record a training step once, then replay it on arrays.

```python
@gt.compile
def step(x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss
```
A call runs the function eagerly while a recorder notes, in order, what it computed on arrays:
each op's forward (the primitive's array function, or the kernel that ran), each derivative rule
the backward ran, each sum of gradients and each gradient handed to a leaf, each random draw,
each in-place write, and each call that acts on state outside the step (an optimizer's step or
zero_grad, gradient clipping, a post-accumulate-grad hook such as DistributedDataParallel's, the
callbacks a backward runs at its end). Once a second recording, made at the next call with the
same guards, agrees with the first, later calls replay the list: no Tensor or graph node is made,
no op dispatches or checks its arguments, and the same array functions run in the same order, so
a replayed step gives the eager step's numbers bit for bit. What differs between the two
recordings was computed from tensor values outside the ops (a mask made from `t.data` with
NumPy): such a function is refused rather than replayed with stale values.

A replay's planned kernels (the fused layers, the fused loss) and its sums of gradients write
into the arrays they made at the replay before, once nothing else holds those any longer, so a
warm replay of such a step allocates no arrays; an array the caller kept (a returned loss, a
`.grad` from an earlier step) is never written over. Consecutive elementwise ops of the forward
whose maths IEEE arithmetic rounds exactly (+, -, *, /, negation, abs, sqrt) on arrays of one
float dtype and device become one generated Numba loop (kernels.fuse_cpu) or CUDA kernel
(kernels.fuse_cuda) that stores only what the rest of the step reads, with NumPy's (CuPy's)
numbers bit for bit. The other instructions make new arrays.
With `gt.compile(fn, cuda_graph=True)` a GPU replay runs its GPU work (forward, backward,
clipping, the optimizer's update) as captured CUDA graphs, one per run of GPU work between host
instructions (`_graph`, `_GraphRegion`).

As with jax.jit, Python runs only while recording. What the function reads from tensor values
(`loss.item()`, `if t > 0:`, `.numpy()`, `.tolist()`) cannot be replayed, so it is an error that
names the call, or with `gt.compile(fn, fallback=True)` the function runs eagerly every time.
Tensors the function makes from Python data are constants of the recording; inputs that change
from call to call must be arguments. The guards: each Tensor argument's shape, dtype, device and
requires_grad, other arguments' values (numbers, strings) or identities (objects), the train/eval
state of every module called, grad mode, `use_kernels` and the shapes and dtypes of the tensors
the step reads from outside (parameters). A call that fails them records again (logged on the
"gradtensor.compile" logger); the last `max_traces` recordings are kept. A recording whose own
cost (noting the ops, planning the kernels, writing the replay; not running the step) passes
ANNOUNCE_S (50 ms) says so on that logger, as a warning. A compiled function called while
another one records runs eagerly, so that the outer recording sees its ops.
"""

from __future__ import annotations

import builtins
import functools
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from operator import is_not
from typing import Any

from . import backend
from .autograd import engine
from .autograd.engine import add_arrays
from .autograd.graph import RECORDING, Meta, Node, SavedOutput, grad_mode, recorder
from .kernels import fuse_cpu, fuse_cuda, results
from .ops.registry import Primitive, kernels_enabled
from .tensor import Tensor, get_default_dtype

log = logging.getLogger("gradtensor.compile")
ANNOUNCE_S = 0.05  # a recording whose own cost (beyond running the step) passes this is logged
_ndarray = backend.np.ndarray
_PLAIN = (int, float, bool, str, type(None), complex)


class CompileError(RuntimeError):
    """What a step does cannot be recorded for replay (and `fallback=True` was not given)."""


def compile(
    fn: Callable | None = None, *, fallback: bool = False, max_traces: int = 8,
    cuda_graph: bool = False,
) -> Any:  # fmt: skip
    """Record `fn` at its first call and replay it on arrays at later calls (see the module
    docstring); usable as `@gt.compile` or `@gt.compile(fallback=True)`. cuda_graph=True: on a
    GPU, the replay's GPU work runs as a captured CUDA graph (see `_graph`)."""
    if fn is None:
        return lambda f: compile(f, fallback=fallback, max_traces=max_traces,
                                 cuda_graph=cuda_graph)  # fmt: skip
    if not callable(fn):
        raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
    if not isinstance(max_traces, int) or max_traces < 1:
        raise ValueError(f"compile: max_traces must be a positive int, got {max_traces!r}")
    return Compiled(fn, fallback, max_traces, bool(cuda_graph))


class Compiled:
    """A compiled function: call it as the original. `.traces` counts the recordings made."""

    def __init__(self, fn: Callable, fallback: bool, max_traces: int, cuda_graph: bool = False):
        self.fn, self.fallback, self.max_traces = fn, fallback, max_traces
        self.cuda_graph = cuda_graph
        self.name = getattr(fn, "__qualname__", repr(fn))
        # guard key -> recordings (each with its own module states), the newest last
        self.cache: OrderedDict[Any, list[Trace]] = OrderedDict()
        self.eager_reason: str | None = None  # set when a recording found fn not replayable
        self.traces = 0
        self.lock = threading.Lock()
        functools.update_wrapper(self, fn)

    @property
    def code(self) -> str | None:
        """The Python source of the newest replay: one straight-line function of the call's
        arguments, an instruction a line (None before a recording has been agreed)."""
        with self.lock:
            agreed = [t for ts in self.cache.values() for t in ts if t.agreed]
        return agreed[-1].code if agreed else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Inside another compiled function's recording, it runs eagerly: that recording must
        # see its ops, which a replay on arrays would hide.
        if self.eager_reason is not None or (RECORDING and recorder() is not None):
            return self.fn(*args, **kwargs)
        flat: list[Any] = []
        tree = _flatten((args, kwargs), flat) if args or kwargs else _NO_ARGUMENTS
        key = (tree, tuple([_signature(a) for a in flat]), grad_mode.enabled, kernels_enabled(),
               get_default_dtype())  # fmt: skip
        traces = self.cache.get(key, ())  # lists replaced, never changed: no lock to read
        first = None
        for trace in traces:
            # A replay runs when it finds what it reads from outside as last found to fit;
            # else the whole check (`stale`) runs, and a replay again if it fits.
            arrays = trace.run(flat) if trace.agreed else None
            if arrays is None and trace.stale() is None:
                if not trace.agreed:
                    first = trace
                    break
                arrays = trace.run(flat)
            if arrays is not None:
                return trace.outputs(arrays)
        if self.traces and first is None:
            why = traces[-1].stale() if traces else "new argument shapes, dtypes or values"
            log.debug("compile: %s records again: %s", self.name, why)
        return self._record(key, args, kwargs, flat, first)

    def _record(self, key: Any, args: tuple, kwargs: dict, flat: list, first: Any) -> Any:
        """Run fn eagerly, recording it. A recording is replayed once a second one, made at the
        next call with the same guards, agrees with it: what differs between the two is
        computed from tensor values outside the ops, which a replay could not redo."""
        rec = _Recorder(self.name, self.fallback, self.cuda_graph)
        for i, a in enumerate(flat):
            if isinstance(a, Tensor):
                rec.argument(i, a)
        RECORDING.append(rec)
        try:
            result = self.fn(*args, **kwargs)
        finally:
            RECORDING.remove(rec)
        self.traces += 1
        if rec.problem is None and first is not None:
            why = first.differs(trace := rec.finish(result))
            if why is not None:
                rec.stop(f"cannot be replayed: recorded twice with the same guards, {why} (it "
                         "computes from tensor values outside the ops)")  # fmt: skip
        if rec.problem is not None:
            self.eager_reason = rec.problem
            log.debug("compile: %s runs eagerly from now on: %s", self.name, rec.problem)
            return result
        if first is None:
            trace = rec.finish(result)
        else:
            rec.agree(trace, self.cuda_graph)
        if rec.spent > ANNOUNCE_S:
            log.warning(
                "compile: recording %s cost %.0f ms beyond running it (noting each op, "
                "planning the kernels, writing the replay)",
                self.name,
                rec.spent * 1e3,
            )
        with self.lock:
            traces = [t for t in self.cache.pop(key, []) if t is not first] + [trace]
            self.cache[key] = traces
            while sum(map(len, self.cache.values())) > self.max_traces:
                oldest, kept = next(iter(self.cache.items()))
                if len(kept) > 1:
                    self.cache[oldest] = kept[1:]
                else:
                    self.cache.popitem(last=False)
        leaves: list[Any] = []
        _flatten(result, leaves)
        return trace.outputs([t.data for t in leaves if isinstance(t, Tensor)])


# -- arguments: a flat list of leaves and the structure around them ----------------------------


def _flatten(obj: Any, out: list) -> Any:
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple([_flatten(o, out) for o in obj]))
    if isinstance(obj, dict):
        return (dict, tuple([(k, _flatten(v, out)) for k, v in obj.items()]))
    out.append(obj)
    return None


_NO_ARGUMENTS = _flatten(((), {}), [])


def _signature(a: Any) -> Any:
    if isinstance(a, Tensor):
        d = a.data  # the layout too: a kernel's plan reads the memory as it was recorded
        return (d.shape, d.dtype, d.strides, type(d), a.device, a.requires_grad)
    if type(a) in _PLAIN:
        return (type(a), a)
    return ("id", id(a))  # a module, an optimizer, a function: the same object


def _rebuild(tree: Any, leaves: Any) -> Any:
    if tree is None:
        return next(leaves)
    kind, parts = tree
    if kind is dict:
        return {k: _rebuild(t, leaves) for k, t in parts}
    items = [_rebuild(t, leaves) for t in parts]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)  # a namedtuple: by field


# -- recording ---------------------------------------------------------------------------------


def _timed(method: Callable) -> Callable:
    """A recorder method whose time counts as the recording's own cost."""

    @functools.wraps(method)
    def timed(self: _Recorder, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.spent += time.perf_counter() - t0

    return timed


class _Recorder:
    """Told by the ops, the engine and the optimizers what they compute while `fn` runs."""

    def __init__(self, name: str, fallback: bool, cuda_graph: bool = False):
        self.name, self.fallback, self.cuda_graph = name, fallback, cuda_graph
        self.spent = 0.0  # seconds in the recorder's own work: noting ops, plans, the replay
        self.thread = threading.get_ident()
        self.paused = False
        self.problem: str | None = None
        self.handed: set[int] = set()  # ids of the arrays backward adopted as gradients
        self.adopted: dict[int, int] = {}  # a delivered gradient's slot -> the slot it came in
        self.slots: dict[int, int] = {}  # id(array) -> slot
        self.keep: list[Any] = []  # every array seen, alive so that ids stay unique
        self.template: list[Any] = []  # a replay's first values: constants, None elsewhere
        self.fresh: set[int] = set()  # slots an instruction fills (a new array each replay)
        self.args: list[tuple[int, int]] = []  # (slot, flat argument index)
        self.externals: list[tuple[int, Tensor]] = []  # (slot, tensor): read tensor.data
        self.modules: dict[int, tuple[Any, bool]] = {}
        self.program: list[tuple[bool, Callable]] = []  # (part of a backward?, instruction)
        self.described: list[tuple] = []  # what each instruction is
        self.elementwise: dict[int, tuple] = {}  # instruction -> its maths, for fusion
        self.kinds: list[str] = []  # what each instruction is to a CUDA graph (see _emit)
        self.template.append(None)  # slot 0: the arrays a replay's backward handed out

    # slots
    def _new(self, value: Any) -> int:
        self.template.append(None)
        return len(self.template) - 1

    def made(self, a: Any) -> int:
        """A slot for an array an instruction makes."""
        s = self._new(a)
        self.fresh.add(s)
        if a is not None and not isinstance(a, _PLAIN):
            self.slots[id(a)] = s
            self.keep.append(a)
        return s

    def slot(self, a: Any, tensor: Tensor | None = None) -> int:
        """The slot of an array already seen; otherwise a new one: the tensor's data read at
        each replay (a parameter) or, for anything else, a constant of the recording."""
        if a is None or isinstance(a, _PLAIN):
            s = self._new(a)
            self.template[s] = a
            return s
        s = self.slots.get(id(a))
        if s is None:
            s = self.slots[id(a)] = self._new(a)
            self.keep.append(a)
            if tensor is not None:
                self.externals.append((s, tensor))
            else:
                self.template[s] = a
        return s

    def argument(self, i: int, t: Tensor) -> None:
        if id(t.data) not in self.slots:
            s = self.slots[id(t.data)] = self._new(t.data)
            self.keep.append(t.data)
            self.args.append((s, i))

    def _emit(self, backward: bool, fn: Callable, ins: Any, outs: Any, *what: Any,
              kind: str = "host") -> None:  # fmt: skip
        """An instruction, `outs = fn(*ins)` over slots (outs: a slot, a tuple of them, or
        None), and what it is (for comparing two recordings of one function). `kind`: "device"
        for work on a GPU only (what a CUDA graph can capture), "before" and "after" for host
        bookkeeping that may run before or after the graph (a backward's start and end, the
        delivery of gradients to leaves, an optimizer's step counts), "host" for the rest."""
        self.program.append((backward, fn, tuple(ins), outs))
        self.described.append(what)
        self.kinds.append(kind)

    # what fn does, as the layers below report it
    def stop(self, why: str) -> None:
        """fn does something a replay cannot do: an error, or with fallback eager calls."""
        message = f"compile: {self.name} {why}"
        if not self.fallback:
            raise CompileError(message + "; or compile it with fallback=True to run it eagerly")
        self.problem, self.paused = message, True

    def values_read(self, what: str) -> None:
        self.stop(
            f"reads a tensor's values with {what} while being recorded: a replay cannot redo "
            "what Python does with them (keep value reads outside the compiled function, and "
            "return the tensors instead)"
        )

    def unsupported(self, what: str) -> None:
        self.stop(f"uses {what}, which gt.compile does not record")

    def module(self, m: Any) -> None:
        self.modules[id(m)] = (m, m.training, _members(m))

    @_timed
    def forward(self, op: Primitive, impl: Any, xp: Any, dev: Any, args: Any, arrays: list,
                params: dict, out: Any, aux: Any) -> None:  # fmt: skip
        for v in params.values():
            for a in v if isinstance(v, tuple) else (v,):
                if id(a) in self.slots:
                    return self.unsupported(f"{op.name} with a computed array among its options")
        if impl is not None and impl.plan is not None:  # the kernel's checks, made once
            run = impl.plan(xp, *arrays, keep=True, **params)
        else:
            run = functools.partial(op.fwd if impl is None else impl.forward, xp, **params)
        ins = [self.slot(arr, a if isinstance(a, Tensor) else None) for a, arr in zip(args, arrays)]
        o = self.made(out)
        x = self.made(aux) if op.aux else None
        run = _forward(run, xp, dev, op.aux, out.ndim == 0)
        gpu = dev is not None and dev.type != "cpu"
        if impl is None and not params and op.name in fuse_cpu.OPS:
            self._note_maths(op.name, ins, arrays, o, out, dev if gpu else None)
        kind = "device" if gpu else "host"
        self._emit(False, run, ins, o if x is None else (o, x), op, ins, params, o, x, kind=kind)

    def _note_maths(self, name: str, ins: list, arrays: list, o: int, out: Any, gpu: Any) -> None:
        """An instruction that one generated loop could compute with its neighbours: arrays of
        the result's float dtype, of one kind (host arrays in C layout, or arrays on the `gpu`),
        or Python numbers."""
        kind = type(out)
        if gpu is None and (kind is not _ndarray or not out.flags.c_contiguous):
            return
        args, shapes = [], {}
        for s, a in zip(ins, arrays):
            if (
                type(a) is kind
                and a.dtype == out.dtype
                and (gpu is not None or a.flags.c_contiguous)
            ):
                args.append(("in", s))
                shapes[s] = a.shape
            elif type(a) in (int, float) and abs(a) < 2**53:  # exactly a float64
                args.append(("const", a))
            else:
                return
        if fuse_cpu.accepts(out.shape, out.dtype, list(shapes.values())):
            self.elementwise[len(self.program)] = (name, args, shapes, o, out.shape, out.dtype,
                                                   gpu)  # fmt: skip

    @_timed
    def backward(self, node: Node, gouts: list, grads: list) -> None:
        op = node.fn
        if not isinstance(op, Primitive):
            return self.unsupported(f"a custom Function ({node.name})")
        gs = [None if g is None else self.slot(g) for g in gouts]
        arrays = None if node.arrays is None else [self.slot(a) for a in node.arrays]
        out = node.output
        y = self.slot(out.data) if type(out) is SavedOutput else None
        params = dict(node.params)
        aux = self.slot(params.pop("aux")) if "aux" in params else None
        # The node a replay hands to the op's derivative: the saved values set at each replay,
        # shapes instead of tensors, edges reduced to whether a gradient is wanted.
        inputs = [Meta(t.data.shape, t.data.dtype, t.device) if isinstance(t, Tensor) else t
                  for t in node.inputs]  # fmt: skip
        edges = tuple(None if e is None else True for e in node.next)
        template = Node(op, inputs, None if y is not None else out, params, edges)
        template.impl = node.impl
        outs = [None if g is None else self.made(g) for g in grads]
        gpu = type(gouts[0]) is not _ndarray
        impl = node.impl
        rule = op.joint_vjp if impl is None else impl.backward
        if rule is None and impl is None and op.vjps:
            rule = _joined(op.vjps, edges)
        # what the instruction reads: the gradients that came, the saved inputs, y, aux
        ins = [i for i in gs if i is not None] + (arrays or [])
        ins += [i for i in (y, aux) if i is not None]
        wanted = tuple(i for i in outs if i is not None)
        needs = tuple(e is not None for e in edges)
        planned = impl is not None and impl.plan_backward is not None
        if rule is None or gs[0] is None or (op.save_inputs and arrays is None):
            run = _backward(op, template, gs, arrays, y, aux, params, outs, gpu)
        elif planned and len(gs) == 1:  # the kernel's rule, its checks made once
            y_value = out.data if y is not None else out
            xs = node.arrays if op.save_inputs else inputs
            run = impl.plan_backward(gouts[0], y_value, *xs, needs=needs, keep=True, **node.params)
            if gpu:
                run = _on_device(run)
            # It reads the saved inputs and aux, and gives every input's gradient (None where
            # not needed): the rest are dropped.
            ins = [gs[0], *(arrays or []), self.slot(None) if aux is None else aux]
            wanted = tuple(outs)
        else:  # the derivative rule called directly, as a plain backward would call it
            n = len(arrays) if op.save_inputs else 0
            const = out if y is None else None
            one = [k for k, o in enumerate(outs) if o is not None]
            if impl is None and op.joint_vjp is None and len(one) == 1 and aux is None:
                # One input wants a gradient: its own derivative, called with nothing around it.
                run = _one(op, op.vjps[one[0]], one[0], n, None if n else inputs, y is not None,
                           const, params, inputs, gpu)  # fmt: skip
            else:
                run = _rule(op, rule, n, None if n else inputs, y is not None, const,
                            aux is not None, params, needs, inputs, outs, gpu)  # fmt: skip
        kind = "device" if gpu else "host"
        self._emit(True, run, ins, wanted, op, gs, arrays, y, aux, params, outs, edges, kind=kind)

    def backward_begins(self) -> None:
        """A backward starts: at a replay too, hooks may queue end-of-backward callbacks."""
        self.queue_slot = s = self._new(None)
        self._emit(True, engine.callbacks_begin, (), s, "begin", kind="before")

    def backward_ends(self, queue: list) -> None:
        """The backward's queued callbacks run now, and at each replay, where a replayed hook
        queued them again."""
        self.paused = True
        try:
            for fn in queue:
                fn()
        finally:
            self.paused = False
        # With no callbacks queued, the end of a backward is bookkeeping a graph may run before.
        self._emit(False, engine.callbacks_end, (self.queue_slot,), None, "end",
                   kind="host" if queue else "after")  # fmt: skip

    def add(self, a: Any, b: Any) -> Any:
        s = add_arrays(a, b)
        sa, sb, out = self.slot(a), self.slot(b), self.made(s)
        run = _added(s) if type(s) is _ndarray and type(a) is type(b) is _ndarray else add_arrays
        kind = "host" if type(s) is _ndarray else "device"
        self._emit(True, run, (sa, sb), out, "add", sa, sb, out, kind=kind)
        return s

    def deliver(self, leaf: Tensor, g: Any) -> None:
        s = self.slot(g)
        copy = s not in self.fresh  # a constant or an argument's array: never adopted
        self.paused = True  # an accumulation is a Tensor sum, not an op of the step
        try:
            deliver_grad(leaf, g, copy, self.handed)
        finally:
            self.paused = False
        # What the step reads of leaf.grad later (clipping, say) is the array delivered.
        out = self.made(leaf.grad.data)
        if leaf.grad.data is g:
            self.adopted[out] = s
        self._emit(True, _deliver(leaf, copy), (s, 0), out, "deliver", leaf, s, copy, out,
                   kind="after")  # fmt: skip

    def copy_into(self, t: Tensor, src: Any) -> None:
        dst, s = self.slot(t.data, t), self.slot(src)
        external = dst not in self.fresh
        run = _copy_into(t if external else None)
        self._emit(False, run, (dst, s), None, "copy", t, dst, s)

    def source(self, draw: Callable, a: Any) -> None:
        out = self.made(a)
        self._emit(False, draw, (), out, "draw", a.shape, a.dtype, out)

    def call(self, fn: Callable, *args: Any, replay: Callable | None = None,
             graphed: Callable | None = None) -> Any:  # fmt: skip
        """fn(*args) (an optimizer step, a clipping), run again as a whole at each replay; or,
        given `replay`, replay() made after the call runs in its place (the same work with the
        checks the call made skipped).

        With a CUDA graph in view, `graphed()` made after the call may split it instead, as
        (prepare or None, work, leaves): prepare() is host work that a replay runs before the
        graph, work(prepare's result, *the leaves' gradients) the GPU work inside it, reading
        the gradients where the backward made them."""
        self.paused = True
        try:
            result = fn(*args)
        finally:
            self.paused = False
        out = self.made(result.data) if isinstance(result, Tensor) else None
        split = graphed() if graphed is not None and self.cuda_graph else None
        if split is not None:
            prepare, work, leaves = split
            grads = [self.adopted.get(self.slots.get(id(t._grad.data), -1)) for t in leaves]
            if None not in grads:
                if prepare is not None:
                    ready = self.made(None)
                    self._emit(False, prepare, (), ready, fn, args, "prepare", kind="before")
                    grads.insert(0, ready)
                self._emit(False, work, tuple(grads), out, fn, args, out, kind="device")
                return result
        run = _call(fn, args) if replay is None else _call(replay(), ())
        self._emit(False, run, (), out, fn, args, out)
        return result

    def set_grad(self, t: Tensor, value: Tensor | None) -> None:
        """t.grad = value in the step's own code (a hand-written zero_grad, say)."""
        if value is None:
            self._emit(False, _set_grad(t, False), (), None, "set_grad", t)
            return
        s = self.slot(value.data, value)
        self._emit(False, _set_grad(t, s not in self.fresh), (s,), None, "set_grad", t, s)

    def write(self, t: Tensor, values: Any) -> None:
        """t's memory overwritten with values outside the ops (Tensor._write)."""
        if not isinstance(values, _PLAIN) and id(values) not in self.slots:
            return self.unsupported("an in-place write of values computed outside the ops")
        dst, src = self.slot(t.data, t), self.slot(values)
        self._emit(False, _copy_into(t), (dst, src), None, "write", t, dst, src)

    @_timed
    def agree(self, trace: Trace, cuda_graph: bool) -> None:
        trace.agree(cuda_graph)

    @_timed
    def finish(self, result: Any) -> Trace:
        leaves: list[Any] = []
        tree = _flatten(result, leaves)
        outs = [(True, self.slot(r.data, r)) if isinstance(r, Tensor) else (False, r)
                for r in leaves]  # fmt: skip
        externals = [(s, t, (t.data.shape, t.data.dtype, t.data.strides), t.requires_grad)
                     for s, t in self.externals]  # fmt: skip
        trace = Trace(self.program, self.template, self.args, externals,
                      list(self.modules.values()), tree, outs)  # fmt: skip
        trace.described, trace.elementwise = self.described, self.elementwise
        trace.kinds = self.kinds
        self.keep = []  # the recording's arrays, alive until now so that ids stayed unique
        return trace


def _same(a: Any, b: Any) -> bool:
    """Two recordings' parts are the same: arrays by value, tensors by identity, the rest by ==."""
    if a is b:
        return True
    if hasattr(a, "__array_interface__") or backend.is_cuda_array(a):
        return (
            type(a) is type(b)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(backend.array_module(a).array_equal(a, b))
        )
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


def _name(x: Any) -> str:
    return getattr(x, "name", None) or getattr(x, "__qualname__", None) or str(x)


def _what(a: Any) -> str:
    return f"{a.dtype} {tuple(a.shape)}" if hasattr(a, "dtype") else repr(a)[:40]


def _members(m: Any) -> tuple:
    """A module's parameters, buffers and submodules, whose identity a recording assumes."""
    return (*m._parameters.values(), *m._buffers.values(), *m._modules.values())


# -- instructions: functions of the slots they read, returning the slots they fill --------------


def _forward(run, xp, dev, aux, scalar) -> Callable:
    """run(*arrays), the forward on the replay's arrays, as the op's call gives its result."""
    if scalar:  # NumPy gives a 0-d result as a scalar: an array, as the op's own call makes it

        def run(*arrays, plain=run):
            res = plain(*arrays)
            if aux:
                return xp.asarray(res[0]), res[1]
            return xp.asarray(res)

    if dev is not None and dev.type != "cpu":

        def run(*arrays, plain=run):
            with backend.on(dev):
                return plain(*arrays)

    return run


def _backward(op, node, gouts, arrays, y, aux, params, outs, gpu) -> Callable:
    """The op's whole backward on a node made for the replay (an op without a joint rule)."""
    n_x = 0 if arrays is None else len(arrays)

    def run(*values):
        it = iter(values)
        gs = [None if i is None else next(it) for i in gouts]
        if arrays is not None:
            node.arrays = [next(it) for _ in range(n_x)]
        if y is not None:
            node.output = next(it)
        if aux is not None:
            node.params = dict(params, aux=next(it))
        if gpu:
            with values[0].device:
                grads = op.backward(node, gs, True)
        else:
            grads = op.backward(node, gs, True)
        node.arrays = None  # the saved values go when the rule has run, as in backward()
        if y is not None:
            node.output = None
        return tuple(g for i, g in zip(outs, grads) if i is not None)

    return run


def _rule(op, rule, n, metas, has_y, const, has_aux, params, needs, inputs, outs, gpu) -> Callable:
    """A joint derivative rule on the replay's arrays, its gradients fitted to their inputs:
    run(g, *saved inputs, y?, aux?) -> the wanted gradients. Whether fitting changes anything
    (a broadcast summed back, a dtype cast) is the same at every replay, as the shapes and
    dtypes are: once the first run finds it changes nothing, later runs skip it."""
    wanted = [k for k, i in enumerate(outs) if i is not None]
    every = len(wanted) == len(outs)
    fits = None  # whether fit_grads changes the rule's results; None until the first run

    def run(g, *values):
        nonlocal fits
        xs = values[:n] if metas is None else metas
        yv = values[n] if has_y else const
        kw = dict(params, aux=values[-1]) if has_aux else params
        if gpu:
            with g.device:
                grads = rule(g, yv, *xs, needs=needs, **kw)
        else:
            grads = rule(g, yv, *xs, needs=needs, **kw)
        if fits is not False:
            fitted = op.fit_grads(list(grads), inputs, True)
            if fits is None:
                fits = any(map(is_not, fitted, grads))
            grads = fitted
        return tuple(grads) if every else tuple([grads[k] for k in wanted])

    return run


def _added(like: Any) -> Callable:
    """add_arrays on host arrays, into the sum of the replay before once nothing else holds it."""
    alloc, shape, dtype, add = (
        results(True),
        like.shape,
        like.dtype,
        backend.np.add,
    )

    def run(a: Any, b: Any) -> Any:
        return add(a, b, out=alloc("sum", shape, dtype))

    return run


def _one(op, vjp, i, n, metas, has_y, const, params, inputs, gpu) -> Callable:
    """`_rule` for an op with a derivative per input, when one input wants a gradient:
    run(g, *saved inputs, y?) -> (its gradient,), fitted to it as `_rule` fits (or found to need
    no fitting at the first run)."""
    fits = None

    def run(g, *values):
        nonlocal fits
        xs = values[:n] if metas is None else metas
        yv = values[n] if has_y else const
        if gpu:
            with g.device:
                gi = vjp(g, yv, *xs, **params)
        else:
            gi = vjp(g, yv, *xs, **params)
        if fits is not False:
            grads = [None] * len(inputs)
            grads[i] = gi
            fitted = op.fit_grads(grads, inputs, True)[i]
            if fits is None:
                fits = fitted is not gi
            gi = fitted
        return (gi,)

    return run


def _joined(vjps: tuple, edges: tuple) -> Callable:
    """An op's per-input derivatives as one joint rule, calling those the backward would call:
    for the inputs that want a gradient and have a derivative."""
    calls = [(i, v) for i, (v, e) in enumerate(zip(vjps, edges)) if e is not None and v is not None]
    n = len(edges)

    def joint(g: Any, y: Any, *xs: Any, needs: tuple, **params: Any) -> list:
        grads = [None] * n
        for i, vjp in calls:
            grads[i] = vjp(g, y, *xs, **params)
        return grads

    return joint


def _on_device(run: Callable) -> Callable:
    def on(g, *values):
        with g.device:  # CuPy works on the current GPU: the gradient's
            return run(g, *values)

    return on


def deliver_grad(leaf: Tensor, g: Any, copy: bool, handed: set) -> None:
    """A gradient into leaf.grad, as backward() hands it over: in the leaf's dtype, adopted or
    copied, or added to the gradient already there (engine.accumulate)."""
    if g.dtype != leaf.dtype:
        if type(g) is _ndarray:
            g = g.astype(leaf.dtype)
        else:
            with g.device:  # CuPy works on the current GPU: the gradient's
                g = g.astype(leaf.dtype)
    engine.accumulate(leaf, g, handed, copy)


def _deliver(leaf: Tensor, copy: bool) -> Callable:
    def run(g: Any, handed: set) -> Any:
        if leaf._grad is None and g.dtype is leaf.data.dtype:  # the common case, directly
            leaf._grad = Tensor._make(engine.owned(g, handed, copy))
        else:
            deliver_grad(leaf, g, copy, handed)
        return leaf._grad.data

    return run


def _set_grad(t: Tensor, copy: bool) -> Callable:
    def run(*value: Any) -> None:
        if not value:
            t._grad = None
        else:  # an array from outside the step is copied: the gradient must own its memory
            t._grad = Tensor._make(value[0].copy() if copy else value[0])

    return run


def _copy_into(t: Tensor | None) -> Callable:
    def run(dst: Any, src: Any) -> None:
        dst[...] = src
        if t is not None:
            t._changed()

    return run


def _call(fn: Callable, args: tuple) -> Callable:
    def run() -> Any:
        result = fn(*args)
        return result.data if isinstance(result, Tensor) else None

    return run


# -- a recording, replayed ---------------------------------------------------------------------


class Trace:
    def __init__(self, program, template, args, externals, modules, tree, outs):
        self.template, self.args = template, args
        self.externals, self.modules, self.tree, self.outs = externals, modules, tree, outs
        self.described: list[tuple] = []
        self.edits = None  # Module._edits when the modules were last found unchanged
        # each outside tensor's array, then its requires_grad, then Module._edits, when last
        # found to fit
        self.seen: list[Any] = [None] * (2 * len(externals) + 1)
        self.agreed = False  # a second recording agreed with this one: it may be replayed
        self.program, self.elementwise, self.kinds = program, {}, ["host"] * len(program)
        self.code = self.run = None  # written once agreed (`agree`)

    def agree(self, cuda_graph: bool = False) -> None:
        """A second recording agreed with this one: write its replay, with each run of
        elementwise maths fused into one loop where that can be done; with `cuda_graph`, its
        GPU work captured into a CUDA graph where that can be done (`_graph`)."""
        returned = {v for is_tensor, v in self.outs if is_tensor}
        program, kinds = _fuse(self.program, self.kinds, self.elementwise, returned)
        if cuda_graph and "device" in kinds:
            program, why = _graph(program, kinds, returned, {s for s, _ in self.args},
                                  self.template)  # fmt: skip
            if why is not None:
                log.warning("compile: no CUDA graph for this step: %s", why)
        module = self.modules[0][0] if self.modules else None
        self.code, self.run = _generate(program, self.template, self.args, self.externals,
                                        self.outs, seen=self.seen, module=module)  # fmt: skip
        self.agreed = True

    def differs(self, other: Trace) -> str | None:
        """What differs between two recordings of one function with the same guards, which a
        replay would need to compute (None: they agree)."""
        a, b = self.described, other.described
        for i, (x, y) in enumerate(zip(a, b)):
            if not _same(x, y):
                return f"its instruction {i} ({_name(x[0])}) differs between them"
        if len(a) != len(b):
            return f"it ran {len(a)} instructions, then {len(b)}"
        for i, (x, y) in enumerate(zip(self.template, other.template)):
            if not _same(x, y):
                return f"a constant in it (slot {i}, {_what(x)}) differs between them"
        mine = {slot: t for slot, t, *_ in self.externals}
        for slot, t, *_ in other.externals:
            u = mine.get(slot)
            if u is None or not (u is t or _same(u.data, t.data)):
                return f"a tensor it reads ({_what(t.data)}) differs between them"
        return None

    def stale(self) -> str | None:
        """Why this recording no longer fits (None when it does: then what a replay finds first,
        `seen`, is what it found). The modules are checked again only after an edit of any."""
        edits = self.modules[0][0]._edits if self.modules else None  # read before checking
        if edits != self.edits:
            for m, training, members in self.modules:
                if m.training != training:
                    mode = "train" if m.training else "eval"
                    return f"{type(m).__name__} switched to {mode} mode"
                now = _members(m)
                if len(now) != len(members) or any(map(is_not, now, members)):
                    return f"a {type(m).__name__} has new parameters, buffers or submodules"
            self.edits = edits
        arrays, wanted = [], []
        for _, t, layout, requires_grad in self.externals:
            d, r = t.data, t.requires_grad
            if (d.shape, d.dtype, d.strides) != layout or r != requires_grad:
                return f"a tensor read from outside changed (now {d.dtype} {d.shape})"
            arrays.append(d)
            wanted.append(r)
        self.seen[:] = [*arrays, *wanted, edits]
        return None

    def outputs(self, arrays: Any) -> Any:
        """fn's result: its tensors, from `arrays` in order, with no graph (as every call's)."""
        it = iter(arrays)
        results = [Tensor._make(next(it)) if is_tensor else v for is_tensor, v in self.outs]
        return _rebuild(self.tree, iter(results))


def _fuse(program: list, kinds: list, elementwise: dict, returned: set) -> tuple[list, list]:
    """(the program, what each instruction is to a CUDA graph) with each run of two or more
    consecutive elementwise instructions over one shape, dtype and device (`elementwise`:
    instruction -> its maths) made one instruction, a generated loop (kernels.fuse_cpu) or GPU
    kernel (kernels.fuse_cuda) that stores only what later instructions read or fn returns."""
    readers: dict[int, set[int]] = {}
    for k, (_, _, ins, _) in enumerate(program):
        for i in ins:
            readers.setdefault(i, set()).add(k)
    fused, fused_kinds, k = [], [], 0
    while k < len(program):
        run = [k]
        if k in elementwise:
            kind = elementwise[k][4:]
            while run[-1] + 1 in elementwise and elementwise[run[-1] + 1][4:] == kind:
                run.append(run[-1] + 1)
        one = _fused(run, elementwise, readers, returned) if len(run) > 1 else False
        if one is False:  # not fused: the instructions as they were
            fused += [program[i] for i in run]
            fused_kinds += [kinds[i] for i in run]
        elif one is not None:  # (None: nothing reads what the run computes)
            fused.append(one)
            fused_kinds.append(kinds[k])
        k = run[-1] + 1
    return fused, fused_kinds


def _fused(run: list, elementwise: dict, readers: dict, returned: set) -> Any:
    """One instruction for a run of elementwise instructions, (False, loop, ins, outs); None
    when nothing reads what the run computes; False when no loop could be built."""
    made = {elementwise[k][3]: j for j, k in enumerate(run)}  # slot -> step
    inside = set(run)
    ins: list[int] = []
    shapes: list[tuple] = []
    steps = []
    for k in run:
        name, args, shape_of, *_ = elementwise[k]
        parts = []
        for kind, v in args:
            if kind == "const":
                parts.append(("const", v))
            elif v in made and made[v] < len(steps):
                parts.append(("step", made[v]))
            else:
                if v not in ins:
                    ins.append(v)
                    shapes.append(shape_of[v])
                parts.append(("in", ins.index(v)))
        steps.append((name, tuple(parts)))
    slots = [elementwise[k][3] for k in run]
    stored = [j for j, o in enumerate(slots) if o in returned or readers.get(o, set()) - inside]
    if not stored:
        return None
    shape, dtype, gpu = elementwise[run[0]][4:]
    try:
        if gpu is None:
            loop = fuse_cpu.plan_elementwise(steps, shapes, stored, shape, dtype)
        else:
            with backend.on(gpu):
                loop = _forward(fuse_cuda.plan_elementwise(steps, shapes, stored, shape, dtype),
                                None, gpu, False, False)  # fmt: skip
    except Exception as exc:  # a loop that would not build: the ops run one by one, as eagerly
        log.warning("compile: %d elementwise ops left unfused: %s: %s", len(run),
                    type(exc).__name__, exc)  # fmt: skip
        return False
    return (False, loop, tuple(ins), tuple(slots[j] for j in stored))


def _graph(program: list, kinds: list, returned: set, arg_slots: set, template: list) -> tuple:
    """(the program with each run of GPU work between host instructions made one instruction,
    a `_GraphRegion`; why a run could not be, or None).

    A run is what lies between two host instructions: its "before" instructions (a backward's
    start, an optimizer's step counts) move before the region, its "after" ones (gradients
    delivered to leaves) after it, where they read the region's outputs. Host code (a random
    draw, a hook, a copy into a tensor) is left between the regions, as it would not run
    again inside a graph."""
    runs: list[list[int]] = [[]]
    for k, kind in enumerate(kinds):
        if kind == "host":
            runs.append([])
        else:
            runs[-1].append(k)
    produced = {o for j in range(len(program)) for o in _made(program[j])}
    # What "before" instructions make (an optimizer's plan) is read where it is, as a constant.
    host_made = {o for j, kind in enumerate(kinds) if kind == "before" for o in _made(program[j])}
    rewritten: dict[int, list] = {}  # a run's first instruction -> what replaces the run
    whys = []
    for run in runs:
        if not any(kinds[k] == "device" for k in run):
            continue
        region = [k for k in run if kinds[k] == "device"]
        after = [k for k in run if kinds[k] == "after"]
        inside = {o for k in region for o in _made(program[k])}
        # what a delivery hands to a leaf, no GPU work of the region may read
        if any(o in program[j][2] for k in after for o in _made(program[k]) for j in region
               if j > k):  # fmt: skip
            whys.append(f"a gradient handed to a leaf (instruction {after[0]}) is read by "
                        "later GPU work")  # fmt: skip
            continue
        ins = list(dict.fromkeys(i for k in region for i in program[k][2] if i not in inside))
        outside = [j for j in range(len(program)) if j not in region]
        read = {i for j in outside for i in program[j][2]} | returned
        outs = [o for k in region for o in _made(program[k]) if o in read]
        # Inputs a graph may read where they are (constants, parameters, a plan): the rest (the
        # call's arguments, what host code made this call) are copied into arrays of its own.
        fixed = [i not in arg_slots and (i not in produced or i in host_made) for i in ins]
        body = [program[k] for k in region]
        replay = _generate(body, template, list(zip(ins, range(len(ins)))), [],
                           [(True, o) for o in outs], raw=True)[1]  # fmt: skip
        graph = _GraphRegion(replay, fixed, [o in returned for o in outs])
        rewritten[run[0]] = (
            [program[k] for k in run if kinds[k] == "before"]
            + [(False, graph, tuple(ins), tuple(outs))]
            + [program[k] for k in after]
        )
        for k in run[1:]:
            rewritten[k] = []
    if not rewritten:
        return program, "; ".join(whys) or "no GPU work"
    program = [i for k, p in enumerate(program) for i in rewritten.get(k, [p])]
    return program, "; ".join(whys) or None


def _made(instruction: tuple) -> tuple:
    """The slots an instruction fills."""
    o = instruction[3]
    return (o,) if type(o) is int else tuple(i for i in o or () if i is not None)


class _GraphRegion:
    """A replay's GPU work as one CUDA graph: run as it is for its first WARM calls (kernels
    compiled, the memory pool warm), then captured on a stream of its own with a memory pool of
    its own, and launched from then on. Inputs that are not `fixed` are copied into arrays the
    graph owns; outputs the step returns are copied out of the graph's. A call whose inputs
    moved (a parameter replaced) captures again; a call while an output of the graph is still
    held (a gradient kept from the step before) runs the work as it is, so that nothing held
    is written over. A capture that fails is logged, and the work then runs as it is."""

    WARM = 2

    def __init__(self, run: Callable, fixed: list, copied: list):
        self.run, self.fixed, self.copied = run, fixed, copied
        self.calls = self.launches = 0
        self.graph: Any = None
        self.failed: str | None = None
        # One caller at a time launches: the check that no output is held and the launch that
        # hands the outputs to it happen together.
        self.lock = threading.Lock()

    def __call__(self, *arrays: Any) -> tuple:
        if not self.lock.acquire(blocking=False):
            return self.run(arrays)  # another thread launches the graph now
        try:
            self.calls += 1
            if self.graph is not None and not all(
                a is s for a, s, f in zip(arrays, self.static_in, self.fixed) if f
            ):
                self.graph = None  # a parameter is another array now: capture again
                self.calls = 1
            if self.graph is None:
                if self.failed is None and self.calls > self.WARM:
                    return self._capture(arrays)
                return self.run(arrays)
            if self._held():
                return self.run(arrays)  # held: this call's outputs must be arrays of its own
            return self._launch(arrays)
        finally:
            self.lock.release()

    def _held(self) -> bool:
        """Whether something else now holds an output that a launch writes into in place."""
        return any(n > base for n, base, c in zip(self._refs(), self.refs, self.copied) if not c)

    def _refs(self) -> list[int]:
        refs = sys.getrefcount
        return [refs(o) for o in self.static_out]

    def _capture(self, arrays: tuple) -> tuple:
        cuda = backend.cuda_runtime()
        self.static_in = [a if f else a.copy() for a, f in zip(arrays, self.fixed)]
        self.stream = cuda.Stream(non_blocking=True)
        self.pool = cuda.MemoryPool()  # the graph's memory, which nothing else may take
        self.stream.wait_event(cuda.get_current_stream().record())
        try:
            with cuda.using_allocator(self.pool.malloc), self.stream:
                self.stream.begin_capture()
                try:
                    outs = self.run(self.static_in)
                finally:
                    graph = self.stream.end_capture()
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.warning("compile: CUDA graph capture failed, the step runs without: %s",
                        self.failed)  # fmt: skip
            return self.run(arrays)
        self.graph, self.static_out = graph, outs
        self.refs = self._refs()  # the outputs held by nothing else
        return self._launch(arrays)

    def _launch(self, arrays: tuple) -> tuple:
        caller = backend.cuda_runtime().get_current_stream()
        for a, s, f in zip(arrays, self.static_in, self.fixed):
            if not f and a is not s:
                s[...] = a  # on the caller's stream, before the graph
        self.stream.wait_event(caller.record())
        self.graph.launch(self.stream)
        self.launches += 1
        caller.wait_event(self.stream.record())
        return tuple(o.copy() if c else o for o, c in zip(self.static_out, self.copied))


def _generate(program: list, template: list, args: list, externals: list, outs: list,
              raw: bool = False, seen: list | None = None,
              module: Any = None) -> tuple:  # fmt: skip
    """The recording as one Python function of the call's flat arguments (their arrays when
    `raw`), `run(flat)`, which returns the arrays of fn's result tensors; and its source. Each
    slot is a local variable, deleted after its last use, so a replay holds no more memory than
    it needs; constants and the instructions' functions are the function's globals.

    Given `seen` (each outside tensor's array, then its requires_grad, then `module`'s
    `_edits`, as last found to fit: see `Trace.stale`), run first finds them so, or returns
    None having run nothing."""
    written = {0} | {s for s, _ in args} | {s for s, *_ in externals}
    for _, _, _, o in program:
        written.update(o if isinstance(o, tuple) else () if o is None else (o,))
    written.discard(None)  # an output a tuple instruction gives and nothing reads
    names: dict[str, Any] = {"errstate": backend.np.errstate}

    def name(slot: int) -> str:
        if slot in written:
            return f"s{slot}"
        names[f"c{slot}"] = template[slot]
        return f"c{slot}"

    returned = {v for is_tensor, v in outs if is_tensor}
    last = {}  # slot -> the last instruction that reads it
    for k, (_, _, ins, _) in enumerate(program):
        for i in ins:
            last[i] = k
    lines = ["def replay(flat):", "    s0 = set()"]
    lines += [f"    s{s} = flat[{i}]{'' if raw else '.data'}" for s, i in args]
    for s, t, *_ in externals:
        names[f"e{s}"] = t
        lines.append(f"    s{s} = e{s}.data")
    if seen is not None:
        names["seen"], names["module"] = seen, module
        n = len(externals)
        tests = [f"s{s} is not seen[{k}]" for k, (s, *_) in enumerate(externals)]
        tests += [f"e{s}.requires_grad is not seen[{n + k}]" for k, (s, *_) in enumerate(externals)]
        if module is not None:
            tests.append(f"module._edits != seen[{2 * n}]")
        if tests:
            lines += [f"    if {' or '.join(tests)}:", "        return None"]
    in_backward = False
    for k, (backward, fn, ins, o) in enumerate(program):
        if backward != in_backward:
            in_backward = backward
            if backward:  # as backward() runs derivatives: with NumPy's warnings off
                lines.append('    with errstate(all="ignore"):')
        pad = "        " if backward else "    "
        names[f"f{k}"] = fn
        call = f"f{k}({', '.join(name(i) for i in ins)})"
        if o is None:
            lines.append(pad + call)
        elif isinstance(o, tuple):
            lines.append(f"{pad}{', '.join('_' if i is None else f's{i}' for i in o)}, = {call}")
        else:
            lines.append(f"{pad}s{o} = {call}")
        made = (o,) if type(o) is int else [i for i in o or () if i is not None]
        gone = [i for i in (*ins, *made) if i in written and last.get(i, k) == k]
        gone = sorted({i for i in gone if i not in returned and i != 0})
        if gone:
            lines.append(f"{pad}del {', '.join(f's{i}' for i in gone)}")
    lines.append(f"    return ({''.join(name(v) + ', ' for is_tensor, v in outs if is_tensor)})")
    source = "\n".join(lines) + "\n"
    exec(builtins.compile(source, "<gt.compile replay>", "exec"), names)  # noqa: S102
    return source, names["replay"]
