"""Data parallelism across processes, machines and GPUs, with torch.distributed's names.

One process per rank, started by MPI's launcher: `mpiexec -n 4 python train.py` (or
`python -m gradtensor.distributed.launch -n 4 train.py`). Host (NumPy) arrays travel through MPI
(mpi4py), GPU (CuPy) arrays through NCCL; every collective takes the array's memory directly.

>>> import gradtensor.distributed as dist
>>> dist.init_process_group()                 # MPI; "nccl" for GPUs
>>> t = gt.tensor([float(dist.get_rank())])
>>> dist.all_reduce(t)                         # in place: every rank now holds the sum

mpi4py is optional: it is imported by init_process_group, and `pip install gradtensor[mpi]`
brings it together with an MPI implementation.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from ._work import Work

__all__ = [
    "ReduceOp",
    "Work",
    "all_gather",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "reduce_scatter",
    "save_checkpoint",
]

DEFAULT_TIMEOUT = 300.0  # seconds a collective may wait for the other ranks


class ReduceOp:
    """How all_reduce and reduce_scatter combine the ranks' values (strings work too)."""

    SUM = "sum"
    AVG = "mean"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"


_OPS = {"sum", "mean", "avg", "max", "min", "product", "prod"}


class _Group:
    """The process group: MPI's communicator, and NCCL's for GPU arrays under the nccl backend."""

    def __init__(self, comm: Any, mpi: Any, backend_name: str, timeout: float):
        self.comm, self.MPI, self.backend, self.timeout = comm, mpi, backend_name, timeout
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.nccl: Any = None  # a _nccl.Communicator, made by init_process_group("nccl")
        self.prev_excepthook: Any = None


_group: _Group | None = None


def is_available() -> bool:
    """Whether mpi4py can be imported (the `gradtensor[mpi]` extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    return _group is not None


def _get(fn: str) -> _Group:
    if _group is None:
        raise RuntimeError(
            f"{fn}: the default process group is not initialized; call "
            "gradtensor.distributed.init_process_group() first (and start the script with "
            "mpiexec -n N python script.py)"
        )
    return _group


def get_rank() -> int:
    """This process's index in the group, 0 .. world size - 1."""
    return _get("get_rank").rank


def get_world_size() -> int:
    """How many processes the group holds."""
    return _get("get_world_size").size


def get_backend() -> str:
    return _get("get_backend").backend


def init_process_group(
    backend: str = "auto", timeout: float | None = None, excepthook: bool = True
) -> None:
    """Join the processes mpiexec started into one group.

    backend: "mpi" (host arrays through MPI, GPU arrays staged through the host), "nccl" (GPU
    arrays through NCCL on the GPU numbered by this process's rank on its machine; host arrays
    still through MPI), or "auto" (nccl when a GPU is usable, else mpi). `timeout` (seconds,
    default 300) bounds how long a collective waits for the other ranks before raising. With
    `excepthook`, an uncaught exception on any rank prints that rank's traceback and aborts the
    whole job, so that the others do not wait for it for ever.
    """
    global _group
    if _group is not None:
        raise RuntimeError(
            "init_process_group: the default process group is already initialized; call "
            "destroy_process_group() first"
        )
    if not isinstance(backend, str) or backend.lower() not in ("auto", "mpi", "nccl"):
        raise ValueError(
            f'init_process_group: backend must be "mpi", "nccl" or "auto", got {backend!r}'
        )
    backend_name = backend.lower()
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    elif hasattr(timeout, "total_seconds"):  # a datetime.timedelta, as PyTorch takes
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(
            f"init_process_group: timeout must be a positive number of seconds, got {timeout!r}"
        )
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "init_process_group: gradtensor.distributed needs mpi4py and an MPI library; "
            f"install them with `pip install gradtensor[mpi]` ({exc})"
        ) from None
    if backend_name == "auto":
        backend_name = "nccl" if _nccl_usable() else "mpi"
    group = _Group(MPI.COMM_WORLD.Dup(), MPI, backend_name, float(timeout))
    if backend_name == "nccl":
        from . import _nccl

        group.nccl = _nccl.Communicator.create(group)
    if excepthook:
        group.prev_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception
    _group = group


def _nccl_usable() -> bool:
    if backend.cuda_unavailable_reason() is not None:
        return False
    try:
        backend.nccl()
    except ImportError:
        return False
    return True


def destroy_process_group() -> None:
    """Leave the group (every rank together); init_process_group may then be called again."""
    global _group
    group = _get("destroy_process_group")
    barrier()
    _group = None
    if group.prev_excepthook is not None and sys.excepthook is _abort_on_exception:
        sys.excepthook = group.prev_excepthook
    group.comm.Free()


def _abort_on_exception(kind: type, value: BaseException, tb: Any) -> None:
    """An uncaught exception on one rank: show it, then end every rank (no silent hang)."""
    group = _group
    rank = "?" if group is None else group.rank
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(f"gradtensor.distributed: rank {rank} failed:\n{text}")
    sys.stderr.flush()
    sys.stdout.flush()
    if group is not None and group.size > 1:
        sys.stderr.write(f"gradtensor.distributed: rank {rank} aborts the job\n")
        sys.stderr.flush()
        time.sleep(0.5)  # the launcher forwards what was written before the job is torn down
        group.MPI.COMM_WORLD.Abort(1)
    os._exit(1)


