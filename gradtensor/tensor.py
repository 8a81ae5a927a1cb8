"""Tensor: an array, its gradient, and the node that made it.

This module sits below the engine and the ops, which make and read Tensors; the methods that call
ops (operators, `x.sum()`, `x.to()`, in-place writes, `backward`) are given to the class by
gradtensor.ops.methods, above them. It also holds the constructors (`tensor`, `zeros`, `randn`,
...) and dtypes, which need nothing but the backend.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import backend
from .autograd.graph import RECORDING, recorder, values_read
from .backend import CPU, Device
from .errors import public

# ----------------------------------------------------------------------------------------------
# dtypes: NumPy's dtype objects, so they work with NumPy, CuPy and Numba alike.

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")
_DTYPES = {d.name: d for d in (float16, float32, float64, int32, int64, bool_)}
_DTYPES.update({"float": float32, "double": float64, "half": float16, "long": int64, "int": int64})


class _Defaults:
    float_dtype = float32


def set_default_dtype(dtype: Any) -> None:
    """The dtype Python floats and float64 NumPy data become: `gt.set_default_dtype(gt.float64)`."""
    d = as_dtype(dtype)
    if d.kind != "f":
        raise TypeError(
            f"set_default_dtype: only floating-point dtypes can be the default, not {d}"
        )
    _Defaults.float_dtype = d


def get_default_dtype() -> np.dtype:
    return _Defaults.float_dtype


def as_dtype(dtype: Any) -> np.dtype:
    """Accept gt/NumPy dtypes, their names, and Python's float/int/bool."""
    if isinstance(dtype, np.dtype):
        return dtype
    if dtype is float:
        return _Defaults.float_dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None


