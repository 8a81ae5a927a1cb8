"""Optimizer: parameter groups, per-parameter state, zero_grad and state_dict.

Subclasses write `_prepare` (per parameter: make its state, count the step, pick the arrays and
the scalars of this step) and `_apply` (the update itself, elementwise on those arrays, with array
ops), and name in `_kernel` the `gradtensor.kernels` update that does the same in one pass: it is
called with lists of the arrays (every parameter that shares the step's scalars, dtype and
device) and the scalars as keywords.

Updates run on the parameters' arrays in place, never through the tape: the parameters keep their
identity and no graph grows. A fused kernel (Numba on the CPU; on a GPU, one Numba-CUDA launch
for a list of parameters) reads and writes each element once, where the array ops take four to
eleven passes; for float16, or with `gt.use_kernels(False)`, the array ops run with `out=` on
scratch buffers made once per parameter, so a step allocates nothing after the first either
way. Each updated parameter's version goes up, so a graph that saved its old values refuses to
backpropagate through them.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import backend
from ..autograd import enable_grad
from ..autograd.graph import RECORDING, recorder
from ..ops.registry import active_kernels
from ..tensor import Tensor

_ndarray = np.ndarray


class _Required:
    def __repr__(self) -> str:
        return "<required>"


required = _Required()  # a default that every parameter group must provide itself (SGD's lr)


class Optimizer:
    """Base class: `opt.zero_grad(); loss.backward(); opt.step()`.

    `params` is an iterable of tensors, or of dicts (parameter groups) such as
    `[{"params": body.parameters()}, {"params": head.parameters(), "lr": 1e-4}]`, where keys a
    group leaves out take the optimizer's defaults.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict[Tensor, list[Any]] = {}
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of tensors "
                "(e.g. model.parameters()), not a single tensor"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __getstate__(self) -> dict[str, Any]:
        # A copy or a pickle plans its own steps: the plan held here is of these very arrays.
        state = self.__dict__.copy()
        state.pop("_eager", None)
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])

    def _check_hyper(self, group: dict[str, Any]) -> None:
        """Validate one group's hyperparameters (subclasses say what is allowed)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add parameters with their own hyperparameters: `opt.add_param_group({"params": ps,
        "lr": 1e-4})` (e.g. when unfreezing layers during training)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{name}: a parameter group must be a dict, not {type(param_group).__name__}"
            )
        group = dict(param_group)
        if "params" not in group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                f"{name}: parameters must be given in an ordered collection; a set's "
                "order changes between runs"
            )
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: can only optimize Tensors, but parameter {i} is a {type(p).__name__}"
                )
            if p._node is not None:
                raise ValueError(
                    f"{name}: cannot optimize a non-leaf tensor (parameter {i}, "
                    f"shape {p.shape}); optimize the leaves it was computed from"
                )
            if p.dtype.kind != "f":
                raise TypeError(
                    f"{name}: parameter {i} is {p.dtype}; only floating-point "
                    "tensors can be optimized"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group contains the same tensor twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(
                    f"{name}: parameter group didn't specify a value of required "
                    f"hyperparameter {key!r}"
                )
            group.setdefault(key, default)
        group["params"] = params
        for key, value in group.items():
            if key != "params" and not _is_hyper_value(value):
                raise TypeError(f"{name}: {key} must be a number, got {value!r}")
        self._check_hyper(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient before the next backward()."""
        if RECORDING and (rec := recorder()) is not None:
            return rec.call(self.zero_grad, set_to_none)  # gt.compile: replayed as a call
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p._grad is None:
                    p._grad = None  # not through the setter: a recording returned above
                elif p.grad._node is not None:
                    p.grad = Tensor._make(backend.array_module(p.data).zeros_like(p.grad.data))
                else:
                    p.grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns closure() when one is given."""
        if RECORDING and (rec := recorder()) is not None:
            if closure is not None:
                rec.unsupported(f"{type(self).__name__}.step(closure)")
            return rec.call(self.step, replay=self._replay_step, graphed=self._graphed_step)
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._check_grads()  # before any state changes: a bad gradient updates nothing
        self._update(self._jobs(True))
        return loss

    def _replay_step(self) -> Callable[[], None]:
        """The step as gt.compile replays it, after a recorded step: the same updates, with the
        checks that the recording made (gradients, devices) not made again, and the kernel
        calls planned as an eager step plans them (`_update`)."""
        return lambda: self._update(self._jobs(False))

    def _graphed_step(self) -> tuple | None:
        """The step as a CUDA graph of gt.compile replays it, after a recorded step: (prepare,
        update, the parameters updated), or None where it cannot be (a subclass without
        `_step_scalars` beside its `_apply`, a parameter that is not a float32 or float64 GPU
        array).

        prepare() does the host's part before the graph runs: state and step counts, and the
        step's scalars written into GPU memory, where the graph's update reads them; it returns
        the update's plan (`_GraphedUpdate`), a new one (and so a new capture) when anything but
        the scalars that may change between steps (`_varying`: the learning rate, Adam's bias
        corrections) changed. update(plan, *grads) is the GPU's part: the kernels' launches
        and the array ops, reading those scalars."""
        owner = next(c for c in type(self).__mro__ if "_apply" in c.__dict__)
        if "_step_scalars" not in owner.__dict__:  # an `_apply` that takes no GPU scalars
            return None
        todo = [(p, g) for g in self.param_groups for p in g["params"] if p._grad is not None]
        if not todo or any(type(p.data) is np.ndarray or p.dtype.char not in "fd"
                           for p, _ in todo):  # fmt: skip
            return None
        held: list = [None]

        def prepare() -> _GraphedUpdate:
            rows = []
            for p, group in todo:
                state = self.state.setdefault(p, {})
                with backend.on(p.device):
                    rows.append(self._prepare(p, group, state))
                p._changed()
            plan = held[0]
            if plan is None or not plan.fits(rows):
                plan = held[0] = _GraphedUpdate(self, [p for p, _ in todo], rows)
            plan.write(rows)
            return plan

        def update(plan: _GraphedUpdate, *grads: Any) -> None:
            plan.run(grads)

        return prepare, update, [p for p, _ in todo]

    def _jobs(self, follow: bool) -> list[tuple[Tensor, list[Any], dict[str, Any]]]:
        """(parameter, its arrays, this step's scalars) for each parameter with a gradient,
        its state made or counted (`_prepare`); `follow`: move state to a moved parameter."""
        jobs = []
        states, prepare = self.state, self._prepare
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is None:
                    continue
                state = states.get(p)
                if state is None:
                    state = states[p] = {}
                elif follow and state:
                    _follow_device(p, state)
                if type(p.data) is _ndarray:
                    arrays, h = prepare(p, group, state)
                else:
                    with backend.on(p.device):  # new state goes on the parameter's GPU
                        arrays, h = prepare(p, group, state)
                jobs.append((p, arrays, h))
                p._changed()
        return jobs

    def _batches(self, jobs: list, entry: str = "") -> tuple[Any, dict, list[int]]:
        """(the kernel update or None, the places in jobs of the parameters that share a kernel
        call (same scalars, kind of array, dtype, device and state in use) by what they share,
        the places of the rest, which take the array ops). `entry`: the kernels' function that
        runs the update, when not `_kernel` itself (a CUDA graph's `launch_update`)."""
        # None for an optimizer without a one-pass update (a user's subclass, say) or kernels off.
        kernels = active_kernels()
        kernel = getattr(kernels, entry or self._kernel, None) if self._kernel else None
        batches: dict[tuple[Any, ...], list[int]] = {}
        rest = []
        for i, (p, arrays, h) in enumerate(jobs):
            kind = kernel is not None and kernels.update_accepts(arrays) and _kind(p, arrays)
            if kind:
                batches.setdefault((kind, *h.values()), []).append(i)
            else:
                rest.append(i)
        return kernel, batches, rest

    _eager: tuple | None = None  # (kernels in use, arrays planned for, the plan's run)

    def _update(self, jobs: list) -> None:
        """The jobs' updates: a kernel call per batch (on a GPU one launch for several
        tensors), the array ops for the rest.

        The step before's plan (`_plan`) serves again while the kernels in use are the same and
        the parameters and their state are the same arrays, which it checked, and each gradient
        is as readable as when it was made; else this step batches and checks anew, and plans
        the next."""
        kernels = active_kernels()
        held = self._eager
        if held is not None and held[0] is kernels and _unchanged(held[1], jobs) and held[2](jobs):
            return
        self._eager = None
        kernel, batches, rest = self._batches(jobs)
        for key, places in batches.items():
            used = [c for c, unused in enumerate(key[0][3:]) if not unused]
            columns = _columns(jobs, places, len(key[0]) - 3, used)
            with backend.on(key[0][2] or backend.CPU):  # CuPy works on the parameters' GPU
                kernel(*columns, **jobs[places[0]][2])
        self._apply_rest(jobs, rest)
        self._eager = (kernels, _planned(jobs), self._plan(jobs))

    def _plan(self, jobs: list) -> Callable[[list], bool]:
        """run(jobs): `_update` for jobs with these parameters and state arrays (`_planned`),
        each batch's kernel call with its checks made now. A run given jobs whose batches no
        longer share their scalars (a scheduler changed one group's) updates nothing and
        returns False."""
        _, batches, rest = self._batches(jobs)
        kernels = active_kernels()
        calls = []  # (device, its parameters' places in jobs, the call)
        for key, places in batches.items():
            device, used = key[0][2], [c for c, unused in enumerate(key[0][3:]) if not unused]
            columns = _columns(jobs, places, len(key[0]) - 3, used)
            with backend.on(device or backend.CPU):
                call = kernels.plan_update(self._kernel, *columns, **jobs[places[0]][2])
            calls.append((device, places, call))
        shared = [places for _, places, _ in calls if len(places) > 1]

        def run(jobs: list) -> bool:
            for first, *others in shared:
                h = jobs[first][2]
                for i in others:
                    if jobs[i][2] != h:
                        return False
            for device, places, call in calls:
                grads = [jobs[i][1][1] for i in places]
                if device is None:
                    call(grads, jobs[places[0]][2])
                else:
                    with backend.on(device):
                        call(grads, jobs[places[0]][2])
            self._apply_rest(jobs, rest)
            return True

        return run

    def _apply_rest(self, jobs: list, rest: list[int]) -> None:
        for i in rest:
            p, arrays, h = jobs[i]
            if type(arrays[0]) is np.ndarray:
                self._apply(*arrays, *self._buffers(p, 2), h)
            else:
                with backend.on(p.device):  # CuPy works on the current GPU: the parameter's
                    self._apply(*arrays, *self._buffers(p, 2), h)

    def _check_grads(self) -> None:
        name = f"{type(self).__name__}.step"
        for group in self.param_groups:
            for i, p in enumerate(group["params"]):
                g = p.grad
                if g is None:
                    continue
                if type(g) is Tensor:  # the common case, host arrays alike: checked at once
                    gd, pd = g.data, p.data
                    if (
                        type(gd) is _ndarray is type(pd)
                        and gd.shape == pd.shape
                        and (gd.dtype == pd.dtype)
                    ):
                        continue
                if not isinstance(g, Tensor):
                    raise TypeError(f"{name}: the .grad of {_where(p, i)} is a {type(g).__name__}")
                if g.shape != p.shape:
                    raise ValueError(f"{name}: the .grad of {_where(p, i)} has shape {g.shape}")
                if g.dtype != p.dtype:
                    raise TypeError(f"{name}: the .grad of {_where(p, i)} has dtype {g.dtype}")
                if g.device != p.device:
                    raise RuntimeError(f"{name}: the .grad of {_where(p, i)} is on {g.device}")

    def _prepare(
        self, p: Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Bookkeeping for one parameter's step (state, step count); returns the arrays the
        update reads and writes, the parameter's first and its gradient's second, all of one
        shape or None, and the scalars it needs."""
        raise NotImplementedError

    # The `gradtensor.kernels` update that does `_apply`'s work in one pass, taking `_prepare`'s
    # arrays (as lists, one entry per parameter) and its scalars as keywords.
    _kernel = ""

    @staticmethod
    def _apply(*arrays_scratch_and_scalars: Any) -> None:
        """The update with array ops on `_prepare`'s arrays and two scratch arrays."""
        raise NotImplementedError

    # For a step inside a CUDA graph, a class beside its `_apply` defines `_step_scalars(h)`:
    # the values `_apply` computes from the scalars that may change between steps (`_varying`,
    # keys of `_prepare`'s), which `_apply(..., h, k)` then takes from `k` (GPU arrays there).
    _varying: tuple[str, ...] = ()

    def _buffers(self, p: Tensor, n: int) -> list[Any]:
        """n scratch arrays shaped like p, made once and reused every step."""
        bufs = self._scratch.get(p)
        d = p.data
        if (
            bufs is None
            or len(bufs) < n
            or bufs[0].shape != d.shape
            or bufs[0].dtype != d.dtype
            or type(bufs[0]) is not type(d)
        ):
            xp = backend.array_module(d)
            bufs = self._scratch[p] = [xp.empty_like(d) for _ in range(n)]
        return bufs

    @staticmethod
    def _zeros_state(d: Any) -> Tensor:
        return Tensor._make(backend.array_module(d).zeros_like(d))

    # -- saving --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}, where a
        parameter's index is its position across all groups (as in PyTorch); the state's
        tensors are shared, not copied."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = dict(self.state[p])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by `state_dict()` from a like optimizer.

        Everything is checked and converted first (state tensors, or NumPy arrays, to their
        parameter's shape, device and floating dtype; hyperparameters by the optimizer's own
        rules), so a load that fails raises ValueError and leaves the optimizer as it was.
        """
        name = type(self).__name__

        def fail(why: str) -> ValueError:
            return ValueError(f"{name}.load_state_dict: {why}")

        def index(idx: Any, where: str) -> int:
            if isinstance(idx, bool) or not hasattr(idx, "__index__"):
                raise fail(f"{where} has parameter index {idx!r}, which is not an int")
            return idx.__index__()

        if not (isinstance(state_dict, dict) and {"param_groups", "state"} <= state_dict.keys()):
            raise fail("expected a dict with 'state' and 'param_groups' (as made by state_dict())")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) for g in saved_groups
        ):
            raise fail("'param_groups' must be a list of dicts, each with a list of 'params'")
        if not isinstance(saved_state, dict):
            raise fail(f"'state' must be a dict, not a {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise fail(
                f"the saved state has {len(saved_groups)} parameter groups, "
                f"this optimizer {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        for i, (mine, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(mine["params"]) != len(saved["params"]):
                raise fail(
                    f"parameter group {i} has {len(saved['params'])} parameters in the saved "
                    f"state but {len(mine['params'])} here"
                )
            for idx, p in zip(saved["params"], mine["params"], strict=True):
                k = index(idx, f"parameter group {i}")
                if k in by_index:
                    raise fail(f"parameter index {k} appears more than once in 'param_groups'")
                by_index[k] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, s in saved_state.items():
            p = by_index.get(index(idx, "'state'"))
            if p is None:
                raise fail(f"state for parameter index {idx}, which no parameter group has")
            if not isinstance(s, dict):
                raise fail(f"the state of parameter {idx} is a {type(s).__name__}, not a dict")
            restored = {}
            for k, v in s.items():
                if isinstance(v, backend.array_types()):  # an array saved on its own
                    if v.dtype.kind not in "biuf":
                        raise fail(f"state {k!r} of parameter {idx} has dtype {v.dtype}")
                    v = Tensor._make(v)
                restored[k] = self._restore(v, p, name, k)
            new_state[p] = restored
        groups = []
        for i, (mine, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            g = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
            for key, default in self.defaults.items():
                if key not in g:
                    if default is required:
                        raise fail(f"parameter group {i} lacks the hyperparameter {key!r}")
                    g[key] = default  # a hyperparameter newer than the checkpoint
            g["params"] = mine["params"]
            try:
                self._check_hyper(g)
            except (TypeError, KeyError, IndexError) as exc:
                raise fail(f"parameter group {i} has unusable hyperparameters ({exc})") from None
            groups.append(g)
        self.param_groups = groups
        self.state = new_state

    @staticmethod
    def _restore(v: Any, p: Tensor, name: str, key: str) -> Any:
        if not isinstance(v, Tensor):
            return copy.deepcopy(v)
        if v.shape != p.shape:
            raise ValueError(
                f"{name}.load_state_dict: state {key!r} has shape {v.shape}, but "
                f"its parameter has shape {p.shape}"
            )
        arr = backend.to_device(v.data, p.device)
        arr = arr.astype(p.dtype) if arr.dtype.kind == "f" else arr.copy()
        return Tensor._make(arr)


class _GraphedUpdate:
    """An optimizer step on GPU arrays whose scalars live in GPU memory, written there before
    each run (only where they changed); a captured graph's update reads them there. Parameters
    the kernels take share a one-pass launch per batch, as in an eager step, the batch's scalars
    (`update_scalars`) one GPU vector; the rest take the array ops, with one row of
    `_step_scalars` per parameter in a GPU vector per device and dtype (each value in the
    parameter's dtype, as an array op casts a Python float)."""

    def __init__(self, opt: Optimizer, params: list[Tensor], rows: list) -> None:
        self.opt, self.params, self.rows = opt, params, rows
        self.fixed = [self._fixed(p, arrays, h) for p, (arrays, h) in zip(params, rows)]
        self.kernels = active_kernels()
        # Batched as an eager step batches them (the gradients, which the graph makes, aside).
        jobs = [(p, [arrays[0], None, *arrays[2:]], h) for p, (arrays, h) in zip(params, rows)]
        _, batches, rest = opt._batches(jobs, "launch_update")
        groups = [(True, *self._part(params[places[0]], rows[places[0]][0]), places)
                  for places in batches.values()]  # fmt: skip
        alike: dict[tuple, list[int]] = {}  # the rest, by device, dtype and state in use
        for i in rest:
            alike.setdefault(self._part(params[i], rows[i][0]), []).append(i)
        groups += [(False, *part, places) for part, places in alike.items()]
        names = list(opt._step_scalars(rows[0][1]))
        self.parts = []  # (one launch?, device, dtype, parameters' places, in use, GPU scalars)
        self.k: list[Any] = [None] * len(params)  # the array ops' scalars, per parameter
        for launch, device, dtype, in_use, places in groups:
            n = len(self._values(launch, dtype, places, in_use, rows))
            with backend.on(device):
                table = backend.array_module(params[places[0]].data).zeros(n, dtype)
            self.parts.append((launch, device, dtype, places, in_use, table))
            if not launch:
                for row, i in enumerate(places):
                    self.k[i] = {name: table[row * len(names) + j]
                                 for j, name in enumerate(names)}  # fmt: skip
        self.written: list[Any] = [None] * len(self.parts)

    @staticmethod
    def _part(p: Tensor, arrays: list) -> tuple:
        """(device, dtype, which state is in use): what parameters of one part share."""
        return p.device, p.dtype, tuple(a is not None for a in arrays[2:])

    def _fixed(self, p: Tensor, arrays: list, h: dict) -> tuple:
        """What a plan holds a parameter to: its arrays (by identity) and unchanging scalars."""
        varying = self.opt._varying
        return (p.data, *arrays[2:], tuple((k, v) for k, v in h.items() if k not in varying))

    def fits(self, rows: list) -> bool:
        """Whether this step's parameters are as planned, and those of a launch share scalars."""
        for p, (arrays, h), fixed in zip(self.params, rows, self.fixed):
            now = self._fixed(p, arrays, h)
            if len(now) != len(fixed) or not all(
                a is b if not isinstance(a, tuple) else a == b for a, b in zip(now, fixed)
            ):
                return False
        return all(
            all(rows[i][1] == rows[places[0]][1] for i in places[1:])
            for launch, _, _, places, _, _ in self.parts
            if launch
        )

    def _values(self, launch: bool, dtype: Any, places: list, in_use: tuple, rows: list) -> Any:
        if launch:
            h = rows[places[0]][1]
            return np.array(self.kernels.update_scalars(self.opt._kernel, dtype, in_use, **h))
        step = self.opt._step_scalars
        return np.array([v for i in places for v in step(rows[i][1]).values()], dtype)

    def write(self, rows: list) -> None:
        """This step's scalars into GPU memory where they changed, each by a fill: a launch on
        the current stream, before the step's work, that carries its value with it (a copy
        from host memory could wait for the GPU)."""
        self.rows = rows
        for j, (launch, device, dtype, places, in_use, table) in enumerate(self.parts):
            values = self._values(launch, dtype, places, in_use, rows)
            old = self.written[j]
            bits = values.view(f"u{values.itemsize}")  # by bits: -0.0 and NaN too
            changed = range(len(values)) if old is None else np.flatnonzero(bits != old)
            if len(changed):
                with backend.on(device):
                    for i in changed:
                        table[i : i + 1].fill(values[i])
                self.written[j] = bits

    def run(self, grads: tuple) -> None:
        opt = self.opt
        for launch, device, _, places, _, table in self.parts:
            with backend.on(device):
                if launch:
                    first = self.rows[places[0]][0]
                    columns = [None if a is None else [self.rows[i][0][c] for i in places]
                               for c, a in enumerate(first)]  # fmt: skip
                    # (a copy of a gradient not laid out as the kernels take it)
                    columns[1] = [g if g.flags.c_contiguous else g.copy()
                                  for g in (grads[i] for i in places)]  # fmt: skip
                    self.kernels.launch_update(opt._kernel, *columns, scalars=table)
                    continue
                for i in places:
                    (d, _, *state), h = self.rows[i]
                    opt._apply(d, grads[i], *state, *opt._buffers(self.params[i], 2), h, self.k[i])


def _where(p: Tensor, i: int) -> str:
    return f"parameter {i} of its group (shape {p.shape}, {p.dtype}, {p.device})"


def _kind(p: Tensor, arrays: list) -> tuple:
    """What parameters that share a kernel call have in common besides their scalars: the kind
    of array, dtype and device, and which state is in use."""
    d = arrays[0]
    # Only a GPU array asks for its device; every host array is on the CPU.
    where = None if type(d) is np.ndarray else p.device
    return (type(d), d.dtype, where, *(a is None for a in arrays))


def _planned(jobs: list) -> list:
    """What a plan of the optimizer's step holds it to: for each parameter, itself, its array,
    and its state's arrays (None where unused), in order."""
    return [(p, arrays[0], *arrays[2:]) for p, arrays, _ in jobs]


def _unchanged(planned: list, jobs: list) -> bool:
    """Whether `jobs` update what a plan was made for (`_planned`), each gradient contiguous
    as the kernels take it."""
    if len(planned) != len(jobs):
        return False
    for job, held in zip(jobs, planned):  # held[k] is arrays[k] but for the gradient (k = 1)
        arrays = job[1]
        if job[0] is not held[0] or arrays[0] is not held[1] or not arrays[1].flags.c_contiguous:
            return False
        for k in range(2, len(arrays)):
            if arrays[k] is not held[k]:
                return False
    return True


def _columns(jobs: list, places: list[int], width: int, used: list[int]) -> list:
    """The arrays of the parameters at `places` in jobs, a list per column; None for a column
    not in `used` (state the configuration does not use)."""
    columns: list = [None] * width
    for c in used:
        columns[c] = [jobs[i][1][c] for i in places]
    return columns


def _follow_device(p: Tensor, state: dict[str, Any]) -> None:
    """State follows its parameter: after `model.to("cuda")` the momentum buffers move too."""
    d = p.data
    host = type(d) is _ndarray
    for k, v in state.items():
        if host and (not isinstance(v, Tensor) or type(v.data) is _ndarray):
            continue  # the common case: host state for a host parameter
        if isinstance(v, Tensor) and (
            type(v.data) is not type(d) or (backend.is_cuda_array(d) and v.data.device != d.device)
        ):
            state[k] = Tensor._make(backend.to_device(v.data, p.device))


def _is_hyper_value(v: Any) -> bool:
    """A number, a flag, None, or a tuple of numbers (Adam's betas): what a hyperparameter is."""
    if isinstance(v, (tuple, list)):
        return all(_is_hyper_value(x) and not isinstance(x, (tuple, list)) for x in v)
    return v is None or isinstance(v, (bool, numbers.Real))
