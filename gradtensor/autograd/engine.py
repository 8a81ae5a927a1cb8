"""Reverse-mode autodiff: the nodes an op records, and the engine that walks them backwards.

A Node is what one op leaves on the tape: the function that knows its derivative, the tensors that
derivative needs (saved with their version, so an in-place change after saving is caught), and one
edge per input saying where that input's gradient goes (the input's own node, or a leaf to
accumulate into). `backward` orders the nodes with a dependency count (Kahn's algorithm: a node runs
once every consumer of its outputs has contributed), so there is no recursion and a 10,000-op
chain is as easy as a short one.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from .. import backend
from .. import tensor as _tensor_mod

_ndarray = backend.np.ndarray


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
            raise _modified_error(op, t.shape, self.version, t._version[0])
        return t


class SavedOutput:
    """An op's output, kept as its array and node rather than the Tensor object.

    Holding the Tensor itself would make a reference cycle (tensor -> node -> tensor) that only the
    garbage collector could break, so a training loop would hold every step's graph longer.
    """

    __slots__ = ("data", "box", "version", "node", "idx", "requires_grad")

    def __init__(self, t: Any):
        self.data, self.box, self.version = t.data, t._version, t._version[0]
        self.node, self.idx, self.requires_grad = t._node, t._idx, t.requires_grad

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def array(self, op: str) -> Any:
        """The saved array, after checking that nothing changed it in place since."""
        if self.box[0] != self.version:
            raise _modified_error(op, self.data.shape, self.version, self.box[0])
        return self.data

    def unpack(self, op: str) -> Any:
        self.array(op)
        t = _tensor_mod.Tensor._make(self.data, self.node, self.idx)
        t._version = self.box
        return t


def _modified_error(op: str, shape: tuple, saved: int, now: int) -> RuntimeError:
    return RuntimeError(
        f"{op}: a tensor of shape {tuple(shape)} that this op saved for backward was modified by "
        f"an in-place operation (its version went from {saved} to {now}); compute the gradient "
        "before changing it, or change a copy"
    )


_next_seq = itertools.count().__next__


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
        "__weakref__",
    )

    def __init__(self, fn: Any, inputs: tuple, output: Any, params: dict, next: tuple, n_out=1):
        self.fn = fn  # has .name and .backward(node, grads) -> tuple of input gradients
        self.inputs = inputs  # per positional input: a Tensor (saved), a Meta, or a constant
        self.versions = None  # for saved Tensor inputs: their versions when saved
        self.arrays = None  # for saved inputs: their arrays, which the derivative on arrays reads
        self.output = output  # SavedOutput or Meta (or a tuple of Metas for several outputs)
        self.params = params  # non-tensor arguments (axis, keepdims, ...), and aux residuals
        self.next = next  # per input: None, a leaf Tensor, or (Node, output index)
        self.n_out = n_out
        self.retained = None  # {output index: weakref to a tensor that called retain_grad()}
        self.seq = _next_seq()  # creation order, which backward runs in reverse

    @property
    def name(self) -> str:
        return self.fn.name

    def __repr__(self) -> str:
        return f"<{self.fn.name}Backward>"


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
    Tensor = _tensor_mod.Tensor
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

    def add(a: Any, b: Any) -> Any:
        if a is None:
            return b
        s = a + b
        if raw and type(s) is not _ndarray and not backend.is_cuda_array(s):
            s = backend.np.asarray(s)  # 0-d NumPy sums come back as scalars
        return s

    def deliver_leaf(leaf: Any, g: Any) -> None:
        if g.dtype != leaf.dtype:
            g = g.astype(leaf.dtype)
        if capture is not None:
            i = leaf_pos.get(id(leaf))
            if i is not None:
                capture[i] = add(capture[i], g)
            return
        if leaf.grad is None:
            if not raw:
                leaf.grad = g
                return
            leaf.grad = wrap(own(g))
        else:
            leaf.grad = leaf.grad + (wrap(g) if raw else g)

    def own(g: Any) -> Any:
        # A gradient handed out (`.grad`, grad()'s results) must own its memory: one array can
        # reach several leaves (x + y hands the same array to both), be the caller's own
        # gradient passed through, or be a read-only broadcast view, and an in-place change to
        # one must not show up anywhere else. A fresh, writable array seen for the first time is
        # kept as it is; anything else is copied.
        key = id(g)
        if g.base is not None or key in handed_out or not _writable(g):
            return g.copy()
        handed_out.add(key)
        return g

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
    push, pop = heapq.heappush, heapq.heappop
    # A derivative may meet inf * 0 or 0 / 0 by design and then select the right value (as
    # PyTorch's do, silently): NumPy's floating-point warnings are meant for the user's code.
    # CuPy works on the current GPU: a graph on another one runs with that one current.
    gpu = next((t.data for t in tensors if backend.is_cuda_array(t.data)), None)
    try:
        with backend.np.errstate(all="ignore"), nullcontext() if gpu is None else gpu.device:
            while heap:
                node = pop(heap)[1]
                gouts = pending.pop(node)
                if capture is not None or node.retained:
                    _deliver_retained(node, gouts, capture, out_pos, create_graph)
                if useful is not None and node not in useful:
                    continue
                if node.inputs is None:
                    raise RuntimeError(
                        f"{node.fn.name}: trying to backward through the graph a second time, but "
                        "its saved tensors were already freed; pass retain_graph=True to the "
                        "first backward() if you need to go through it again"
                    )
                grads = node.fn.backward(node, gouts, raw)
                if not retain_graph:
                    # Drop what was saved, so its memory goes as soon as the node has run.
                    node.inputs = node.output = node.params = node.versions = node.arrays = None
                    if type(node.fn) is _FunctionBackward:
                        node.fn.release()
                for e, g in zip(node.next, grads):
                    if e is None or g is None:
                        continue
                    if type(e) is tuple:
                        child, idx = e
                        slot = pending.get(child)
                        if slot is None:
                            slot = pending[child] = [None] * child.n_out
                            push(heap, (-child.seq, child))
                        slot[idx] = g if slot[idx] is None else add(slot[idx], g)
                    else:
                        deliver_leaf(e, g)
    finally:
        grad_mode.enabled = prev_mode
    if capture is not None and raw:
        capture = [None if c is None else wrap(own(c)) for c in capture]
    return capture


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
                g = g if create else _tensor_mod.Tensor._make(g.copy())  # raw: g is an array
                t.grad = g if t.grad is None else t.grad + g


def _writable(arr: Any) -> bool:
    flags = arr.flags
    return getattr(flags, "writeable", True)  # CuPy arrays are always writable


def check_grad_shape(op: str, i: int, g: Any, shape: tuple) -> None:
    """Each gradient must have its input's shape: a wrong one is a bug in the op's derivative."""
    if g.shape != tuple(shape):
        raise RuntimeError(
            f"{op}: the derivative returned a gradient of shape {g.shape} for input {i}, "
            f"which has shape {tuple(shape)}"
        )


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
    if isinstance(ts, _tensor_mod.Tensor):
        return [ts]
    if isinstance(ts, (list, tuple)) and all(isinstance(t, _tensor_mod.Tensor) for t in ts):
        return list(ts)
    raise TypeError(f"grad: {what} must be a Tensor or a sequence of Tensors, got {ts!r:.80}")


def _root_grads(op: str, outputs: list, grad_outputs: Any) -> list:
    Tensor = _tensor_mod.Tensor
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
            if t.size != 1:
                keyword = "gradient" if op == "backward" else "grad_outputs"
                raise RuntimeError(
                    f"{op}: the gradient can be implied only for a scalar output, but output {i} "
                    f"has shape {t.shape}; pass `{keyword}=` with that shape"
                )
            g = _tensor_mod.ones_like(t)
        else:
            if not isinstance(g, Tensor):
                try:
                    g = _tensor_mod.tensor(g, dtype=t.dtype, device=t.device)
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
        Tensor = _tensor_mod.Tensor
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
        Tensor = _tensor_mod.Tensor
        metas = node.output
        gs = [
            _tensor_mod.zeros(m.shape, dtype=m.dtype, device=m.device)
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
                    g = _tensor_mod.tensor(g, dtype=x.dtype, device=x.device)
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
        Tensor = _tensor_mod.Tensor
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
