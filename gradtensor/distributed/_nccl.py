"""Collectives on GPU (CuPy) arrays through NCCL (cupy.cuda.nccl), for init_process_group("nccl").

MPI still starts the processes and hands NCCL's unique id from rank 0 to the others. Each
collective runs on a stream of its own, after the work already queued on the current stream, so
that the host goes on (backward keeps computing) while NCCL communicates; waiting makes the
current stream wait for it.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ._work import Work

_DTYPES = {
    "int8": "NCCL_INT8",
    "uint8": "NCCL_UINT8",
    "bool": "NCCL_UINT8",  # bytes, for broadcast and all_gather
    "int32": "NCCL_INT32",
    "uint32": "NCCL_UINT32",
    "int64": "NCCL_INT64",
    "uint64": "NCCL_UINT64",
    "float16": "NCCL_FLOAT16",
    "float32": "NCCL_FLOAT32",
    "float64": "NCCL_FLOAT64",
}
_OPS = {"sum": "NCCL_SUM", "product": "NCCL_PROD", "max": "NCCL_MAX", "min": "NCCL_MIN"}


def nccl_dtype(nccl: Any, fn: str, a: Any) -> int:
    name = _DTYPES.get(str(a.dtype))
    if name is None:
        raise TypeError(
            f"{fn}: NCCL cannot communicate a {a.dtype} array of shape {tuple(a.shape)}; "
            f"it takes {', '.join(k for k in _DTYPES if k != 'bool')} (and bool)"
        )
    return getattr(nccl, name)


class Communicator:
    """An NCCL communicator over the group's ranks, one GPU per rank."""

    def __init__(self, group: Any, cupy: Any, nccl: Any, comm: Any):
        self.group, self.cp, self.nccl, self.comm = group, cupy, nccl, comm
        self.stream = cupy.cuda.Stream(non_blocking=True)

    @classmethod
    def create(cls, group: Any) -> Communicator:
        try:
            cupy, nccl = backend.nccl()
        except ImportError as exc:
            raise ImportError(
                'init_process_group: backend "nccl" needs CuPy built with NCCL '
                f"(pip install gradtensor[cuda]): {exc}"
            ) from None
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            raise RuntimeError('init_process_group: backend "nccl" needs a GPU; none is visible')
        # One GPU per process: the processes on one machine take its GPUs in turn.
        local = group.comm.Split_type(group.MPI.COMM_TYPE_SHARED)
        cupy.cuda.Device(local.Get_rank() % count).use()
        local.Free()
        uid = nccl.get_unique_id() if group.rank == 0 else None
        uid = group.comm.bcast(uid, root=0)  # a few bytes, once
        return cls(group, cupy, nccl, nccl.NcclCommunicator(group.size, uid, group.rank))

    def _launch(self, name: str, what: str, call: Any, keep: tuple) -> Work:
        cp = self.cp
        ready = cp.cuda.Event()
        ready.record(cp.cuda.get_current_stream())
        self.stream.wait_event(ready)  # after the work that produces the data
        call(self.stream.ptr)
        done = cp.cuda.Event()
        done.record(self.stream)

        def finish() -> None:
            cp.cuda.get_current_stream().wait_event(done)
            del keep_alive[:]  # the buffers may go once the current stream is behind NCCL

        keep_alive = list(keep)  # the arrays NCCL reads and writes stay alive until then
        return Work(name, lambda: done.done, finish, what, self.group)

    def _op(self, op: str) -> int:
        return getattr(self.nccl, _OPS[op])

    def all_reduce(self, buf: Any, op: str, what: str) -> Work:
        dtype, op_ = nccl_dtype(self.nccl, "all_reduce", buf), self._op(op)
        ptr = buf.data.ptr

        def call(stream: int) -> None:
            self.comm.allReduce(ptr, ptr, buf.size, dtype, op_, stream)

        return self._launch("all_reduce", what, call, (buf,))

    def broadcast(self, buf: Any, src: int, what: str) -> Work:
        dtype = nccl_dtype(self.nccl, "broadcast", buf)

        def call(stream: int) -> None:
            self.comm.bcast(buf.data.ptr, buf.size, dtype, src, stream)

        return self._launch("broadcast", what, call, (buf,))

    def all_gather(self, send: Any, recv: Any, what: str) -> Work:
        dtype = nccl_dtype(self.nccl, "all_gather", send)

        def call(stream: int) -> None:
            self.comm.allGather(send.data.ptr, recv.data.ptr, send.size, dtype, stream)

        return self._launch("all_gather", what, call, (send, recv))

    def reduce_scatter(self, send: Any, recv: Any, op: str, what: str) -> Work:
        dtype, op_ = nccl_dtype(self.nccl, "reduce_scatter", recv), self._op(op)

        def call(stream: int) -> None:
            self.comm.reduceScatter(send.data.ptr, recv.data.ptr, recv.size, dtype, op_, stream)

        return self._launch("reduce_scatter", what, call, (send, recv))
