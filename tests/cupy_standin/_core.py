"""The stand-in's arrays: a NumPy array behind a wall that only explicit transfers cross.

Real CuPy semantics copied here (cupy/_core/core.pyx, _kernel.pyx, _routines_indexing.pyx, v14):
device maths refuses NumPy arrays (`Unsupported type`) but takes Python and NumPy scalars;
`__array__` raises; host data enters through `cupy.asarray` (a copy) or an index; results are
always arrays, never scalars; a GPU never warns about floating-point errors.
"""

from __future__ import annotations

import collections
import functools
import importlib
import math
import threading
import warnings
import weakref
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# Device-to-host synchronisations, counted by kind ("get", "item", "bool", "tolist", ...).

SYNCS: collections.Counter = collections.Counter()


def sync_count() -> int:
    """How many device-to-host syncs happened since the last reset."""
    return sum(SYNCS.values())


def reset_sync_count() -> None:
    SYNCS.clear()


def _host(x: ndarray, kind: str) -> np.ndarray:
    _not_capturing(kind)
    SYNCS[kind] += 1
    return x._a


# ----------------------------------------------------------------------------------------------
# Stream capture. While a stream captures, each device operation is noted (its function, its
# arguments and its result) as well as run; a captured graph's launch runs them again on the same
# arrays and writes each result into the array the capture made, as a CUDA graph replays its
# kernels on the memory they were given: the host code around them is not run again. A transfer
# between host and device while capturing fails, as on a GPU. A GPU runs nothing it captures:
# so that code which counts on that is tested, the arrays that existed before the capture get
# back at its end the values they had at its start.


class _Capture:
    ops: list | None = None  # (function, args, kwargs, result) of each device operation
    depth = 0  # inside a noted operation: the operations it calls are part of it
    saved: dict = {}  # id -> (array from before the capture, its values then)
    made: set = set()  # ids of the arrays the captured operations made

    @classmethod
    def begin(cls) -> None:
        cls.ops, cls.saved, cls.made = [], {}, set()

    @classmethod
    def end(cls) -> list | None:
        """The captured operations; every array from before the capture has its old values."""
        ops, cls.ops = cls.ops, None
        for a, values in reversed(list(cls.saved.values())):
            a._a[...] = values
        cls.saved, cls.made = {}, set()
        return ops

    @classmethod
    def keep(cls, args: Any) -> None:
        for a in args:
            if isinstance(a, (tuple, list)):
                cls.keep(a)
            elif isinstance(a, ndarray) and id(a) not in cls.saved and id(a) not in cls.made:
                cls.saved[id(a)] = (a, a._a.copy())


def _not_capturing(what: str) -> None:
    if _Capture.ops is not None:
        raise CUDARuntimeError(
            900, f"cudaErrorStreamCaptureUnsupported: {what} is not permitted while capturing"
        )


def _device_op(fn: Any) -> Any:
    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        if _Capture.ops is None or _Capture.depth:
            return fn(*args, **kwargs)
        _Capture.keep((*args, *kwargs.values()))
        _Capture.depth += 1
        try:
            r = fn(*args, **kwargs)
        finally:
            _Capture.depth -= 1
        _Capture.ops.append((fn, args, kwargs, r))
        for a in r if isinstance(r, (tuple, list)) else (r,):
            if isinstance(a, ndarray) and id(a) not in _Capture.saved:
                _Capture.made.add(id(a))
        return r

    return op


def replay_captured(ops: list) -> None:
    """Run captured operations again, each result into the memory its capture made."""
    for fn, args, kwargs, r in ops:
        _settle(r, fn(*args, **kwargs))


def _settle(r: Any, again: Any) -> None:
    if isinstance(r, ndarray):
        if r._base is None and again is not r:  # made by the operation (a view made nothing)
            r._a[...] = again._a
    elif isinstance(r, (tuple, list)):
        for a, b in zip(r, again):
            _settle(a, b)


