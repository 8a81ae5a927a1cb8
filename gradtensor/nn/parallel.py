"""DistributedDataParallel: one model per process, gradients averaged across processes.

>>> dist.init_process_group()                  # started with mpiexec -n N
>>> model = nn.parallel.DistributedDataParallel(MyNet())
>>> loss = F.cross_entropy(model(x_shard), y_shard)
>>> loss.backward()                             # every rank's .grad is now the average
>>> opt.step()

Gradients are averaged in buckets of parameters (in reverse registration order, about the order
backward finishes them). A parameter's post-accumulate-grad hook copies its gradient into its
bucket as soon as backward has finished it; a bucket whose gradients are all in starts its
non-blocking all_reduce at once, so communication overlaps the rest of backward. A callback at
the end of backward waits for every bucket and writes the averages back into `.grad`, so the
optimizer, whichever it is, reads averaged gradients.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import backend
from .. import distributed as dist
from ..autograd import engine
from ..autograd.graph import RECORDING, recorder
from ..tensor import Tensor
from .module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Parameters of one dtype and device whose gradients travel as one flat array."""

    def __init__(self, params: list, dtype: Any, device: Any):
        self.params, self.dtype, self.device = params, dtype, device
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += p.numel()
        self.numel = n
        self.buf: Any = None  # this backward's flat gradient
        self.filled: list[bool] = []
        self.missing = 0
        self.work: Any = None


