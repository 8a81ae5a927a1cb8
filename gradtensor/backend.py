"""The only module that knows NumPy from CuPy: array modules, devices, transfers, random numbers.

Everything else asks this module for `xp` (the array module of a device or an array) and never
imports
NumPy-vs-CuPy specifics itself. CuPy is imported lazily, on the first request for a CUDA device, so
`import gradtensor` stays fast and works on machines without CuPy or a GPU.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any

import numpy as np

_cupy: Any = None  # the cupy module once imported; None until someone asks for CUDA
_cupy_error: str | None = None


class Device:
    """A place where arrays live: `Device("cpu")`, `Device("cuda")`, `Device("cuda:1")`."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu", index: int | None = None):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, num = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: unknown device type {kind!r} (expected 'cpu' or 'cuda')")
        if num:
            if not num.isdigit():
                raise ValueError(f"device: bad device index in {spec!r}")
            index = int(num)
        if kind == "cpu":
            if index not in (None, 0):
                raise ValueError(f"device: the CPU has no index {index}")
            index = None
        elif index is None:
            index = 0
        self.type, self.index = kind, index

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


CPU = Device("cpu")


def device(spec: str | Device | None = None) -> Device:
    """Parse a device: `gt.device("cuda:0")`; None means the CPU."""
    if spec is None:
        return CPU
    dev = spec if isinstance(spec, Device) else Device(spec)
    if dev.type == "cuda":
        _require_cuda(dev)
    return dev


# The CuPy wheel must match the CUDA major the driver supports (`nvidia-smi` shows it).
INSTALL_HINT = (
    'install it with pip install "gradtensor[cuda12]" or "gradtensor[cuda13]", '
    "whichever CUDA version nvidia-smi shows"
)


def _import_cupy() -> Any:
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy

            _cupy = cupy
        except Exception as exc:  # ImportError, or a broken CUDA install raising at import
            _cupy_error = (
                f"CuPy could not be imported ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
            )
    return _cupy


def nccl() -> tuple[Any, Any]:
    """(cupy, cupy.cuda.nccl) for gradtensor.distributed's NCCL backend; ImportError naming what
    is missing where CuPy or its NCCL bindings are not installed."""
    cp = _import_cupy()
    if cp is None:
        raise ImportError(_cupy_error)
    from cupy.cuda import nccl as bindings  # CuPy built without NCCL raises ImportError

    return cp, bindings


def cuda_runtime() -> Any:
    """cupy.cuda (streams, events, graph capture, memory pools), for gt.compile's CUDA graphs;
    ImportError without CuPy."""
    cp = _import_cupy()
    if cp is None:
        raise ImportError(_cupy_error)
    return cp.cuda


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    cp = _import_cupy()
    if cp is None:
        return _cupy_error or f"CuPy is not installed; {INSTALL_HINT}"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        if getattr(exc, "status", None) == 100:  # cudaErrorNoDevice: CuPy's way of saying none
            return "no CUDA GPU is present"
        return f"the CUDA driver reported an error ({exc})"
    if n == 0:
        return "no CUDA GPU is present"
    return None


def cuda_device_count() -> int:
    """Number of CUDA GPUs usable through CuPy (0 without CuPy or a GPU)."""
    if cuda_unavailable_reason() is not None:
        return 0
    return int(_cupy.cuda.runtime.getDeviceCount())


def _require_cuda(dev: Device) -> None:
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"device {dev}: CUDA is not available: {reason}")
    if dev.index >= cuda_device_count():
        raise RuntimeError(f"device {dev}: only {cuda_device_count()} CUDA device(s) present")


def xp_of_device(dev: Device) -> Any:
    """The array module that holds arrays on `dev`."""
    return np if dev.type == "cpu" else _cupy


def is_cuda_array(a: Any) -> bool:
    if _cupy is not None:
        return isinstance(a, _cupy.ndarray)
    # A CuPy array can exist before anyone asked gradtensor for CUDA: whoever made it imported
    # CuPy, so importing it here costs nothing (and NumPy arrays never get this far).
    return type(a) is not np.ndarray and "cupy" in sys.modules and _late_cupy_check(a)


