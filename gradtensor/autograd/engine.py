"""The reverse-mode engine: backward() and grad() walk the tape (autograd.graph) backwards.

Nodes run in reverse creation order, so there is no recursion and a 10,000-op chain is as easy as
a short one; custom `Function`s record themselves as nodes too.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from .. import backend
from ..tensor import Tensor, ones_like, tensor, zeros
from .graph import (
    RECORDING,
    Meta,
    Node,
    SavedInput,
    check_grad_shape,
    grad_mode,
    no_grad,
    recorder,
)

_ndarray = backend.np.ndarray
_np_ones_like = backend.np.ones_like


# ----------------------------------------------------------------------------------------------
# The engine.


def backward(
    tensors: Sequence[Any],
    grad_tensors: Sequence[Any],
    retain_graph: bool = False,
    create_graph: bool = False,
    inputs: Sequence[Any] | None = None,
) -> list[Any] | None:
    """Propagate `grad_tensors` back from `tensors`.

    Without `inputs`, gradients accumulate into the `.grad` of the leaves reached. With `inputs`,
    nothing is accumulated: the gradient of each input is returned (None where none arrived).
    """
    capture = None if inputs is None else [None] * len(inputs)
    leaf_pos: dict[int, int] = {}
    out_pos: dict[tuple[Node, int], int] = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            if t._node is None:
                leaf_pos[id(t)] = i
            else:
                out_pos[(t._node, t._idx)] = i

    # Without create_graph nothing is recorded, so gradients travel between nodes as plain
    # arrays and become Tensors only where someone sees them (.grad, grad()'s results).
    raw = not create_graph
    wrap = Tensor._make
    # Tensor hooks (below), looked for only while some exist: a hooked leaf's gradient
    # is held until the walk ends, so that its hooks see the whole of it once.
    nhooks = node_hooks if node_hooks else None
    held: dict | None = {} if leaf_hooks else None
    # gt.compile recording this backward: each derivative rule, sum and delivery is reported.
    rec = recorder() if RECORDING else None
    if rec is not None and (create_graph or capture is not None or nhooks or held is not None):
        rec.unsupported("backward with create_graph, inputs=, autograd.grad or tensor hooks")

    def add(a: Any, b: Any) -> Any:
        if a is None:
            return b
        if rec is not None:
            return rec.add(a, b)  # adds them as a replay will
        return add_arrays(a, b) if raw else a + b

    def deliver_leaf(leaf: Any, g: Any, hooked: bool = False) -> None:
        if rec is not None:
            rec.deliver(leaf, g)  # delivers it as a replay will
            return
        if g.dtype != leaf.dtype:
            with _device(g):
                g = g.astype(leaf.dtype)
        if held is not None and not hooked and hooks_of_leaf(leaf) is not None:
            if capture is None or id(leaf) in leaf_pos:
                prev = held.get(id(leaf))
                held[id(leaf)] = (leaf, g if prev is None else add(prev[1], g))
            return
        if capture is not None:
            i = leaf_pos.get(id(leaf))
            if i is not None:
                capture[i] = add(capture[i], g)
            return
        if raw:
            accumulate(leaf, g, handed_out)
        else:
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    def own(g: Any) -> Any:
        return owned(g, handed_out)

    # Nodes run in reverse creation order. Creation order is a topological order (an op is
    # recorded after its inputs), so when a node is popped, every node that consumes its outputs
    # and is reachable has already run and added its share: a priority queue replaces a separate
    # dependency-counting pass over the graph.
    handed_out = {id(g.data) for g in grad_tensors}  # the caller's arrays are never adopted
    pending: dict[Node, list] = {}
    heap: list[tuple[int, Node]] = []
    for t, g in zip(tensors, grad_tensors):
        if raw:
            g = g.data
        if t._node is None:
            deliver_leaf(t, g)
            continue
        node = t._node
        slot = pending.get(node)
        if slot is None:
            slot = pending[node] = [None] * node.n_out
            heapq.heappush(heap, (-node.seq, node))
        slot[t._idx] = add(slot[t._idx], g)

    # With `inputs`, only the part of the graph that leads to them needs to run.
    useful = None if capture is None else _leading_to(list(pending), leaf_pos, out_pos)

    prev_mode = grad_mode.enabled
    grad_mode.enabled = create_graph  # the derivative formulas record only for higher-order grads
    # Hooks may queue callbacks for the end of this backward (queue_callback); post-accumulate
    # hooks fire as soon as their leaf's gradient is whole (_Ready).
    ready = _Ready(list(pending), rec) if post_hooks and capture is None else None
    outer_queue = callbacks_begin()
    if rec is not None:
        rec.backward_begins()
    push, pop = heapq.heappush, heapq.heappop
    # A derivative may meet inf * 0 or 0 / 0 by design and then select the right value (as
    # PyTorch's do, silently): NumPy's floating-point warnings are meant for the user's code.
    try:
        with backend.np.errstate(all="ignore"):
            node = None  # the node to run next when it is known without the heap (a chain)
            while node is not None or heap:
                if node is None:
                    node = pop(heap)[1]
                gouts = pending.pop(node)
                if nhooks is not None and node in nhooks:
                    for idx, hooks in nhooks[node].items():
                        if gouts[idx] is not None:
                            gouts[idx] = run_hooks(hooks, gouts[idx], raw)
                if capture is not None or node.retained:
                    _deliver_retained(node, gouts, capture, out_pos, create_graph)
                if useful is not None and node not in useful:
                    node = None
                    continue
                if node.inputs is None:
                    raise RuntimeError(
                        f"{node.fn.name}: trying to backward through the graph a second time, but "
                        "its saved tensors were already freed; pass retain_graph=True to the "
                        "first backward() if you need to go through it again"
                    )
                g0 = gouts[0] if gouts[0] is not None else next(g for g in gouts if g is not None)
                if not raw or type(g0) is _ndarray:
                    grads = node.fn.backward(node, gouts, raw)  # Tensor ops keep their devices
                else:
                    with _device(g0):  # a derivative's array maths runs on the node's GPU
                        grads = node.fn.backward(node, gouts, raw)
                if rec is not None:
                    rec.backward(node, gouts, grads)
                if not retain_graph:
                    # Drop what was saved, so its memory goes as soon as the node has run.
                    node.inputs = node.output = node.params = node.versions = node.arrays = None
                    if type(node.fn) is _FunctionBackward:
                        node.fn.release()
                # A node whose single new pending child is the only pending node runs that child
                # next without going through the heap: a chain's common case.
                follow = None
                for e, g in zip(node.next, grads):
                    if e is None or g is None:
                        continue
                    if type(e) is tuple:
                        child, idx = e
                        slot = pending.get(child)
                        if slot is None:
                            slot = pending[child] = [None] * child.n_out
                            if follow is None and not heap:
                                follow = child
                            else:
                                push(heap, (-child.seq, child))
                        slot[idx] = g if slot[idx] is None else add(slot[idx], g)
                    else:
                        deliver_leaf(e, g)
                if ready is not None:
                    ready.after(node.seq)
                if follow is not None and heap:
                    push(heap, (-follow.seq, follow))  # others are pending: the heap orders them
                    follow = None
                node = follow
            for leaf, g in held.values() if held else ():
                deliver_leaf(leaf, run_hooks(hooks_of_leaf(leaf) or {}, g, raw), True)
            if ready is not None:
                ready.finish()
    finally:
        grad_mode.enabled = prev_mode
        queue = _callbacks_restore(outer_queue)
    if rec is not None:
        rec.backward_ends(queue)  # runs them as a replay will
    else:
        for fn in queue:
            fn()
    if capture is not None and raw:
        capture = [None if c is None else wrap(own(c)) for c in capture]
    return capture


def owned(g: Any, handed: set, copy: bool = False) -> Any:
    """g, or a copy of it: a gradient handed out (`.grad`, grad()'s results) must own its memory.

    One array can reach several leaves (x + y hands the same array to both), be the caller's
    own gradient passed through (`copy`), or be a read-only broadcast view, and an in-place
    change to one must not show up anywhere else. A fresh, writable array not yet handed out
    (its id not in `handed`) is kept as it is; anything else is copied."""
    if copy or g.base is not None or id(g) in handed or not writable(g):
        with _device(g):  # CuPy copies to the current GPU: keep it on the gradient's
            return g.copy()
    handed.add(id(g))
    return g


def accumulate(leaf: Tensor, g: Any, handed: set, copy: bool = False) -> None:
    """An array gradient (in the leaf's dtype) into leaf.grad: adopted (see `owned`) where there
    is none yet, else added to it."""
    if leaf._grad is None:
        leaf.grad = Tensor._make(owned(g, handed, copy))
    else:
        leaf.grad = leaf._grad + Tensor._make(g)


def add_arrays(a: Any, b: Any) -> Any:
    """Two gradients (arrays) summed, as backward sums them where paths meet."""
    if type(a) is not _ndarray:
        with _device(a):  # CuPy works on the current GPU: the gradients'
            return a + b
    s = a + b
    return s if type(s) is _ndarray else backend.np.asarray(s)  # 0-d sums come back as scalars


def _device(a: Any) -> Any:
    """A context with `a`'s GPU current (CuPy works on the current one); none for host arrays."""
    return a.device if backend.is_cuda_array(a) else nullcontext()


def _leading_to(roots: list, leaf_pos: dict, out_pos: dict) -> set:
    """The nodes whose derivative must run: an edge leads to a wanted input (iterative post-order).

    A node that made a wanted input is not itself run unless more inputs lie beyond it.
    """
    wanted_nodes = {n for n, _ in out_pos}
    useful: set = set()
    done: set = set()
    stack = [(n, False) for n in roots]
    while stack:
        n, expanded = stack.pop()
        if n in done:
            continue
        if not expanded:
            stack.append((n, True))
            stack.extend((e[0], False) for e in n.next if type(e) is tuple and e[0] not in done)
            continue
        done.add(n)
        if any(
            (e[0] in useful or e[0] in wanted_nodes)
            if type(e) is tuple
            else (e is not None and id(e) in leaf_pos)
            for e in n.next
        ):
            useful.add(n)
    return useful


def _deliver_retained(node: Node, gouts: list, capture: Any, out_pos: dict, create: bool) -> None:
    if capture is not None:
        for idx, g in enumerate(gouts):
            i = out_pos.get((node, idx))
            if i is not None and g is not None:
                capture[i] = g
        return
    if node.retained:
        for idx, ref in node.retained.items():
            t, g = ref(), gouts[idx]
            if t is not None and g is not None:
                g = g if create else Tensor._make(g.copy())  # raw: g is an array
                t.grad = g if t.grad is None else t.grad + g


def writable(arr: Any) -> bool:
    """Whether an array may be written (a read-only NumPy view may not)."""
    flags = arr.flags
    return getattr(flags, "writeable", True)  # CuPy arrays are always writable


# ----------------------------------------------------------------------------------------------
# Tensor hooks: functions backward calls with a tensor's gradient, which may replace it. They are
# kept with the node and output index (a non-leaf) or by the leaf, away from the Tensor and Node
# objects, so a graph without hooks pays nothing: backward looks here only while some exist.

_ids = itertools.count()


class RemovableHandle:
    """What register_hook and the module hooks return: `handle.remove()` takes the hook out
    again; as a context manager it does so on exit."""

    def __init__(self, hooks: dict):
        self.hooks_dict, self.id = hooks, next(_ids)

    def remove(self) -> None:
        self.hooks_dict.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


# Non-leaves: node -> {output index: {handle id: hook}}; nodes are weakly held with their graph.
node_hooks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Leaves by id (a Tensor cannot key a WeakKeyDictionary: its == is elementwise), with a weak
# reference that drops the entry when the tensor goes.
leaf_hooks: dict[int, tuple[weakref.ref, dict]] = {}


def register_hook(t: Tensor, fn: Callable) -> RemovableHandle:
    """Call fn(grad) whenever backward computes t's gradient; a Tensor it returns replaces the
    gradient (for t's .grad and for everything t was computed from)."""
    if not callable(fn):
        raise TypeError(f"register_hook: the hook must be callable, not a {type(fn).__name__}")
    if not t.requires_grad:
        raise RuntimeError(
            "register_hook: cannot register a hook on a tensor that does not require grad"
        )
    if t._node is not None:
        hooks = node_hooks.setdefault(t._node, {}).setdefault(t._idx, {})
    else:
        key = id(t)
        entry = leaf_hooks.get(key)
        if entry is None or entry[0]() is not t:

            def drop(ref: weakref.ref, key: int = key) -> None:
                if leaf_hooks.get(key, (None,))[0] is ref:
                    del leaf_hooks[key]

            entry = leaf_hooks[key] = (weakref.ref(t, drop), {})
        hooks = entry[1]
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle


def hooks_of_leaf(t: Tensor) -> dict | None:
    entry = leaf_hooks.get(id(t))
    return entry[1] if entry is not None and entry[0]() is t and entry[1] else None


def run_hooks(hooks: dict, g: Any, raw: bool) -> Any:
    """g after each hook in turn (g an array when `raw`, else a Tensor)."""
    for fn in list(hooks.values()):
        out = fn(Tensor._make(g) if raw else g)
        if out is not None:
            if not isinstance(out, Tensor):
                raise TypeError(
                    f"register_hook: a hook returned a {type(out).__name__}; return a Tensor "
                    "(the new gradient) or None"
                )
            if out.shape != g.shape:
                raise RuntimeError(
                    f"register_hook: a hook returned a gradient of shape {out.shape} for a "
                    f"gradient of shape {g.shape}"
                )
            g = out.data if raw else out
    return g


# ----------------------------------------------------------------------------------------------
# Post-accumulate-grad hooks (PyTorch's name): fn(leaf), once per backward, as soon as the leaf's
# .grad holds the whole of this backward's gradient, while the walk goes on; and callbacks queued
# for the end of a backward. DistributedDataParallel starts averaging gradients from the first,
# so that communication overlaps the rest of backward, and waits for it in the second.

post_hooks: dict[int, tuple[weakref.ref, dict]] = {}
_final = threading.local()  # .queue: the callbacks of the backward running in this thread


def register_post_accumulate_grad_hook(t: Tensor, fn: Callable) -> RemovableHandle:
    """Call fn(t) once per backward, as soon as t.grad holds all of that backward's gradient
    (t a leaf that requires grad); not for autograd.grad, which accumulates nothing."""
    if not callable(fn):
        raise TypeError(
            "register_post_accumulate_grad_hook: the hook must be callable, not a "
            f"{type(fn).__name__}"
        )
    if t._node is not None or not t.requires_grad:
        raise RuntimeError(
            "register_post_accumulate_grad_hook: only a leaf tensor that requires grad has its "
            "gradient accumulated into .grad"
        )
    key = id(t)
    entry = post_hooks.get(key)
    if entry is None or entry[0]() is not t:

        def drop(ref: weakref.ref, key: int = key) -> None:
            if post_hooks.get(key, (None,))[0] is ref:
                del post_hooks[key]

        entry = post_hooks[key] = (weakref.ref(t, drop), {})
    handle = RemovableHandle(entry[1])
    entry[1][handle.id] = fn
    return handle


def callbacks_begin() -> Any:
    """A backward starts its queue of end-of-backward callbacks; returns the one it hides."""
    outer = getattr(_final, "queue", None)
    _final.queue = []
    return outer


def _callbacks_restore(outer: Any) -> list:
    """The ending backward's queued callbacks; the queue it hid is back."""
    queue, _final.queue = _final.queue, outer
    return queue


def callbacks_end(outer: Any) -> None:
    """A backward ends: its queued callbacks run, and the queue it hid is back."""
    for fn in _callbacks_restore(outer):
        fn()


def queue_callback(fn: Callable[[], Any]) -> None:
    """Run fn() once the backward in progress has finished (called from a hook during backward,
    like PyTorch's `Variable._execution_engine.queue_callback`)."""
    queue = getattr(_final, "queue", None)
    if queue is None:
        raise RuntimeError(
            "queue_callback: no backward is in progress; call it from a hook during backward"
        )
    queue.append(fn)


class _Ready:
    """Fires the post-accumulate hooks of one backward, each as soon as its leaf is complete.

    Nodes run in reverse creation order and every node feeding a leaf was created after it, so
    once the node numbered `seq` has run, no node numbered `seq` or more runs again: a leaf is
    complete after the lowest-numbered node that feeds it. One walk of the graph finds that node.
    """

    def __init__(self, roots: list, rec: Any):
        self.rec = rec  # gt.compile recording: each hook call is replayed as a call
        last: dict[int, list] = {}
        seen, stack = set(roots), list(roots)
        while stack:
            node = stack.pop()
            for e in node.next:
                if type(e) is tuple:
                    if e[0] not in seen:
                        seen.add(e[0])
                        stack.append(e[0])
                elif e is not None and id(e) in post_hooks:
                    item = last.get(id(e))
                    if item is None:
                        entry = post_hooks[id(e)]
                        if entry[0]() is e and entry[1]:
                            # The .grad before: a leaf whose .grad is still it got nothing.
                            last[id(e)] = [node.seq, e, e.grad, entry[1]]
                    elif node.seq < item[0]:
                        item[0] = node.seq
        self.order = sorted(last.values(), key=lambda item: -item[0])
        self.pos, self.deferred = 0, []

    def after(self, seq: int) -> None:
        order = self.order
        while self.pos < len(order) and order[self.pos][0] >= seq:
            item = order[self.pos]
            self.pos += 1
            if hooks_of_leaf(item[1]) is not None:
                self.deferred.append(item)  # its tensor hooks hold its gradient to the end
            else:
                self.fire(item)

    def finish(self) -> None:
        for item in self.deferred + self.order[self.pos :]:
            self.fire(item)
        self.pos, self.deferred = len(self.order), []

    def fire(self, item: list) -> None:
        _, leaf, before, hooks = item
        if leaf.grad is not before:
            for fn in list(hooks.values()):
                if self.rec is None:
                    fn(leaf)
                else:
                    self.rec.call(fn, leaf)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple:
    """Gradients of `outputs` with respect to `inputs`, returned instead of accumulated.

    >>> x = gt.tensor(3.0, requires_grad=True); gt.grad(x * x, x)
    (tensor(6., dtype=float32),)
    """
    outputs = _tensors("outputs", outputs)
    inputs = _tensors("inputs", inputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} is not a tensor that requires grad")
    grads = _root_grads("grad", outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    result = backward(outputs, grads, retain_graph, create_graph, inputs=inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {inputs[i].shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            result[i] = g.detach()
    return tuple(result)


def _tensors(what: str, ts: Any) -> list:
    """grad()'s outputs or inputs: a Tensor or a sequence of Tensors."""
    if isinstance(ts, Tensor):
        return [ts]
    if isinstance(ts, (list, tuple)) and all(isinstance(t, Tensor) for t in ts):
        return list(ts)
    raise TypeError(f"grad: {what} must be a Tensor or a sequence of Tensors, got {ts!r:.80}")


def _root_grads(op: str, outputs: list, grad_outputs: Any) -> list:
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"{op}: got {len(outputs)} outputs but {len(grad_outputs)} gradients")
    result = []
    for i, (t, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: output {i} is a {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(
                f"{op}: output {i} does not require grad and has no grad_fn (nothing recorded "
                "it; was it computed under no_grad, or from tensors without requires_grad=True?)"
            )
        if g is None:
            if t.numel() != 1:
                keyword = "gradient" if op == "backward" else "grad_outputs"
                raise RuntimeError(
                    f"{op}: the gradient can be implied only for a scalar output, but output {i} "
                    f"has shape {t.shape}; pass `{keyword}=` with that shape"
                )
            d = t.data
            # A host output's seed made directly: ones_like's argument handling costs more.
            g = Tensor._make(_np_ones_like(d)) if type(d) is _ndarray else ones_like(t)
        else:
            if not isinstance(g, Tensor):
                try:
                    g = tensor(g, dtype=t.dtype, device=t.device)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"{op}: the gradient given for output {i} must be a tensor or array of "
                        f"numbers, not a {type(g).__name__}"
                    ) from exc
            if g.shape != t.shape:
                raise ValueError(
                    f"{op}: gradient of shape {g.shape} given for output {i} of shape {t.shape}"
                )
            if g.device != t.device:
                raise RuntimeError(
                    f"{op}: gradient on {g.device} given for output {i} on {t.device}"
                )
            if g.dtype != t.dtype:
                g = g.astype(t.dtype)  # as PyTorch: cast to the output's dtype
        result.append(g)
    return result


# ----------------------------------------------------------------------------------------------
# User-defined ops.


class _Context:
    """`ctx` of a custom Function: what forward leaves for backward."""

    def __init__(self) -> None:
        self._saved: tuple = ()
        self.needs_input_grad: tuple[bool, ...] = ()
        self._name = "Function"

    def save_for_backward(self, *tensors: Any) -> None:
        self._saved = tuple(SavedInput(t) if isinstance(t, Tensor) else t for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            raise RuntimeError(
                f"{self._name}: saved tensors were freed by an earlier backward(); pass "
                "retain_graph=True to go through the graph again"
            )
        return tuple(s.unpack(self._name) if isinstance(s, SavedInput) else s for s in self._saved)


class _FunctionBackward:
    def __init__(self, cls: type, ctx: _Context, n_in: int):
        self.cls, self.ctx, self.n_in = cls, ctx, n_in
        self.name = cls.__name__

    def backward(self, node: Node, gouts: list, raw: bool) -> list:
        """A user's backward takes and returns Tensors, also in a plain backward (`raw`)."""
        metas = node.output
        gs = [
            zeros(m.shape, dtype=m.dtype, device=m.device)
            if g is None
            else Tensor._make(g)
            if raw
            else g
            for g, m in zip(gouts, metas)
        ]
        grads = self.cls.backward(self.ctx, *gs)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != self.n_in:
            raise RuntimeError(
                f"{self.name}.backward returned {len(grads)} gradients; forward took {self.n_in} "
                "inputs (return None for inputs that need no gradient)"
            )
        out = []
        for i, (g, x) in enumerate(zip(grads, node.inputs)):
            if g is not None and node.next[i] is not None:
                if not isinstance(g, Tensor):
                    g = tensor(g, dtype=x.dtype, device=x.device)
                check_grad_shape(self.name, i, g, x.shape)
            out.append(g.data if raw and g is not None else g)
        return out

    def release(self) -> None:
        self.ctx._saved = None


class Function:
    """A custom differentiable op.

    >>> class Cube(gt.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x * x * g
    >>> Cube.apply(gt.tensor(2.0, requires_grad=True))
    """

    @staticmethod
    def forward(ctx: _Context, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: _Context, *grads: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Any:
        ctx = _Context()
        ctx._name = cls.__name__
        record = grad_mode.enabled and any(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            out = cls.forward(ctx, *args)
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        for o in outs:
            if not isinstance(o, Tensor):
                raise TypeError(
                    f"{cls.__name__}.forward must return Tensors, got {type(o).__name__}"
                )
        # Fresh Tensor objects: forward may hand back an input unchanged, and that input must not
        # be re-attached to this node.
        outs = tuple(Tensor._make(o.data) for o in outs)
        if record:
            fn = _FunctionBackward(cls, ctx, len(args))
            nxt = tuple(
                _edge(a) if isinstance(a, Tensor) and a.requires_grad else None for a in args
            )
            metas = tuple(Meta.of(o) for o in outs)
            ins = tuple(Meta.of(a) if isinstance(a, Tensor) else None for a in args)
            node = Node(fn, ins, metas, {}, nxt, n_out=len(outs))
            for i, o in enumerate(outs):
                o._node, o._idx, o.requires_grad = node, i, True
        return outs[0] if single else outs


def _edge(t: Any) -> Any:
    """Where the gradient of tensor `t` must go: its node and output index, or the leaf itself."""
    return t if t._node is None else (t._node, t._idx)