# ----------------------------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate through them.

    >>> x = gt.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward(); x.grad
    tensor([2., 4.], dtype=float32)
    """

    __slots__ = (
        "data",
        "requires_grad",
        "_grad",
        "_node",
        "_idx",
        "_version",
        "_view",
        "__weakref__",
    )
    __array_ufunc__ = None  # make NumPy defer: ndarray + Tensor calls Tensor.__radd__
    __hash__ = object.__hash__  # == is elementwise, yet tensors stay usable as dict keys

    def __init__(
        self, data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
    ):
        t = tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)
        self.data, self.requires_grad, self._grad = t.data, t.requires_grad, None
        self._node, self._idx, self._version, self._view = None, 0, [0], False

    @property
    def grad(self) -> Tensor | None:
        """The gradient backward() accumulated here (None until one arrives)."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        self._grad = value
        if RECORDING and (rec := recorder()) is not None:
            rec.set_grad(self, value)  # gt.compile replays the assignment

    @staticmethod
    def _make(data: Any, node: Any = None, idx: int = 0) -> Tensor:
        """Wrap an array without copying or checking (for ops, which already made it right)."""
        t = _new_tensor(Tensor)
        t.data = data
        t.requires_grad = node is not None
        t._grad = None
        t._node = node
        t._idx = idx
        t._version = [0]
        t._view = False
        return t

    # -- attributes ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None) -> Any:
        """The shape, as PyTorch's x.size(); x.size(d) is the length of dimension d."""
        if dim is None:
            return self.data.shape
        if (
            isinstance(dim, bool)
            or not isinstance(dim, int)
            or not -self.ndim <= dim < max(self.ndim, 1)
        ):
            raise IndexError(f"size: dimension {dim!r} is out of range for a {self.ndim}-d tensor")
        return self.data.shape[dim] if self.ndim else 1

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    nelement = numel

    def dim(self) -> int:
        """The number of dimensions (as x.ndim)."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> Device:
        return self._device

    @property
    def _device(self) -> Device:
        return CPU if type(self.data) is np.ndarray else backend.device_of_array(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        return self._node

    # -- conversion ----------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared, not copied); CPU tensors only."""
        if RECORDING:
            values_read("numpy()")
        if self._device.type != "cpu":
            raise TypeError(
                f"numpy: this tensor is on {self.device}; call .cpu() first to copy it to the host"
            )
        if self.requires_grad:
            raise RuntimeError(
                "numpy: this tensor requires grad; call .detach().numpy() to get its values "
                "without the graph"
            )
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # As .numpy() (and PyTorch): NumPy would read the values and silently drop the graph.
        if RECORDING:
            values_read("NumPy's conversion (np.asarray)")
        if self.requires_grad:
            raise RuntimeError(
                "numpy: this tensor requires grad, and NumPy would drop its graph; use "
                "gradtensor.numpy's functions, or .detach() to use its values"
            )
        data = backend.to_device(self.data, CPU)
        return data if dtype is None else data.astype(dtype)

    # -- zero-copy interop: NumPy, CuPy, PyTorch, JAX and Numba read the same memory -------------
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple:
        return self.data.__dlpack_device__()

    @property
    def __cuda_array_interface__(self) -> dict:
        if not backend.is_cuda_array(self.data):
            raise AttributeError(
                f"__cuda_array_interface__: this tensor is on {self.device}, not a CUDA device"
            )
        return self.data.__cuda_array_interface__

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if RECORDING:
            values_read("item() (or float(), int(), bool(), a format)")
        if self.numel() != 1:
            raise ValueError(
                f"item: only one-element tensors convert to a number, shape {self.shape}"
            )
        return self.data.reshape(()).item() if self._device.type == "cpu" else self.data.item()

    def tolist(self) -> Any:
        if RECORDING:
            values_read("tolist()")
        return backend.to_device(self.data, CPU).tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.numel() != 1:
            raise TypeError(
                f"only integer tensors of one element can be used as an index, "
                f"not {self.dtype} of shape {self.shape}"
            )
        return int(self.item())

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __format__(self, spec: str) -> str:
        """`f"{loss:.4f}"`: a one-element tensor formats as its number (as in PyTorch)."""
        if self.numel() == 1 and (spec or self.ndim == 0):
            return format(self.item(), spec)
        if spec:
            raise TypeError(
                f"format: only a one-element tensor takes a format spec ({spec!r}); this one "
                f"has shape {self.shape}"
            )
        return str(self)

    def __repr__(self) -> str:
        data = backend.to_device(self.data, CPU)
        body = np.array2string(data, separator=", ", prefix="tensor(", threshold=1000, precision=4)
        extras = []
        if self.dtype not in (_Defaults.float_dtype, int64, bool_) or self.dtype.kind == "f":
            extras.append(f"dtype={self.dtype}")
        if self._device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    # -- autograd ------------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same data, cut from the graph (changes to one show in the other)."""
        t = Tensor._make(self.data)
        t._version = self._version
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(
                f"requires_grad_: only floating-point tensors can require gradients, "
                f"not {self.dtype}"
            )
        if not requires_grad and self._node is not None:
            raise RuntimeError(
                "requires_grad_: a non-leaf tensor always requires grad; use .detach()"
            )
        self.requires_grad = requires_grad
        return self

    def _write(self, values: Any) -> Tensor:
        """Write `values` into this tensor's memory outside the graph (init, load_state_dict)."""
        self.data[...] = values
        if RECORDING and (rec := recorder()) is not None:
            rec.write(self, values)
        self._changed()
        return self

    def _changed(self) -> None:
        """Its memory was changed in place: a graph that saved the old values must refuse them."""
        self._version[0] += 1

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in `.grad` after backward."""
        if self._node is None:
            return
        if self._node.retained is None:
            self._node.retained = {}
        self._node.retained[self._idx] = weakref.ref(self)


_new_tensor = object.__new__


# ----------------------------------------------------------------------------------------------
# Constructors.


def _infer_dtype(arr: Any, dtype: Any) -> np.dtype:
    if dtype is not None:
        return as_dtype(dtype)
    kind = arr.dtype.kind
    if kind == "f":
        # float64 is what NumPy makes of Python floats; it becomes the default float dtype.
        return _Defaults.float_dtype if arr.dtype == float64 else arr.dtype
    if kind in "iub":
        return arr.dtype
    raise TypeError(
        f"tensor: cannot make a tensor from data of dtype {arr.dtype} ({arr.dtype.kind})"
    )


def _check_requires_grad(op: str, dtype: np.dtype, requires_grad: bool) -> None:
    if requires_grad and dtype.kind != "f":
        raise TypeError(f"{op}: only floating-point tensors can require gradients, not {dtype}")


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor holding a copy of `data`: `gt.tensor([[1.0, 2.0]], requires_grad=True)`."""
    if isinstance(data, Tensor):
        data = data.data
    on_gpu = backend.is_cuda_array(data)
    if device is None and on_gpu:
        dev = backend.device_of_array(data)  # a GPU array stays on its GPU, as a tensor does
    else:
        dev = backend.device(device)
        if not on_gpu:
            try:
                data = np.asarray(data)
            except ValueError as exc:
                raise ValueError(
                    f"tensor: cannot make a tensor from {type(data).__name__}: {exc}"
                ) from None
    dt = _infer_dtype(data, dtype)
    _check_requires_grad("tensor", dt, requires_grad)
    arr = backend.asarray(data, dt, dev)
    if arr is data or (type(arr) is type(data) is np.ndarray and np.may_share_memory(arr, data)):
        arr = arr.copy()
    t = Tensor._make(arr)
    t.requires_grad = bool(requires_grad)
    return t


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing memory with a NumPy array (no copy, dtype kept)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(arr).__name__}")
    _infer_dtype(arr, arr.dtype)
    return Tensor._make(arr)


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"the shape {shape} must be made of non-negative integers")
    return tuple(int(n) for n in shape)