def _late_cupy_check(a: Any) -> bool:
    cp = _import_cupy()
    return cp is not None and isinstance(a, cp.ndarray)


def array_module(a: Any) -> Any:
    """The array module of an array (NumPy for anything that is not a CuPy array)."""
    return _cupy if is_cuda_array(a) else np


def device_of_array(a: Any) -> Device:
    if is_cuda_array(a):
        return Device("cuda", a.device.id)
    return CPU


def array_types() -> tuple[type, ...]:
    if _cupy is None and "cupy" in sys.modules:
        _import_cupy()
    return (np.ndarray,) if _cupy is None else (np.ndarray, _cupy.ndarray)


def on(dev: Device) -> Any:
    """A context in which new arrays are made on `dev` (CuPy allocates on the current GPU)."""
    if dev.type == "cpu":
        return contextlib.nullcontext()
    return _cupy.cuda.Device(dev.index)


def asarray(data: Any, dtype: Any, dev: Device) -> Any:
    """Make an array of `data` on `dev` (a copy only when needed)."""
    if dev.type == "cpu":
        if is_cuda_array(data):
            data = data.get()
        return np.asarray(data, dtype=dtype)
    with on(dev):
        return _cupy.asarray(data, dtype=dtype)


def to_device(a: Any, dev: Device) -> Any:
    """Copy an array to `dev` (no copy when it is already there)."""
    if dev.type == "cpu":
        return a.get() if is_cuda_array(a) else a
    if is_cuda_array(a) and a.device.id == dev.index:
        return a
    with on(dev):
        return _cupy.asarray(a)


def synchronize(dev: Device | None = None) -> None:
    """Wait for all queued work on a CUDA device (a no-op on the CPU, and without a GPU)."""
    if dev is None:
        if cuda_unavailable_reason() is not None:  # CuPy may be installed with no GPU
            return
        dev = Device("cuda")
    if dev.type == "cuda":
        _cupy.cuda.Device(dev.index).synchronize()


def scatter_add(out: Any, index: Any, values: Any) -> None:
    """out[index] += values, adding up repeated indices (add.at, in NumPy and in CuPy >= 12,
    which deprecates ndarray.scatter_add and cupyx.scatter_add for it)."""
    array_module(out).add.at(out, index, values)


NUMBERS: dict[tuple, Any] = {}  # (number, dtype) -> read-only 0-d array (number_as)


def number_as(v: Any, dtype: Any) -> Any:
    """Python number `v` beside a host array of float dtype `dtype`, as the 0-d array NumPy's
    weak promotion would cast it to (a float, or an int exact in every float dtype); else `v`.

    Arithmetic with it gives NumPy's results bit for bit, and costs less: NumPy's own handling
    of a Python number costs more than the op itself on a small array."""
    t = type(v)
    if dtype.kind != "f" or not (t is float or (t is int and -2048 <= v <= 2048)):
        return v
    if v == 0 or v != v:  # -0.0 equals 0.0 and NaN equals nothing: not worth keeping
        return np.array(v, dtype)
    key = (v, dtype)
    a = NUMBERS.get(key)
    if a is None:
        if len(NUMBERS) >= 512:
            NUMBERS.clear()
        a = np.array(v, dtype)
        a.flags.writeable = False
        NUMBERS[key] = a
    return a


_BITS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}
SELECT_MIN = 2048  # from this many elements a host select runs on bits


def where(xp: Any, c: Any, a: Any, b: Any) -> Any:
    """xp.where(c, a, b) for a bool array c, bit for bit. On the host a large one runs as bit
    operations on c as a mask of all-ones or all-zeros words: NumPy's where branches on each
    element, and a mixed condition (a ReLU's) makes those branches mispredict."""
    if xp is not np or type(c) is not np.ndarray or c.dtype != np.bool_ or c.size < SELECT_MIN:
        return xp.where(c, a, b)
    dtype = np.result_type(a, b)
    bits = _BITS.get(dtype.itemsize) if dtype.kind in "biuf" else None
    if bits is None:
        return np.where(c, a, b)
    a, b = np.asarray(a, dtype), np.asarray(b, dtype)
    mask = np.negative(c.view(np.int8), dtype=bits)  # True: -1, every bit set
    out = np.bitwise_and(mask, a.view(bits))
    if b.ndim or b.view(bits):  # b is not +0 (as a ReLU's derivative's is): its bits too
        np.invert(mask, out=mask)
        fits = lambda x, y: x.shape == np.broadcast_shapes(x.shape, y.shape)  # noqa: E731
        rest = np.bitwise_and(mask, b.view(bits), out=mask if fits(mask, b) else None)
        out = np.bitwise_or(out, rest, out=out if fits(out, rest) else None)
    return out.view(dtype)


