"""cupy.cuda: devices, streams, events and the memory pools, as far as a CPU can pretend."""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any

from . import runtime
from ._core import (
    CUDARuntimeError,
    _Capture,
    _check_device,
    _Config,
    _local,
    _Pool,
    replay_captured,
)

__all__ = ["CUDARuntimeError", "runtime"]


def is_available() -> bool:
    return _Config.device_count > 0


def get_device_id() -> int:
    return runtime.getDevice()


class Device:
    """A GPU by index; `with Device(1):` makes it current for the calling thread."""

    def __init__(self, device: Any = None):
        self.id = runtime.getDevice() if device is None else int(device)
        self._prev: list[int] = []

    def use(self) -> None:
        runtime.setDevice(self.id)

    def __enter__(self) -> Device:
        _check_device(self.id)
        self._prev.append(_local.device)
        _local.device = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.device = self._prev.pop()

    def synchronize(self) -> None:
        _check_device(self.id)

    @property
    def compute_capability(self) -> str:
        _check_device(self.id)
        return "90"

    @property
    def mem_info(self) -> tuple[int, int]:
        _check_device(self.id)
        return runtime.memGetInfo()

    def __int__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


_ptrs = itertools.count(0x1000, 0x10)  # fake, distinct stream handles


class Stream:
    """A CUDA stream; the stand-in runs everything at once, so ordering is trivially kept."""

    null: Stream

    def __init__(self, null: bool = False, non_blocking: bool = False, ptr: int = 0):
        runtime.getDevice()
        self.ptr = 0 if null else (ptr or next(_ptrs))
        self.device_id = _local.device

    def __enter__(self) -> Stream:
        _local.streams.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.streams.pop()

    def use(self) -> Stream:
        _local.streams[:] = [self]
        return self

    def synchronize(self) -> None:
        runtime.getDevice()

    @property
    def done(self) -> bool:
        return True

    def record(self, event: Any = None) -> Event:
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event: Any) -> None:
        pass

    def begin_capture(self, mode: Any = None) -> None:
        """Note the device operations from now on (see _core's stream capture)."""
        if self.ptr == 0:
            raise CUDARuntimeError(
                900, "cudaErrorStreamCaptureUnsupported: the legacy default stream cannot capture"
            )
        if _Capture.ops is not None:
            raise CUDARuntimeError(
                900, "cudaErrorStreamCaptureUnsupported: a stream is capturing already"
            )
        _Capture.begin()

    def end_capture(self) -> Graph:
        ops = _Capture.end()
        if ops is None:
            raise CUDARuntimeError(901, "cudaErrorIllegalState: the stream is not capturing")
        return Graph(ops)

    def is_capturing(self) -> bool:
        return _Capture.ops is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self) -> int:
        return hash(self.ptr)


class Graph:
    """A captured graph: launch() runs its device operations again on the same arrays.
    `Graph.launches` counts the launches (for tests)."""

    launches = 0

    def __init__(self, ops: list):
        self._ops = ops

    def launch(self, stream: Any = None) -> None:
        runtime.getDevice()
        Graph.launches += 1
        replay_captured(self._ops)


def using_allocator(allocator: Any = None) -> Any:
    """Allocations in the block come from `allocator`: the stand-in has one memory."""
    return contextlib.nullcontext()


class ExternalStream(Stream):
    def __init__(self, ptr: int, device_id: int = -1):
        self.ptr, self.device_id = ptr, device_id


Stream.null = Stream.__new__(Stream)
Stream.null.ptr, Stream.null.device_id = 0, 0


def get_current_stream(device_id: int = -1) -> Stream:
    return _local.streams[-1] if _local.streams else Stream.null


class Event:
    def __init__(self, block: bool = False, disable_timing: bool = False,
                 interprocess: bool = False):  # fmt: skip
        self.t: float | None = None

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    @property
    def done(self) -> bool:
        return True


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events."""
    return (end.t - start.t) * 1e3


class MemoryPool:
    """The device pool: used_bytes() is what live arrays hold (rounded to 512 B, as CuPy's)."""

    def malloc(self, size: int) -> Any:
        return None  # the stand-in's arrays hold their own memory

    def used_bytes(self) -> int:
        return _Pool.used

    def total_bytes(self) -> int:
        return _Pool.used  # the stand-in caches no freed blocks

    def free_bytes(self) -> int:
        return 0

    def free_all_blocks(self, stream: Any = None) -> None:
        pass

    def n_free_blocks(self) -> int:
        return 0

    def set_limit(self, size: Any = None, fraction: Any = None) -> None:
        pass

    def get_limit(self) -> int:
        return 0


class PinnedMemoryPool:
    def free_all_blocks(self) -> None:
        pass

    def n_free_blocks(self) -> int:
        return 0
