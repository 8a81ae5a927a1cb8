"""A strict CuPy stand-in for tests on machines without a GPU (never shipped with gradtensor).

`install()` puts it in sys.modules as `cupy` and `cupyx`. Its arrays hold NumPy data but behave
as device arrays do: `__array__` raises, NumPy arrays in device maths raise TypeError (scalars
are fine), results are always arrays, and every device-to-host transfer is counted:

    import cupy_standin as cs
    cs.reset_sync_count(); ...; assert cs.sync_count() == 0   # or cs.SYNCS["item"], by kind

`set_device_count(0)` turns it into CuPy without a usable GPU: device calls raise
CUDARuntimeError. Numba-CUDA kernels cannot run on it (they need a real driver).
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

import numpy as np

from . import _cupyx, cuda, lib, linalg, random, runtime
from ._core import (
    SYNCS,
    UFUNCS,
    CUDARuntimeError,
    Flags,
    _arg,
    _current_device,
    _device_op,
    _from_cai,
    _function,
    _host,
    _not_capturing,
    _wrap,
    get_device_count,
    ndarray,
    reset_sync_count,
    set_device_count,
    sync_count,
    ufunc,
)
from ._kernel import ElementwiseKernel

__version__ = "14.0.0"  # the CuPy whose behaviour this follows

globals().update(UFUNCS)

# dtypes and constants are NumPy's own, as in CuPy.
for _name in (
    "bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 intp uintp float16 float32 float64 "
    "complex64 complex128 byte short intc int_ longlong ubyte ushort uintc ulonglong half single "
    "double csingle cdouble dtype iinfo finfo result_type can_cast promote_types newaxis inf nan "
    "pi e euler_gamma integer floating complexfloating number signedinteger unsignedinteger generic"
).split():
    if hasattr(np, _name):
        globals()[_name] = getattr(np, _name)

_FUNCTIONS = (
    "reshape ravel transpose swapaxes moveaxis rollaxis squeeze expand_dims broadcast_arrays "
    "atleast_1d atleast_2d atleast_3d concatenate stack vstack hstack dstack column_stack split "
    "array_split hsplit vsplit flip fliplr flipud roll rot90 repeat tile pad where nonzero "
    "flatnonzero argwhere take take_along_axis put_along_axis put place compress choose diag "
    "diagonal diagflat tril triu trace einsum dot vdot inner outer tensordot kron cross sum prod "
    "mean average var std max min amax amin argmax argmin nanmax nanmin nansum nanprod nanmean "
    "nanargmax nanargmin any all cumsum cumprod diff count_nonzero sort argsort partition "
    "argpartition unique searchsorted bincount histogram clip round around real imag conj "
    "nan_to_num isclose copyto meshgrid indices copy ascontiguousarray asfortranarray "
    "tri linspace logspace eye identity arange"
)
for _name in _FUNCTIONS.split():
    globals()[_name] = _function(getattr(np, _name))
del _name


@_device_op
def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False,
          ndmin: int = 0, *, blocking: bool = False) -> ndarray:  # fmt: skip
    """A device array from device or host data (host data is copied: an H2D transfer)."""
    dev = _current_device()
    if not isinstance(obj, ndarray) and hasattr(obj, "__cuda_array_interface__"):
        obj = _from_cai(obj)
    if isinstance(obj, ndarray):
        if obj._dev != dev:
            copy = True  # CuPy copies an array from another device onto the current one
        same = dtype is None or np.dtype(dtype) == obj.dtype
        if not copy and same and ndmin <= obj.ndim:
            return obj
        return _wrap(np.array(obj._a, dtype=dtype, order=order, ndmin=ndmin), dev)
    if isinstance(obj, (list, tuple)) and _holds_device_array(obj):
        return stack([array(e, dtype) for e in obj])  # noqa: F821  (defined above)
    _not_capturing("a copy from host memory")
    return _wrap(np.array(obj, dtype=dtype, order=order, ndmin=ndmin, copy=True), dev)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    return array(a, dtype, copy=False, order=order or "K")


asanyarray = asarray


def _holds_device_array(seq: Any) -> bool:
    return builtins.any(  # `any` here is cupy.any
        isinstance(e, ndarray) or (isinstance(e, (list, tuple)) and _holds_device_array(e))
        for e in seq
    )


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _wrap(np.empty(shape, dtype, order), _current_device())


@_device_op
def zeros(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _wrap(np.zeros(shape, dtype, order), _current_device())


@_device_op
def ones(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _wrap(np.ones(shape, dtype, order), _current_device())


@_device_op
def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C") -> ndarray:
    if isinstance(fill_value, ndarray):
        fill_value = fill_value._a  # a device scalar stays on the device
    elif isinstance(fill_value, np.ndarray):
        raise TypeError(f"Unsupported type {type(fill_value)}")
    return _wrap(np.full(shape, fill_value, dtype, order), _current_device())


def _like(fill: Any) -> Any:
    def like(a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None,
             **kw: Any) -> ndarray:  # fmt: skip
        # Only the template's shape and dtype are read, as CuPy does.
        return fill(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, **kw)

    return like


empty_like = _like(empty)
zeros_like = _like(zeros)
ones_like = _like(ones)
full_like = _like(lambda shape, dtype, fill_value: full(shape, fill_value, dtype))


def broadcast_to(a: ndarray, shape: Any) -> ndarray:
    """A broadcast view; CuPy's are writable (it has no read-only arrays), NumPy's are not."""
    x = _arg(a, _current_device())
    view = np.broadcast_to(x, shape)
    view = np.lib.stride_tricks.as_strided(x, view.shape, view.strides, writeable=True)
    return _wrap(view, _current_device())


def ndim(a: Any) -> int:
    return a.ndim if isinstance(a, ndarray) else np.ndim(a)


def shape(a: Any) -> tuple:
    return a.shape if isinstance(a, ndarray) else np.shape(a)


def size(a: Any, axis: Any = None) -> int:
    return (a.shape[axis] if axis is not None else a.size) if isinstance(a, ndarray) else np.size(a)


def may_share_memory(a: Any, b: Any, max_work: Any = None) -> bool:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, ndarray):
            raise TypeError(
                f"Argument '{name}' has incorrect type (expected cupy.ndarray, got {type(x)})"
            )
    return bool(np.may_share_memory(a._a, b._a))


shares_memory = may_share_memory


def allclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
    return all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))  # noqa: F821


def array_equal(a1: Any, a2: Any, equal_nan: bool = False) -> ndarray:
    dev = _current_device()
    return _wrap(np.asarray(np.array_equal(_arg(a1, dev), _arg(a2, dev), equal_nan)), dev)


def get_array_module(*args: Any) -> Any:
    on_device = builtins.any(isinstance(a, ndarray) for a in args)
    return sys.modules[__name__] if on_device else np


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None,
            blocking: bool = True) -> np.ndarray:  # fmt: skip
    """The explicit device-to-host copy (counted); host data passes through."""
    if not isinstance(a, ndarray):
        return np.asarray(a, order=order)
    host = np.array(_host(a, "asnumpy"), order=order)
    if out is not None:
        out[...] = host
        return out
    return host


def from_dlpack(array: Any, *, device: Any = None, copy: Any = None) -> ndarray:
    """A device array sharing memory with a CUDA DLPack producer; host producers refused."""
    if isinstance(array, ndarray):
        return _wrap(array._a[...], array._dev)
    dev_type, dev_id = array.__dlpack_device__()
    if dev_type == 1:
        raise TypeError(
            "CPU arrays cannot be directly imported to CuPy. "
            "Use `cupy.array(numpy.from_dlpack(input))` instead."
        )
    if dev_type not in (2, 13):  # kDLCUDA, kDLCUDAManaged
        raise TypeError(f"Unsupported array type: {dev_type}")
    with cuda.Device(dev_id):
        stream = cuda.get_current_stream().ptr or runtime.streamLegacy
        capsule = array.__dlpack__(stream=stream, max_version=(1, 0), copy=copy)
        return _wrap(np.from_dlpack(_Capsule(capsule)), dev_id, account=False)


class _Capsule:
    """Hands an already exported capsule (host memory, on this CPU) to NumPy."""

    def __init__(self, capsule: Any):
        self.capsule = capsule

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


_pool = cuda.MemoryPool()
_pinned_pool = cuda.PinnedMemoryPool()


def get_default_memory_pool() -> cuda.MemoryPool:
    return _pool


def get_default_pinned_memory_pool() -> cuda.PinnedMemoryPool:
    return _pinned_pool


def is_available() -> bool:
    return cuda.is_available()


def modules() -> dict[str, Any]:
    """The sys.modules entries that make the stand-in `cupy` and `cupyx`."""
    return {
        "cupy": sys.modules[__name__],
        "cupy.cuda": cuda,
        "cupy.cuda.runtime": runtime,
        "cupy.random": random,
        "cupy.linalg": linalg,
        "cupyx": _cupyx,
        "cupyx.scipy": _cupyx.scipy,
        "cupyx.scipy.special": _cupyx.special,
    }


def install() -> None:
    """Make `import cupy` and `import cupyx` give the stand-in (do it before anything imports
    them; a real CuPy already imported is never replaced)."""
    for name, module in modules().items():
        if sys.modules.get(name, module) is not module:
            raise RuntimeError(f"install: a real {name} is already imported")
    sys.modules.update(modules())


def installed() -> bool:
    return sys.modules.get("cupy") is sys.modules[__name__]


__all__ = [
    "SYNCS",
    "CUDARuntimeError",
    "ElementwiseKernel",
    "Flags",
    "get_device_count",
    "install",
    "installed",
    "modules",
    "ndarray",
    "reset_sync_count",
    "set_device_count",
    "sync_count",
    "ufunc",
]