# ----------------------------------------------------------------------------------------------
# Random numbers: one seeded generator for the CPU and one per GPU, so `manual_seed` makes runs
# repeatable. A GPU's generator is made on its first draw: making it allocates on the device,
# which must not happen in `manual_seed` on a machine with CuPy but no usable GPU.

_np_rng = np.random.default_rng(0)
_cp_rngs: dict[int, Any] = {}  # device index -> CuPy generator (its state lives on that GPU)
_cp_seed = 0


def manual_seed(seed: int) -> None:
    """Seed every generator gradtensor draws from (CPU, and CUDA when it is used)."""
    global _np_rng
    _np_rng = np.random.default_rng(seed)
    manual_seed_cuda(seed)


def manual_seed_cuda(seed: int) -> None:
    global _cp_seed
    _cp_seed = seed
    _cp_rngs.clear()


def rng(dev: Device) -> Any:
    """The random generator for arrays on `dev` (draw from it with `dev` current)."""
    if dev.type == "cpu":
        return _np_rng
    gen = _cp_rngs.get(dev.index)
    if gen is None:
        with on(dev):
            gen = _cp_rngs[dev.index] = _cupy.random.default_rng(_cp_seed)
    return gen


def _draw(dev: Device, method: str, shape: tuple[int, ...], dtype: Any) -> Any:
    with on(dev):
        return getattr(rng(dev), method)(shape, dtype=_rng_dtype(dtype)).astype(dtype, copy=False)


def random_normal(shape: tuple[int, ...], dtype: Any, dev: Device) -> Any:
    return _draw(dev, "standard_normal", shape, dtype)


def random_uniform(shape: tuple[int, ...], dtype: Any, dev: Device) -> Any:
    return _draw(dev, "random", shape, dtype)


def _rng_dtype(dtype: Any) -> Any:
    # Generators draw float32/float64 only; float16 is drawn in float32 and rounded.
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


# ----------------------------------------------------------------------------------------------
# Special functions NumPy lacks. erf is needed by the exact GELU; on the CPU it is a Numba ufunc
# over libm's erf (compiled on first use and cached), on CUDA CuPy's own.

_erf_cpu: Any = None


def erf(a: Any) -> Any:
    if is_cuda_array(a):
        from cupyx.scipy.special import erf as cp_erf

        if a.dtype == np.float16:  # CuPy's erf table maps float16 to float64 ('e->d')
            return cp_erf(a.astype(np.float32)).astype(np.float16)
        return cp_erf(a)
    global _erf_cpu
    if _erf_cpu is None:
        import numba

        from .kernels._numba_cache import ensure_cache

        ensure_cache(__file__)

        @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
        def _erf(v):  # pragma: no cover - compiled
            return math.erf(v)

        _erf_cpu = _erf
    if a.dtype == np.float16:
        return _erf_cpu(a.astype(np.float32)).astype(np.float16)
    return _erf_cpu(a)


def from_dlpack(obj: Any) -> Any:
    """An array sharing memory with a DLPack producer, on the producer's device."""
    dev_type = None
    if hasattr(obj, "__dlpack_device__"):
        dev_type = int(obj.__dlpack_device__()[0])
    if dev_type == 2:  # kDLCUDA
        cp = _import_cupy()
        if cp is None:
            raise RuntimeError(f"from_dlpack: the array is on a CUDA device but {_cupy_error}")
        return cp.from_dlpack(obj)
    return np.from_dlpack(obj)