# -- waiting, with a timeout -----------------------------------------------------------------


def _mpi_work(name: str, request: Any, finish: Any, what: str, group: _Group) -> Work:
    return Work(name, request.Test, finish, what, group)


# -- buffers ---------------------------------------------------------------------------------


def _array(fn: str, t: Any, what: str = "tensor") -> tuple[Any, Tensor | None]:
    """The array behind a Tensor or array argument, and the Tensor (None for an array)."""
    if isinstance(t, Tensor):
        return t.data, t
    if isinstance(t, backend.array_types()):
        return t, None
    raise TypeError(f"{fn}: {what} must be a Tensor or an array, not a {type(t).__name__}")


def _describe(a: Any) -> str:
    where = "GPU" if backend.is_cuda_array(a) else "host"
    return f"a {where} {a.dtype} array of shape {tuple(a.shape)}"


def _op(fn: str, op: Any) -> str:
    name = op.lower() if isinstance(op, str) else None
    if name not in _OPS:
        raise ValueError(
            f"{fn}: op must be one of 'sum', 'mean', 'max', 'min', 'product' (or ReduceOp.SUM, "
            f"...), got {op!r}"
        )
    return {"avg": "mean", "prod": "product"}.get(name, name)


def _check_mean(fn: str, op: str, a: Any) -> None:
    if op == "mean" and a.dtype.kind not in "fc":
        raise TypeError(f"{fn}: op 'mean' needs a floating-point array, got {_describe(a)}")


def _check_dtype(fn: str, a: Any) -> None:
    if a.dtype.kind not in "biufc":
        raise TypeError(f"{fn}: cannot communicate {_describe(a)}; only numbers travel")


def _contiguous(a: Any) -> tuple[Any, bool]:
    """A C-contiguous array with a's values (a itself when it is one), and whether it is a copy."""
    if a.flags.c_contiguous:
        return a, False
    return backend.array_module(a).ascontiguousarray(a), True


def _mpi_op(group: _Group, op: str) -> Any:
    MPI = group.MPI
    return {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "product": MPI.PROD}[
        op
    ]


def _written(t: Tensor | None) -> None:
    if t is not None:
        t._changed()  # a graph that saved the old values must refuse them


# -- collectives -----------------------------------------------------------------------------


def all_reduce(tensor: Any, op: Any = ReduceOp.SUM, async_op: bool = False) -> Work | None:
    """Combine `tensor` across all ranks, in place: afterwards every rank holds the result.

    op: "sum", "mean", "max", "min" or "product". With async_op=True it returns a Work at once;
    the tensor holds the result after `work.wait()`.
    """
    fn = "all_reduce"
    group = _get(fn)
    a, t = _array(fn, tensor)
    op = _op(fn, op)
    _check_dtype(fn, a)
    _check_mean(fn, op, a)
    nccl = group.nccl is not None and backend.is_cuda_array(a)
    buf, copied, back = (*_contiguous(a), None) if nccl else _host_buffer(a)

    def finish() -> None:
        if op == "mean":  # neither MPI nor every NCCL has an average: a sum, divided
            buf[...] /= group.size
        if copied:
            _write_back(a, buf, back)
        _written(t)

    if nccl:
        work = group.nccl.all_reduce(buf, "sum" if op == "mean" else op, _describe(a))
        work._finish = finish
    else:
        req = group.comm.Iallreduce(group.MPI.IN_PLACE, buf, _mpi_op(group, op))
        work = _mpi_work(fn, req, finish, _describe(a), group)
    return work if async_op else _wait(work)


def _host_buffer(a: Any) -> tuple[Any, bool, Any]:
    """A C-contiguous host array to communicate a through: a itself where possible; `back` is
    the GPU array to copy the result to (GPU arrays are staged through the host under MPI)."""
    if backend.is_cuda_array(a):
        return np.ascontiguousarray(a.get()), True, a
    buf, copied = _contiguous(a)
    return buf, copied, None


def _write_back(a: Any, buf: Any, back: Any) -> None:
    a[...] = backend.array_module(a).asarray(buf) if back is not None else buf


def _wait(work: Work) -> None:
    work.wait()
    return None


def broadcast(tensor: Any, src: int = 0, async_op: bool = False) -> Work | None:
    """Copy rank `src`'s tensor into every rank's, in place."""
    fn = "broadcast"
    group = _get(fn)
    a, t = _array(fn, tensor)
    _check_dtype(fn, a)
    src = _rank_arg(fn, "src", src, group)
    nccl = group.nccl is not None and backend.is_cuda_array(a)
    buf, copied, back = (*_contiguous(a), None) if nccl else _host_buffer(a)

    def finish() -> None:
        if copied:
            _write_back(a, buf, back)
        _written(t)

    if nccl:
        work = group.nccl.broadcast(buf, src, _describe(a))
        work._finish = finish
    else:
        work = _mpi_work(fn, group.comm.Ibcast(buf, root=src), finish, _describe(a), group)
    return work if async_op else _wait(work)