# ----------------------------------------------------------------------------------------------
# Devices: how many GPUs the stand-in pretends to have (0: CuPy installed, no usable GPU).


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, msg: str):
        self.status = status
        super().__init__(msg)


class _Config:
    device_count = 1


def set_device_count(n: int) -> None:
    """Pretend to have n GPUs; with 0, every device call raises CUDARuntimeError like CuPy."""
    _Config.device_count = int(n)


def get_device_count() -> int:
    return _Config.device_count


class _Local(threading.local):
    def __init__(self) -> None:
        self.device = 0  # CuPy's current device is per thread
        self.streams: list = []  # `with stream:` stack


_local = _Local()


def _check_device(i: int) -> None:
    if _Config.device_count == 0:
        raise CUDARuntimeError(100, "cudaErrorNoDevice: no CUDA-capable device is detected")
    if not 0 <= i < _Config.device_count:
        raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")


def _current_device() -> int:
    _check_device(_local.device)
    return _local.device


# ----------------------------------------------------------------------------------------------
# Memory: each array that owns its memory is counted, rounded as CuPy's pool rounds (512 B).


class _Pool:
    used = 0


_owners: dict[int, weakref.ref] = {}  # id(NumPy root array) -> the stand-in array owning it


def _release(key: int, nbytes: int) -> None:
    _owners.pop(key, None)
    _Pool.used -= nbytes


def _root(a: np.ndarray) -> np.ndarray:
    while True:
        b = a.base
        if not isinstance(b, np.ndarray):
            b = getattr(b, "base", None)  # as_strided's view holds its array behind a DummyArray
            if not isinstance(b, np.ndarray):
                return a
        a = b


_UNSUPPORTED_KINDS = frozenset("OUSVMm")


def _wrap(a: Any, dev: int, account: bool = True) -> ndarray:
    """A stand-in array around NumPy's result `a` (a scalar becomes a 0-d array, as in CuPy)."""
    return _adopt(object.__new__(ndarray), a, dev, account)