class DistributedDataParallel(Module):
    """Wrap `module` so that backward averages its gradients across the process group.

    At wrap time rank 0's parameters and buffers are copied to every rank. bucket_cap_mb bounds
    a bucket's size (smaller buckets start communicating earlier); with broadcast_buffers, each
    forward first copies rank 0's buffers (BatchNorm's running statistics) to every rank. Every
    rank must run the same sequence of forward and backward calls. A parameter that no rank used
    in a backward gets a zero gradient.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25, broadcast_buffers: bool = True):
        super().__init__()
        fn = "DistributedDataParallel"
        if not dist.is_initialized():
            raise RuntimeError(
                f"{fn}: the default process group is not initialized; call "
                "gradtensor.distributed.init_process_group() first"
            )
        if not isinstance(module, Module):
            raise TypeError(f"{fn}: module must be an nn.Module, not a {type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not (
            isinstance(bucket_cap_mb, (int, float)) and bucket_cap_mb > 0
        ):
            raise ValueError(
                f"{fn}: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}"
            )
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = bucket_cap_mb
        self.require_backward_grad_sync = True
        # The last synchronized backward: bytes all-reduced, and seconds its end spent waiting
        # for communication still in flight (what backward did not hide).
        self.comm_stats = {"bytes": 0, "wait_s": 0.0}
        self.world_size = dist.get_world_size()
        self._check_same_model(fn)
        for p in module.parameters():
            dist.broadcast(p, src=0)
        for b in module.buffers():
            dist.broadcast(b, src=0)
        self._buckets = self._make_buckets(int(bucket_cap_mb * 2**20))
        self._in_backward = False
        self._next = 0  # the next bucket to launch: every rank launches them in the same order
        handles = []
        ref = weakref.ref(self)
        for i, b in enumerate(self._buckets):
            for j, p in enumerate(b.params):
                handles.append(engine.register_post_accumulate_grad_hook(p, _hook(ref, i, j)))
        weakref.finalize(self, _remove_all, handles)

    def _check_same_model(self, fn: str) -> None:
        """Every rank must wrap the same architecture: compare counts and shapes across ranks."""
        shapes = [tuple(p.shape) for p in self.module.parameters()]
        sig = np.array([len(shapes), sum(int(np.prod(s)) for s in shapes), hash(tuple(shapes))])
        low, high = sig.copy(), sig.copy()
        dist.all_reduce(low, "min")
        dist.all_reduce(high, "max")
        if (low != high).any():
            raise RuntimeError(
                f"{fn}: the ranks wrap different models: rank {dist.get_rank()} has "
                f"{len(shapes)} parameters with {sig[1]} numbers in all, and the ranks' counts "
                f"range over {low[0]}..{high[0]} parameters and {low[1]}..{high[1]} numbers"
            )

    def _make_buckets(self, cap: int) -> list[_Bucket]:
        # Reverse registration order: the last layers' gradients are finished first in backward.
        params = [p for p in self.module.parameters() if p.requires_grad][::-1]
        buckets: list[_Bucket] = []
        open_: dict[tuple, tuple[list, int]] = {}
        for p in params:
            key = (p.data.dtype, backend.device_of_array(p.data))
            group, size = open_.get(key, ([], 0))
            group.append(p)
            size += p.data.nbytes
            if size >= cap:
                buckets.append(_Bucket(group, *key))
                group, size = [], 0
            open_[key] = (group, size)
        buckets.extend(_Bucket(g, *k) for k, (g, _) in open_.items() if g)
        return buckets

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._in_backward = False  # a new step, even if the last backward raised midway
        if self.broadcast_buffers and self.world_size > 1:
            rec = recorder() if RECORDING else None
            if rec is None:
                self._broadcast_buffers()
            else:
                rec.call(self._broadcast_buffers)  # gt.compile: replayed as a call
        return self.module(*args, **kwargs)

    def _broadcast_buffers(self) -> None:
        for b in self.module.buffers():
            dist.broadcast(b, src=0)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward inside accumulates gradients locally without communicating; the first
        backward after it averages the accumulated sums (gradient accumulation)."""
        prev = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = prev

    # -- during backward ------------------------------------------------------------------------

    def _ready(self, i: int, j: int, p: Tensor) -> None:
        """p's gradient is final for this backward: put it in its bucket."""
        if not self.require_backward_grad_sync:
            return
        if not self._in_backward:
            self._start()
        b = self._buckets[i]
        if b.filled[j]:
            return
        self._fill(b, j, p.grad.data)
        if b.missing == 0 and i == self._next:
            self._launch()
        else:  # MPI moves collectives on only inside its calls: give the launched ones a turn
            for k in range(self._next):
                self._buckets[k].work.is_completed()

    def _start(self) -> None:
        self._in_backward, self._next = True, 0
        for b in self._buckets:
            b.buf = backend.xp_of_device(b.device).empty(b.numel, b.dtype)
            b.filled, b.missing, b.work = [False] * len(b.params), len(b.params), None
        engine.queue_callback(self._finish)

    def _fill(self, b: _Bucket, j: int, g: Any) -> None:
        off = b.offsets[j]
        b.buf[off : off + g.size] = g.reshape(-1)
        b.filled[j] = True
        b.missing -= 1

    def _launch(self) -> None:
        """Start every bucket that is full, in bucket order."""
        while self._next < len(self._buckets) and self._buckets[self._next].missing == 0:
            b = self._buckets[self._next]
            b.work = dist.all_reduce(b.buf, "sum", async_op=True)
            self._next += 1

    def _finish(self) -> None:
        """End of backward: send what was not sent, wait for all of it, write the averages."""
        self._in_backward = False
        for b in self._buckets:
            for j, p in enumerate(b.params):
                if not b.filled[j]:  # unused in this backward here (or accumulated under no_sync)
                    g = p.grad.data if p.grad is not None else None
                    if g is None:
                        g = backend.xp_of_device(b.device).zeros(p.shape, b.dtype)
                    self._fill(b, j, g)
        self._launch()
        t0 = time.perf_counter()
        for b in self._buckets:
            b.work.wait()
        self.comm_stats = {"bytes": sum(b.buf.nbytes for b in self._buckets),
                           "wait_s": time.perf_counter() - t0}  # fmt: skip
        for b in self._buckets:
            b.buf /= self.world_size
            for p, off in zip(b.params, b.offsets):
                p.grad = Tensor._make(b.buf[off : off + p.numel()].reshape(p.shape))
            b.buf = b.work = None


def _hook(ref: weakref.ref, i: int, j: int) -> Any:
    def hook(p: Tensor) -> None:
        ddp = ref()
        if ddp is not None:
            ddp._ready(i, j, p)

    return hook


def _remove_all(handles: list) -> None:
    for h in handles:
        h.remove()