def _filled(
    fill: Any, shape: tuple, dtype: Any, requires_grad: bool, device: Any, default: Any = None
) -> Tensor:
    dt = as_dtype(dtype) if dtype is not None else (default or _Defaults.float_dtype)
    _check_requires_grad("tensor", dt, requires_grad)
    dev = backend.device(device)
    xp = backend.xp_of_device(dev)
    with backend.on(dev):
        t = Tensor._make(fill(xp, _shape(shape), dt))
    t.requires_grad = requires_grad
    return t


def zeros(
    *shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    """A tensor of zeros: `gt.zeros(2, 3)` or `gt.zeros((2, 3))`."""
    return _filled(lambda xp, s, d: xp.zeros(s, d), shape, dtype, requires_grad, device)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _filled(lambda xp, s, d: xp.ones(s, d), shape, dtype, requires_grad, device)


def empty(
    *shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return _filled(lambda xp, s, d: xp.empty(s, d), shape, dtype, requires_grad, device)


def full(
    shape: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    """A tensor filled with one value: `gt.full((2, 2), 7.0)`."""
    if isinstance(shape, int):
        shape = (shape,)
    default = None
    if dtype is None and isinstance(fill_value, bool):
        default = bool_
    elif dtype is None and isinstance(fill_value, int):
        default = int64
    return _filled(
        lambda xp, s, d: xp.full(s, fill_value, d),
        tuple(shape),
        dtype,
        requires_grad,
        device,
        default,
    )


def _like(fill: Any, t: Tensor, dtype: Any, requires_grad: bool, device: Any) -> Tensor:
    return _filled(
        fill,
        t.shape,
        dtype if dtype is not None else t.dtype,
        requires_grad,
        device if device is not None else t.device,
    )


def zeros_like(
    t: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return _like(lambda xp, s, d: xp.zeros(s, d), t, dtype, requires_grad, device)


def ones_like(
    t: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return _like(lambda xp, s, d: xp.ones(s, d), t, dtype, requires_grad, device)


def full_like(
    t: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return _like(lambda xp, s, d: xp.full(s, fill_value, d), t, dtype, requires_grad, device)


def arange(
    start: Any,
    stop: Any = None,
    step: Any = 1,
    dtype: Any = None,
    requires_grad: bool = False,
    device: Any = None,
) -> Tensor:
    """Evenly spaced values, as `numpy.arange`: `gt.arange(5)`, `gt.arange(0, 1, 0.25)`."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("the step must not be zero")
    ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
    dt = as_dtype(dtype) if dtype is not None else (int64 if ints else _Defaults.float_dtype)
    _check_requires_grad("arange", dt, requires_grad)
    dev = backend.device(device)
    with backend.on(dev):
        t = Tensor._make(backend.xp_of_device(dev).arange(start, stop, step, dtype=dt))
    t.requires_grad = requires_grad
    return t


def linspace(
    start: float,
    end: float,
    steps: int,
    dtype: Any = None,
    requires_grad: bool = False,
    device: Any = None,
) -> Tensor:
    """`steps` evenly spaced values from start to end, both included (PyTorch's linspace)."""
    return _filled(lambda xp, s, d: xp.linspace(start, end, steps, dtype=d), (), dtype,
                   requires_grad, device)  # fmt: skip


def logspace(
    start: float,
    end: float,
    steps: int,
    base: float = 10.0,
    dtype: Any = None,
    requires_grad: bool = False,
    device: Any = None,
) -> Tensor:
    """base ** linspace(start, end, steps) (PyTorch's logspace)."""
    return _filled(lambda xp, s, d: xp.logspace(start, end, steps, base=base, dtype=d), (),
                   dtype, requires_grad, device)  # fmt: skip


def empty_like(
    t: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return _like(lambda xp, s, d: xp.empty(s, d), t, dtype, requires_grad, device)


def eye(
    n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return _filled(lambda xp, s, d: xp.eye(n, m, dtype=d), (), dtype, requires_grad, device)


def randn(
    *shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    """Standard normal samples from the generator seeded by `gt.manual_seed`."""
    return _random(backend.random_normal, shape, dtype, requires_grad, device)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Uniform samples in [0, 1) from the generator seeded by `gt.manual_seed`."""
    return _random(backend.random_uniform, shape, dtype, requires_grad, device)


def randint(low: int, high: int, size: Any, device: Any = None) -> Tensor:
    """Random integers in [low, high): `gt.randint(0, 10, (2, 3))`."""
    if high <= low:
        raise ValueError(f"the range [{low}, {high}) is empty")
    size = _shape(size if isinstance(size, (tuple, list)) else (size,))
    dev = backend.device(device)
    return Tensor._make(_drawn(lambda: _integers(dev, low, high, size)))


def _integers(dev: Device, low: int, high: int, size: tuple) -> Any:
    with backend.on(dev):
        return backend.rng(dev).integers(low, high, size=size).astype(int64)


def _drawn(draw: Any) -> Any:
    """draw(): random samples; a step gt.compile records draws them again at every replay."""
    a = draw()
    if RECORDING:
        rec = recorder()
        if rec is not None:
            rec.source(draw, a)
    return a


def _random(draw: Any, shape: tuple, dtype: Any, requires_grad: bool, device: Any) -> Tensor:
    dt = as_dtype(dtype) if dtype is not None else _Defaults.float_dtype
    if dt.kind != "f":
        raise TypeError(f"random tensors are floating point; {dt} was asked for")
    _check_requires_grad("tensor", dt, requires_grad)
    shape, dev = _shape(shape), backend.device(device)
    t = Tensor._make(_drawn(lambda: draw(shape, dt, dev)))
    t.requires_grad = requires_grad
    return t


# Their errors name them (the first argument of a constructor is not a tensor).
for _name in (
    "tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
    "full_like", "arange", "eye", "randn", "rand", "randint", "set_default_dtype",
):  # fmt: skip
    globals()[_name] = public(_name, globals()[_name], tensor_first=False)