def _adopt(out: ndarray, a: Any, dev: int, account: bool = True) -> ndarray:
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.dtype.kind in _UNSUPPORTED_KINDS:
        raise ValueError(f"Unsupported dtype {a.dtype}")
    out._a, out._dev, out._base = a, dev, None
    root = _root(a)
    ref = _owners.get(id(root))
    owner = ref() if ref is not None else None
    if owner is not None:
        out._base = owner  # a view: CuPy's .base is the array that owns the memory
    else:
        nbytes = -(-root.nbytes // 512) * 512 if account else 0
        _owners[id(root)] = weakref.ref(out)
        _Pool.used += nbytes
        weakref.finalize(out, _release, id(root), nbytes).atexit = False
    return out


def _wrap_all(r: Any, dev: int) -> Any:
    if isinstance(r, (np.ndarray, np.generic)):
        return _wrap(r, dev)
    if isinstance(r, (tuple, list)):
        return type(r)(_wrap_all(v, dev) for v in r)
    return r


# ----------------------------------------------------------------------------------------------
# Operands.

_SCALARS = (int, float, bool, complex, np.generic)
_PEER = (
    "The device where the array resides ({}) is different from the current device ({}). "
    "Peer access is unavailable between these devices."
)


def _unsupported(x: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(x)}")


def _operand(x: Any, dev: int) -> Any:
    """A ufunc operand: a device array or a scalar; host arrays, lists and the rest refused."""
    if isinstance(x, ndarray):
        if x._dev != dev:
            raise ValueError(_PEER.format(x._dev, dev))
        return x._a
    if isinstance(x, _SCALARS):
        return x
    if not isinstance(x, np.ndarray) and hasattr(x, "__cuda_array_interface__"):
        return _from_cai(x)._a
    raise _unsupported(x)


def _arg(x: Any, dev: int) -> Any:
    """A function argument: device arrays unwrapped, host arrays refused, the rest (axes, None,
    dtypes, shapes) passed on."""
    if isinstance(x, ndarray):
        if x._dev != dev:
            raise ValueError(_PEER.format(x._dev, dev))
        return x._a
    if isinstance(x, np.ndarray):
        raise _unsupported(x)
    if isinstance(x, (tuple, list)):
        return type(x)(_arg(v, dev) for v in x)
    if hasattr(type(x), "__cuda_array_interface__") and hasattr(x, "__cuda_array_interface__"):
        return _from_cai(x)._a
    return x


def _key(key: Any) -> Any:
    """An index: device arrays unwrapped; host index arrays and lists are allowed (CuPy copies
    them to the device)."""
    if isinstance(key, tuple):
        return tuple(_key(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if hasattr(type(key), "__cuda_array_interface__") and hasattr(key, "__cuda_array_interface__"):
        return _from_cai(key)._a
    return key


def _advanced(key: Any) -> bool:
    items = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (np.ndarray, list)) for k in items)


class _HostMemory:
    """Exposes a __cuda_array_interface__ pointer to NumPy; keeps its owner alive."""

    def __init__(self, owner: Any, cai: dict):
        self.owner = owner
        self.__array_interface__ = {
            "shape": tuple(cai["shape"]),
            "typestr": cai["typestr"],
            "data": (cai["data"][0], False),
            "strides": cai.get("strides"),
            "version": 3,
        }


def _from_cai(obj: Any) -> ndarray:
    """A zero-copy view of an object exporting __cuda_array_interface__ (its memory is, on this
    CPU-only stand-in, always host memory of another stand-in array)."""
    if isinstance(obj, ndarray):
        return obj
    cai = obj.__cuda_array_interface__
    shape = tuple(cai["shape"])
    if cai["data"][0] == 0 or math.prod(shape) == 0:
        host = np.empty(shape, np.dtype(cai["typestr"]))
    else:
        host = np.asarray(_HostMemory(obj, cai))
    return _wrap(host, _current_device(), account=False)  # CuPy's UnownedMemory


def _errstate() -> Any:
    return np.errstate(all="ignore")


# ----------------------------------------------------------------------------------------------
# ufuncs.


class ufunc:
    """A CuPy ufunc: NumPy's loop behind the operand checks of CuPy's kernels."""

    _AT = {"add": "add", "subtract": "sub", "maximum": "max", "minimum": "min"}

    def __init__(self, np_ufunc: np.ufunc):
        self._uf = np_ufunc
        self.__name__ = self.name = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.types = np_ufunc.types

    def __repr__(self) -> str:
        return f"<ufunc 'cupy_{self.name}'>"

    @_device_op
    def __call__(self, *args: Any, out: Any = None, **kwargs: Any) -> Any:
        if len(args) > self.nin:  # out given positionally
            args, out = args[: self.nin], args[self.nin]
        dev = _current_device()
        ins = [_operand(a, dev) for a in args]
        if isinstance(out, tuple):
            (out,) = out
        if out is not None:
            if not isinstance(out, ndarray):
                raise TypeError(f"Output arrays must be cupy.ndarray, not {type(out)}")
            kwargs["out"] = _operand(out, dev)
        with _errstate():
            r = self._uf(*ins, **kwargs)
        return out if out is not None else _wrap_all(r, dev)

    @_device_op
    def outer(self, a: Any, b: Any, **kwargs: Any) -> ndarray:
        dev = _current_device()
        with _errstate():
            return _wrap(self._uf.outer(_operand(a, dev), _operand(b, dev), **kwargs), dev)

    def reduce(self, a: Any, axis: Any = 0, dtype: Any = None, out: Any = None, keepdims=False):
        if self.name == "add":
            return a.sum(axis=axis, dtype=dtype, out=out, keepdims=keepdims)
        if self.name == "multiply":
            return a.prod(axis=axis, dtype=dtype, out=out, keepdims=keepdims)
        raise NotImplementedError(f"`cupy_{self.name}.reduce` is not supported yet")

    def accumulate(self, a: Any, axis: int = 0, dtype: Any = None, out: Any = None) -> ndarray:
        if self.name == "add":
            return a.cumsum(axis=axis, dtype=dtype, out=out)
        if self.name == "multiply":
            return a.cumprod(axis=axis, dtype=dtype, out=out)
        raise NotImplementedError(f"`cupy_{self.name}.accumulate` is not supported yet")

    def at(self, a: Any, indices: Any, b: Any = None) -> None:
        op = self._AT.get(self.name)
        if op is None:
            raise NotImplementedError(f"`cupy_{self.name}.at` is not supported yet")
        _scatter(a, indices, b, op)


# The dtypes CuPy's atomics allow for `ufunc.at` with integer index arrays (CuPy 14.0).
_AT_DTYPES = {
    "add": ("int32", "float16", "float32", "float64", "uint32", "uint64"),
    "sub": ("int32", "uint32"),
    "max": ("int32", "int64", "float32", "float64", "uint32", "uint64"),
    "min": ("int32", "int64", "float32", "float64", "uint32", "uint64"),
}
_AT_UFUNC = {"add": np.add, "sub": np.subtract, "max": np.maximum, "min": np.minimum}


@_device_op
def _scatter(a: ndarray, slices: Any, value: Any, op: str) -> None:
    """CuPy's _scatter_op: repeated indices accumulate; host values only with index arrays."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a)})")
    dev = a._dev
    key = _key(slices)
    if _advanced(key):
        v = value._a if isinstance(value, ndarray) else np.asarray(value)  # core.array(value)
        items = key if isinstance(key, tuple) else (key,)
        if not any(isinstance(k, np.ndarray) and k.dtype == bool for k in items):
            if a.dtype.name not in _AT_DTYPES[op]:
                names = ", ".join(_AT_DTYPES[op])
                raise TypeError(
                    f"cupy.{_AT_UFUNC[op].__name__}.at only supports {names} as data type"
                )
        v = v.astype(a.dtype, copy=False)
    else:
        v = _operand(value, dev)
    with _errstate():
        _AT_UFUNC[op].at(a._a, key, v)


class _TableUfunc(ufunc):
    """A ufunc whose loops follow CuPy's own type table where it differs from NumPy's."""

    def __init__(self, name: str, fn: Any, table: tuple[str, ...]):
        self._fn = np.frompyfunc(fn, 1, 1)
        self.__name__ = self.name = name
        self.nin, self.nout, self.nargs = 1, 1, 2
        self.types = table

    @_device_op
    def __call__(self, x: Any, out: Any = None, dtype: Any = None) -> Any:
        dev = _current_device()
        a = _operand(x, dev)
        in_dt = np.result_type(a)
        for loop in self.types:
            if np.can_cast(in_dt, loop[0], "safe"):
                break
        else:
            raise TypeError(f"Wrong type ({in_dt}) of arguments for cupy_{self.name}")
        y = np.asarray(self._fn(np.asarray(a, np.float64)), np.float64)
        y = y.astype(dtype or np.dtype(loop[-1]))
        if out is not None:
            out._a[...] = y
            return out
        return _wrap(y, dev)


# cupyx.scipy.special: 'e->d' first, so float16 comes back as float64 (a real CuPy quirk).
erf = _TableUfunc("erf", math.erf, ("e->d", "f->f", "d->d"))
erfc = _TableUfunc("erfc", math.erfc, ("e->d", "f->f", "d->d"))

UFUNCS = {n: ufunc(getattr(np, n)) for n in dir(np) if isinstance(getattr(np, n), np.ufunc)}


def _package() -> Any:
    return importlib.import_module(__name__.rpartition(".")[0])


# ----------------------------------------------------------------------------------------------
# The array.


def _binary(name: str) -> tuple:
    def op(self: ndarray, other: Any) -> Any:
        if not isinstance(other, ndarray) and _should_use_rop(other):
            return NotImplemented
        return UFUNCS[name](self, other)

    def rop(self: ndarray, other: Any) -> Any:
        return UFUNCS[name](other, self)

    def iop(self: ndarray, other: Any) -> ndarray:
        return UFUNCS[name](self, other, out=self)

    return op, rop, iop


def _should_use_rop(other: Any) -> bool:
    # CuPy's rule: defer to an operand that opts out of ufuncs (a gradtensor Tensor does) or,
    # without __array_ufunc__, has a higher __array_priority__.
    uf = getattr(other, "__array_ufunc__", _should_use_rop)
    if uf is not _should_use_rop:
        return uf is None
    return getattr(other, "__array_priority__", 0) > ndarray.__array_priority__


def _never_equal(other: Any) -> bool:
    # None, or an object with object's own __eq__: CuPy answers all-False (not an error).
    return other is None or (type(other).__eq__ is object.__eq__ and not isinstance(other, ndarray))


def _method(name: str) -> Any:
    @_device_op
    def method(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        dev = self._dev
        args = _arg(args, dev)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _operand(out, dev)
        with _errstate():
            r = getattr(self._a, name)(*args, **kwargs)
        return out if out is not None else _wrap_all(r, dev)

    method.__name__ = name
    return method


class Flags:
    """CuPy's flags: c_contiguous, f_contiguous and owndata only (no `writeable`)."""

    def __init__(self, c: bool, f: bool, own: bool):
        self.c_contiguous, self.f_contiguous, self.owndata = c, f, own

    def __getitem__(self, name: str) -> bool:
        if name not in ("C_CONTIGUOUS", "F_CONTIGUOUS", "OWNDATA"):
            raise KeyError(f"{name} is not defined for cupy.ndarray.flags")
        return getattr(self, name.lower())


class MemoryPointer:
    def __init__(self, ptr: int, device_id: int):
        self.ptr, self.device_id = ptr, device_id

    @property
    def device(self) -> Any:
        return _package().cuda.Device(self.device_id)


class ndarray:
    """A device array: NumPy data that no host code can read without an explicit transfer."""

    __slots__ = ("_a", "_dev", "_base", "__weakref__")
    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C"):  # fmt: skip
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in allocates its own memory")
        _adopt(self, np.empty(shape, dtype, order=order), _current_device())

    # -- attributes ----------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    base = property(lambda self: self._base)
    T = property(lambda self: _wrap(self._a.T, self._dev))
    mT = property(lambda self: _wrap(self._a.mT, self._dev))
    real = property(lambda self: _wrap(self._a.real, self._dev))
    imag = property(lambda self: _wrap(self._a.imag, self._dev))

    @property
    def flags(self) -> Flags:
        f = self._a.flags
        return Flags(f.c_contiguous, f.f_contiguous, self._base is None)

    @property
    def device(self) -> Any:
        return _package().cuda.Device(self._dev)

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._a.__array_interface__["data"][0], self._dev)

    @property
    def __cuda_array_interface__(self) -> dict:
        stream = _package().cuda.get_current_stream().ptr
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "descr": self.dtype.descr,
            "stream": stream or 1,  # CAI v3 forbids 0: the legacy default stream is 1
            "version": 3,
            "strides": None if self._a.flags.c_contiguous else self.strides,
            "data": (self.data.ptr if self.size else 0, False),
        }

    # -- explicit transfers (each one counted) --------------------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True):
        a = _host(self, "get")
        if out is not None:
            out[...] = a
            return out
        return np.array(a, order=order)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape or dtype mismatch")
        self._a[...] = arr

    def item(self) -> Any:
        return _host(self, "item").item()

    def tolist(self) -> Any:
        return _host(self, "tolist").tolist()

    def __bool__(self) -> bool:
        if self.size == 0:
            warnings.warn(
                "The truth value of an empty array is ambiguous. Returning False, but in future "
                "this will result in an error. Use `array.size > 0` to check that an array is "
                "not empty.",
                DeprecationWarning,
                stacklevel=2,
            )
            return False
        if self.size > 1:
            raise ValueError(
                "The truth value of an array with more than one element is ambiguous. "
                "Use a.any() or a.all()"
            )
        return bool(_host(self, "bool"))

    def __int__(self) -> int:
        return int(_host(self, "int"))

    def __float__(self) -> float:
        return float(_host(self, "float"))

    def __complex__(self) -> complex:
        return complex(_host(self, "complex"))

    def __repr__(self) -> str:
        return repr(_host(self, "repr"))

    def __str__(self) -> str:
        return str(_host(self, "repr"))

    def __format__(self, spec: str) -> str:
        return format(_host(self, "repr"), spec)

    def __reduce__(self) -> tuple:
        return _package().array, (np.array(_host(self, "get")),)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    # -- DLPack ----------------------------------------------------------------------------------
    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any:  # fmt: skip
        if dl_device is not None and tuple(dl_device) == (1, 0):  # an explicit copy to the host
            if copy is False:
                raise ValueError("GPU memory cannot be exported to CPU without copy.")
            return np.array(_host(self, "dlpack")).__dlpack__(max_version=max_version)
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError("unsupported device requested.")
        if copy is True:
            raise BufferError("copy=True only supported for copy to CPU.")
        if stream is None:
            # Only a host consumer (NumPy, a CPU framework) asks without a stream; given real
            # CuPy's CUDA capsule it would refuse it. A CPU capsule here would leak device data.
            raise BufferError(
                "Unsupported device in DLTensor: a CUDA array cannot be imported by a host "
                "library; copy it with .get() first"
            )
        return self._a.__dlpack__(max_version=max_version)

    # -- NumPy protocols ---------------------------------------------------------------------------
    def __array_ufunc__(self, uf: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        pkg = _package()
        func = getattr(pkg, uf.__name__, None) or getattr(pkg._cupyx.special, uf.__name__, None)
        if func is None or method not in ("__call__", "outer", "at", "reduce", "accumulate"):
            return NotImplemented
        if method != "__call__":
            func = getattr(func, method)
        for x in inputs + tuple(kwargs.get("out", ())):
            ok = isinstance(x, (ndarray, np.ndarray, *_SCALARS))
            if not ok and not hasattr(x, "__cuda_array_interface__"):
                return NotImplemented
        return func(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        module = _package()
        try:
            for part in func.__module__.split(".")[1:]:
                module = getattr(module, part)
            fn = getattr(module, func.__name__)
        except AttributeError:
            return NotImplemented
        if fn is func or not all(issubclass(t, (ndarray, np.ndarray)) for t in types):
            return NotImplemented
        return fn(*args, **kwargs)

    # -- container -------------------------------------------------------------------------------
    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    @_device_op
    def __getitem__(self, key: Any) -> ndarray:
        k = _key(key)
        r = self._a[k]
        if not isinstance(r, np.ndarray):  # an element: CuPy gives a 0-d view of it, not a copy
            r = self._a[(*(k if isinstance(k, tuple) else (k,)), Ellipsis)]
        return _wrap(r, self._dev)

    @_device_op
    def __setitem__(self, key: Any, value: Any) -> None:
        k = _key(key)
        if isinstance(value, ndarray):
            v = _operand(value, self._dev)
        elif _advanced(k) or isinstance(value, _SCALARS):
            v = value  # CuPy copies host values given with an index array to the device
        elif hasattr(value, "__cuda_array_interface__"):
            v = _from_cai(value)._a
        else:
            v = np.asarray(value, dtype=self.dtype)
            if v.shape != ():  # CuPy's fill (gh-2079: no assignment from host arrays)
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        with _errstate():
            self._a[k] = v

    def scatter_add(self, slices: Any, value: Any) -> None:
        warnings.warn(
            "`ndarray.scatter_add` is deprecated. Please use `cupy.add.at` instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        _scatter(self, slices, value, "add")

    def scatter_max(self, slices: Any, value: Any) -> None:
        warnings.warn(
            "`ndarray.scatter_max` is deprecated Please use `cupy.maximum.at` instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        _scatter(self, slices, value, "max")

    def scatter_min(self, slices: Any, value: Any) -> None:
        warnings.warn(
            "`ndarray.scatter_min` is deprecated Please use `cupy.minimum.at` instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        _scatter(self, slices, value, "min")

    # -- methods ---------------------------------------------------------------------------------
    @_device_op
    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None,
               copy: bool = True) -> ndarray:  # fmt: skip
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        with _errstate():
            return _wrap(self._a.astype(dtype, order=order, casting=casting or "unsafe"), self._dev)

    @_device_op
    def fill(self, value: Any) -> None:
        if isinstance(value, ndarray):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = _operand(value, self._dev)
        elif np.ndim(value) != 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(value)

    def __copy__(self) -> ndarray:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> ndarray:
        return self.copy()

    def __neg__(self) -> ndarray:
        return UFUNCS["negative"](self)

    def __pos__(self) -> ndarray:
        return UFUNCS["positive"](self)

    def __abs__(self) -> ndarray:
        return UFUNCS["absolute"](self)

    def __invert__(self) -> ndarray:
        return UFUNCS["invert"](self)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        if _never_equal(other):
            return _package().zeros(self.shape, bool)
        return self._compare("equal", other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        if _never_equal(other):
            return _package().ones(self.shape, bool)
        return self._compare("not_equal", other)

    def _compare(self, name: str, other: Any) -> Any:
        if not isinstance(other, ndarray) and _should_use_rop(other):
            return NotImplemented
        return UFUNCS[name](self, other)

    def __lt__(self, other: Any) -> Any:
        return self._compare("less", other)

    def __le__(self, other: Any) -> Any:
        return self._compare("less_equal", other)

    def __gt__(self, other: Any) -> Any:
        return self._compare("greater", other)

    def __ge__(self, other: Any) -> Any:
        return self._compare("greater_equal", other)

    def __divmod__(self, other: Any) -> Any:
        return UFUNCS["divmod"](self, other)

    def __rdivmod__(self, other: Any) -> Any:
        return UFUNCS["divmod"](other, self)


_OPERATORS = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "true_divide",
    "floordiv": "floor_divide",
    "mod": "remainder",
    "pow": "power",
    "matmul": "matmul",
    "lshift": "left_shift",
    "rshift": "right_shift",
    "and": "bitwise_and",
    "or": "bitwise_or",
    "xor": "bitwise_xor",
}
for _op, _name in _OPERATORS.items():
    _f, _rf, _if = _binary(_name)
    setattr(ndarray, f"__{_op}__", _f)
    setattr(ndarray, f"__r{_op}__", _rf)
    setattr(ndarray, f"__i{_op}__", _if)

_METHODS = (
    "all any argmax argmin argpartition argsort choose clip compress conj conjugate copy cumprod "
    "cumsum diagonal dot flatten max mean min nonzero partition prod put ravel repeat reshape "
    "round sort squeeze std sum swapaxes take trace transpose var view"
)
for _name in _METHODS.split():
    setattr(ndarray, _name, _method(_name))
del _op, _name, _f, _rf, _if


def _function(np_fn: Any, name: str | None = None) -> Any:
    """NumPy's function on device arrays: host arrays refused, results on the current device."""

    @_device_op
    def fn(*args: Any, **kwargs: Any) -> Any:
        dev = _current_device()
        out = kwargs.get("out")
        args = _arg(args, dev)
        kwargs = {k: _arg(v, dev) for k, v in kwargs.items()}
        with _errstate():
            r = np_fn(*args, **kwargs)
        return out if out is not None else _wrap_all(r, dev)

    fn.__name__ = fn.__qualname__ = name or np_fn.__name__
    return fn