def _rank_arg(fn: str, name: str, r: Any, group: _Group) -> int:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < group.size:
        raise ValueError(
            f"{fn}: {name} must be a rank in 0 .. {group.size - 1} (the world size is "
            f"{group.size}), got {r!r}"
        )
    return int(r)


def _same_kind(fn: str, what: str, outs: list, a: Any, shape: tuple) -> None:
    for i, o in enumerate(outs):
        if o.dtype != a.dtype or tuple(o.shape) != shape:
            raise ValueError(
                f"{fn}: {what}[{i}] is {_describe(o)}, but the tensor is {_describe(a)}; "
                f"each must have dtype {a.dtype} and shape {shape}"
            )
        if backend.is_cuda_array(o) != backend.is_cuda_array(a):
            raise ValueError(f"{fn}: {what}[{i}] is {_describe(o)}, the tensor {_describe(a)}")


def all_gather(tensor_list: list, tensor: Any, async_op: bool = False) -> Work | None:
    """Every rank's tensor, gathered on every rank: tensor_list[r] receives rank r's (the list
    holds world-size tensors of the tensor's shape and dtype)."""
    fn = "all_gather"
    group = _get(fn)
    a, _ = _array(fn, tensor)
    _check_dtype(fn, a)
    outs = _tensor_list(fn, "tensor_list", tensor_list, group)
    _same_kind(fn, "tensor_list", [o for o, _ in outs], a, tuple(a.shape))
    what = f"{_describe(a)} from each rank"
    if backend.is_cuda_array(a) and group.nccl is not None:
        recv = backend.array_module(a).empty((group.size, *a.shape), a.dtype)
        work = group.nccl.all_gather(_contiguous(a)[0], recv, what)
    else:
        send = _host_buffer(a)[0]
        recv = np.empty((group.size, *a.shape), a.dtype)
        work = _mpi_work(fn, group.comm.Iallgather(send, recv), None, what, group)

    def scatter_out() -> None:
        for r, (o, t) in enumerate(outs):
            o[...] = backend.array_module(o).asarray(recv[r])  # GPU outputs staged under MPI
            _written(t)

    work._finish = _then(work._finish, scatter_out)
    return work if async_op else _wait(work)


def _then(first: Callable | None, second: Callable) -> Callable:
    if first is None:
        return second

    def both() -> None:
        first()
        second()

    return both


def _tensor_list(fn: str, what: str, ts: Any, group: _Group) -> list:
    if not isinstance(ts, (list, tuple)):
        raise TypeError(f"{fn}: {what} must be a list of tensors, got a {type(ts).__name__}")
    if len(ts) != group.size:
        raise ValueError(
            f"{fn}: {what} must hold one tensor per rank ({group.size}), got {len(ts)}"
        )
    return [_array(fn, t, f"{what}[{i}]") for i, t in enumerate(ts)]


def reduce_scatter(
    output: Any, input_list: Sequence[Any], op: Any = ReduceOp.SUM, async_op: bool = False
) -> Work | None:
    """Reduce input_list[r] across ranks into rank r's `output` (every input of output's shape
    and dtype, one per rank)."""
    fn = "reduce_scatter"
    group = _get(fn)
    a, t = _array(fn, output, "output")
    op = _op(fn, op)
    _check_dtype(fn, a)
    _check_mean(fn, op, a)
    ins = _tensor_list(fn, "input_list", input_list, group)
    _same_kind(fn, "input_list", [i for i, _ in ins], a, tuple(a.shape))
    xp = backend.array_module(a)
    what = f"{group.size} x {_describe(a)}"
    if backend.is_cuda_array(a) and group.nccl is not None:
        send = xp.stack([i for i, _ in ins])
        recv = xp.empty(a.shape, a.dtype)
        work = group.nccl.reduce_scatter(send, recv, "sum" if op == "mean" else op, what)
    else:
        send = np.stack([i.get() if backend.is_cuda_array(i) else i for i, _ in ins])
        recv = np.empty(a.shape, a.dtype)
        req = group.comm.Ireduce_scatter_block(send, recv, _mpi_op(group, op))
        work = _mpi_work(fn, req, None, what, group)

    def finish() -> None:
        if op == "mean":
            recv[...] /= group.size
        a[...] = xp.asarray(recv)
        _written(t)

    work._finish = _then(work._finish, finish)
    return work if async_op else _wait(work)


def barrier() -> None:
    """Wait until every rank has reached this call (raises after the group's timeout)."""
    group = _get("barrier")
    _wait(_mpi_work("barrier", group.comm.Ibarrier(), None, "no data", group))


# -- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(obj: Any, path: str | os.PathLike) -> None:
    """Save `obj` (a state dict, say) from rank 0 only, atomically (gt.save writes a temporary
    file and renames it), then wait for every rank, so that each may load it straight after.
    Without a process group it is plain gt.save."""
    from ..serialization import save

    if _group is None or _group.rank == 0:
        save(obj, path)
    if _group is not None:
        barrier()
