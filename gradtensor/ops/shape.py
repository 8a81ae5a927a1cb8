"""Shape ops: reshape, transpose, broadcast_to, concatenate, indexing (primitives) and the
composites built on them (squeeze, expand_dims, flatten, swapaxes, stack, split)."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .registry import Bad, Sample, composite, primitive, unbroadcast


def _shape_arg(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


# -- reshape / transpose / broadcast_to -------------------------------------------------------


def normalize_axis(op: str, ndim: int, axis: Any) -> tuple[int, ...] | None:
    """Axis as a sorted tuple of non-negative ints (None: all axes), or a clear error."""
    if axis is None:
        return None
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)):  # True would silently mean axis 1
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, not {axis!r}")
        if not isinstance(a, int):
            if hasattr(a, "__index__"):
                a = a.__index__()
            else:
                raise TypeError(f"{op}: axis must be an int or a tuple of ints, not {axis!r}")
        if (ndim == 0 and a not in (0, -1)) or (ndim > 0 and not -ndim <= a < ndim):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis!r} repeats an axis")
    if ndim == 0:
        return None
    return tuple(sorted(out))


@primitive(
    "reshape",
    save="",
    view=True,
    samples=[
        Sample((3, 4), [2, 6]),
        Sample((2, 3, 4), [-1, 4]),
        Sample((6,), [1, 6, 1]),
    ],
    torch="reshape",
    numpy="reshape",
    errors=[Bad((3, 4), [5, 2], match=r"reshape: cannot reshape array of size 12")],
)
def _reshape(xp, x, *, shape):
    return x.reshape(shape)


_reshape.defvjp(lambda g, y, x, *, shape: g.reshape(x.shape))


@_reshape.api
def reshape(x: Tensor, *shape: Any) -> Tensor:
    """A tensor with the same data in a new shape (one size may be -1): `x.reshape(2, -1)`."""
    return _reshape(x, shape=_shape_arg(shape))


@primitive(
    "permute",
    save="",
    view=True,
    samples=[
        Sample((3, 4), [1, 0]),
        Sample((2, 3, 4), [1, 0, 2]),
        Sample((2, 3, 4), [2, 0, 1]),
    ],
    torch=lambda t, x, *dims: x.permute(*_shape_arg(dims)),
    numpy=lambda np, x, *dims: np.transpose(x, _shape_arg(dims)),
    errors=[Bad((2, 3), [0, 0], match=r"permute: dims \(0, 0\) are not a permutation")],
)
def _permute(xp, x, *, axes):
    return xp.transpose(x, axes)


_permute.defvjp(lambda g, y, x, *, axes: _permute(g, axes=tuple(int(i) for i in np.argsort(axes))))


@_permute.api
def permute(x: Tensor, *dims: Any) -> Tensor:
    """The dimensions in a new order, every one named once: `x.permute(2, 0, 1)`."""
    dims = _shape_arg(dims)
    ndim = x.ndim
    norm = tuple(_dim("permute", ndim, d) for d in dims)
    if len(norm) != ndim or len(set(norm)) != ndim:
        raise ValueError(
            f"permute: dims {dims} are not a permutation of a tensor's {ndim} dimensions"
        )
    return _permute(x, axes=norm)


def _dim(op: str, ndim: int, d: Any) -> int:
    """One dimension as a non-negative int (0 for a 0-d tensor's 0 or -1), or a clear error."""
    (a,) = normalize_axis(op, builtins.max(ndim, 1), d)
    return a


@composite(
    samples=[Sample((2, 3, 4), 0, 2), Sample((3, 4), -1, -2), Sample((3, 4), 0, 1)],
    torch="transpose",
    numpy="swapaxes",
    errors=[Bad((2, 3), 0, 2, match="transpose: axis 2 is out of range")],
)
def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """The tensor with dimensions dim0 and dim1 swapped, as PyTorch's (NumPy's transpose, which
    reorders every axis, is `permute`, or gradtensor.numpy.transpose)."""
    a, b = _dim("transpose", x.ndim, dim0), _dim("transpose", x.ndim, dim1)
    perm = list(range(x.ndim))
    if x.ndim:
        perm[a], perm[b] = perm[b], perm[a]
    return _permute(x, axes=tuple(perm))


swapaxes = swapdims = transpose


def reverse_dims(x: Tensor) -> Tensor:
    """The dimensions in reverse order (`x.T`)."""
    return _permute(x, axes=tuple(range(x.ndim - 1, -1, -1)))


@primitive(
    "broadcast_to",
    save="",
    view=True,
    samples=[
        Sample((3, 1), [3, 4]),
        Sample((4,), [2, 3, 4]),
        Sample((), [2]),
    ],
    torch="broadcast_to",
    numpy="broadcast_to",
    errors=[Bad((3, 2), [3, 4], match="broadcast_to: ")],
)
def _broadcast_to(xp, x, *, shape):
    return xp.broadcast_to(x, shape)


_broadcast_to.defvjp(lambda g, y, x, *, shape: unbroadcast(g, x.shape))


@_broadcast_to.api
def broadcast_to(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast to a shape, NumPy's rules (a read-only view)."""
    return _broadcast_to(x, shape=_shape_arg(shape))


# -- composites on reshape --------------------------------------------------------------------


@composite(
    samples=[Sample((3, 1), 3, 4), Sample((2, 1, 3), 4, -1, 2, -1), Sample((), 2)],
    torch=lambda t, x, *sizes: x.expand(*sizes),
    errors=[Bad((3, 1), 4, match="expand: 1 sizes for a tensor of 2 dimensions")],
)
def expand(x: Tensor, *sizes: Any) -> Tensor:
    """A broadcast view with new sizes for size-1 dims (-1 keeps a size; new dims may lead),
    as PyTorch's expand."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes for a tensor of {x.ndim} dimensions")
    if any(n == -1 for n in sizes[:lead]):
        raise ValueError(f"expand: -1 is not allowed for the new leading dims, got {sizes}")
    shape = tuple(n if n != -1 or i < lead else x.shape[i - lead] for i, n in enumerate(sizes))
    return _broadcast_to(x, shape=shape)


@composite(
    samples=[Sample((2, 3), 2, 1), Sample((3,), 2, 2), Sample((2, 1, 2), 1, 3, 2)],
    torch=lambda t, x, *reps: x.repeat(*reps),
    numpy=lambda np, x, *reps: np.tile(x, reps),
    errors=[Bad((2, 3), 2, match="repeat: ")],
)
def repeat(x: Tensor, *repeats: Any) -> Tensor:
    """The tensor tiled `repeats` times along each dim (leading ones added as needed), as
    PyTorch's repeat (NumPy's tile; NumPy's repeat is repeat_interleave)."""
    reps = _shape_arg(repeats)
    if len(reps) < x.ndim or any(not isinstance(r, (int, np.integer)) or r < 0 for r in reps):
        raise ValueError(
            f"repeat: {reps} must be one non-negative int per dim of the {x.ndim}-d tensor at least"
        )
    shape = (1,) * (len(reps) - x.ndim) + tuple(x.shape)
    # Each dim of size n becomes (1, n), broadcast to (r, n), then merged to r * n.
    pairs = _reshape(x, shape=tuple(v for n in shape for v in (1, n)))
    tiled = _broadcast_to(pairs, shape=tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return _reshape(tiled, shape=tuple(r * n for r, n in zip(reps, shape)))


@composite(
    samples=[Sample((2, 3), [2]), Sample((3,), [2, 2]), Sample((2, 1, 2), [1, 3, 2])],
    torch=lambda t, x, dims: t.tile(x, tuple(dims)),
    numpy=lambda np, x, dims: np.tile(x, dims),
)
def tile(x: Tensor, dims: Any) -> Tensor:
    """PyTorch's tile: repeat, with ones added in front when `dims` has fewer entries than x."""
    reps = _shape_arg((dims,))
    return repeat(x, *((1,) * (x.ndim - len(reps)) + tuple(reps)))


@composite(
    samples=[Sample((2, 3, 4), 0, 2), Sample((2, 3, 4), [0, 1], [2, 0]), Sample((3, 4), -1, 0)],
    torch=lambda t, x, s, d: t.movedim(x, tuple(s), tuple(d)) if isinstance(s, list)
    else t.movedim(x, s, d),
    numpy="moveaxis",
    errors=[Bad((2, 3), 0, 2, match="movedim: axis 2 is out of range")],
)  # fmt: skip
def movedim(x: Tensor, source: Any, destination: Any) -> Tensor:
    """The dims `source` moved to the places `destination`, the others kept in order."""
    src = [
        _dim("movedim", x.ndim, d)
        for d in (source if isinstance(source, (list, tuple)) else [source])
    ]
    dst = [
        _dim("movedim", x.ndim, d)
        for d in (destination if isinstance(destination, (list, tuple)) else [destination])
    ]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(
            f"movedim: source {source} and destination {destination} must name as many "
            "distinct dims"
        )
    rest = iter(d for d in range(x.ndim) if d not in src)
    where = dict(zip(dst, src))
    return _permute(x, axes=tuple(where[i] if i in where else next(rest) for i in range(x.ndim)))


moveaxis = movedim


@composite(
    samples=[Sample((5,)), Sample((3, 4), n=2, dim=0), Sample((2, 5), 1, -1)],
    torch=lambda t, x, n=1, dim=-1: t.diff(x, n, dim),
    numpy=lambda np, x, n=1, dim=-1: np.diff(x, n, dim),
    errors=[Bad((3,), dim=1, match="diff: axis 1 is out of range")],
)
def diff(x: Tensor, n: int = 1, dim: int = -1) -> Tensor:
    """The n-th forward difference along `dim`: x[1:] - x[:-1], n times."""
    d = _dim("diff", x.ndim, dim)
    pre = (slice(None),) * d
    for _ in range(n):
        x = x[pre + (slice(1, None),)] - x[pre + (slice(None, -1),)]
    return x


@composite(
    samples=[Sample((3, 4), 0), Sample((2, 3, 4), [0, 2]), Sample((5,), -1)],
    torch=lambda t, x, dims: t.flip(x, tuple(dims) if isinstance(dims, list) else (dims,)),
    numpy=lambda np, x, dims: np.flip(x, tuple(dims) if isinstance(dims, list) else dims),
    errors=[Bad((3, 4), 2, match="flip: axis 2 is out of range")],
)
def flip(x: Tensor, dims: Any) -> Tensor:
    """The tensor with the order of elements reversed along `dims`."""
    axes = normalize_axis("flip", x.ndim, dims) or ()
    return x[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim))]


@composite(
    samples=[
        Sample((3, 4), np.array([[0], [3], [1]]), 1),
        Sample((2, 3), np.array([[1, 0, 1]]), 0),
    ],
    torch=lambda t, x, idx, dim: t.take_along_dim(x, idx, dim),
    numpy=lambda np, x, idx, dim: np.take_along_axis(x, idx, dim),
    errors=[Bad((3, 4), np.array([0, 1]), 1, error=ValueError, match="take_along_dim: indices")],
)
def take_along_dim(x: Tensor, indices: Any, dim: int) -> Tensor:
    """The elements of x at `indices` along dim (the others broadcast), as PyTorch's
    take_along_dim and NumPy's take_along_axis; the gradient reaches those elements only."""
    idx = indices.data if isinstance(indices, Tensor) else indices
    if x.ndim == 0:
        return x
    d = _dim("take_along_dim", x.ndim, dim)
    if getattr(idx, "ndim", None) != x.ndim:
        raise ValueError(
            f"take_along_dim: indices of shape {getattr(idx, 'shape', None)} for a tensor of "
            f"shape {x.shape}: they need as many dims"
        )
    xp = backend.array_module(x.data)
    grid = [xp.arange(n).reshape([n if j == i else 1 for j in range(x.ndim)])
            for i, n in enumerate(x.shape)]  # fmt: skip
    grid[d] = xp.asarray(idx)
    return x[tuple(grid)]


@composite(
    samples=[Sample((3, 1, 4)), Sample((1, 3, 1), axis=0), Sample((1, 3, 1), axis=(0, 2))],
    torch=lambda t, x, axis=None: t.squeeze(x) if axis is None else t.squeeze(x, axis),
    numpy="squeeze",
    errors=[Bad((3, 1), axis=0, match="squeeze: axis 0 has size 3, not 1")],
)
def squeeze(x: Tensor, axis: Any = None, *, dim: Any = None) -> Tensor:
    """Remove size-1 axes (all of them, or those named)."""
    axis = dim if dim is not None else axis
    axes = normalize_axis("squeeze", x.ndim, axis)
    if axes is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1 (shape {x.shape})")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


@composite(
    samples=[Sample((3, 4), axis=0), Sample((3, 4), axis=-1), Sample((3,), axis=(0, 2))],
    torch=lambda t, x, axis: _unsqueeze_all(x, axis),
    numpy="expand_dims",
    errors=[Bad((3, 4), axis=3, match="expand_dims: axis 3 is out of range")],
)
def expand_dims(x: Tensor, axis: Any, *, dim: Any = None) -> Tensor:
    """Insert size-1 axes at the given positions of the result."""
    axis = dim if dim is not None else axis
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out_ndim = x.ndim + len(axes)
    axes = normalize_axis("expand_dims", out_ndim, axes)
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(out_ndim)))


def _unsqueeze_all(x: Any, axis: Any) -> Any:  # torch's twin of expand_dims with many axes
    for a in sorted((axis,) if isinstance(axis, int) else axis):
        x = x.unsqueeze(a if a >= 0 else x.ndim + 1 + a)
    return x


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """PyTorch's name for `expand_dims` with one axis."""
    return expand_dims(x, dim)


@composite(
    samples=[Sample((2, 3, 4)), Sample((2, 3, 4), start_dim=1)],
    torch="flatten",
    errors=[Bad((2, 3, 4), 2, 1, match="flatten: start_dim 2 comes after end_dim 1")],
)
def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    (s,) = normalize_axis("flatten", x.ndim, start_dim)
    (e,) = normalize_axis("flatten", x.ndim, end_dim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(x.shape[s : e + 1])  # not -1: it is ambiguous when an axis is empty
    return reshape(x, x.shape[:s] + (merged,) + x.shape[e + 1 :])


# -- concatenate / stack / split --------------------------------------------------------------


@primitive(
    "concatenate",
    save="",
    samples=[
        Sample([(2, 3), (4, 3)], axis=0),
        Sample([(2, 3), (2, 1), (2, 2)], axis=1),
    ],
    torch=lambda t, xs, axis=0: t.cat(xs, dim=axis),
    numpy="concatenate",
    errors=[Bad([(2, 3), (3, 2)], axis=0, match="concatenate: ")],
)
def _concatenate(xp, *xs, axis):
    return xp.concatenate(xs, axis=axis)


def _concatenate_grad(g: Tensor, y: Any, *xs: Any, needs: tuple, axis: int) -> list:
    grads, start = [], 0
    for x, need in zip(xs, needs):
        stop = start + x.shape[axis]
        grads.append(g[(slice(None),) * axis + (slice(start, stop),)] if need else None)
        start = stop
    return grads


_concatenate.defvjp_joint(_concatenate_grad)


@_concatenate.api
def concatenate(tensors: Any, axis: int = 0, *, dim: Any = None) -> Tensor:
    """Join tensors along an existing axis: `gt.concatenate([a, b], axis=1)`."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    axis = dim if dim is not None else axis
    ndim = np.ndim(tensors[0].data if isinstance(tensors[0], Tensor) else tensors[0])
    if ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    (axis,) = normalize_axis("concatenate", ndim, axis)
    return _concatenate(*tensors, axis=axis)


cat = concatenate


@composite(
    samples=[Sample([(2, 3), (2, 3)], axis=0), Sample([(3,), (3,), (3,)], axis=1)],
    torch=lambda t, xs, axis=0: t.stack(xs, dim=axis),
    numpy="stack",
    errors=[Bad([(2, 3), (3, 2)], match=r"stack: all tensors must have one shape")],
)
def stack(tensors: Any, axis: int = 0, *, dim: Any = None) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    axis = dim if dim is not None else axis
    shapes = {tuple(np.shape(t.data if isinstance(t, Tensor) else t)) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have one shape, got {sorted(shapes)}")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


def _pieces(x: Tensor, bounds: list[int], axis: int) -> tuple[Tensor, ...]:
    pre = (slice(None),) * axis
    return tuple(x[pre + (slice(a, builtins.max(a, b)),)] for a, b in zip(bounds[:-1], bounds[1:]))


def _split_dim(op: str, x: Tensor, dim: int, axis: Any) -> int:
    return _dim(op, x.ndim, dim if axis is None else axis)


@composite(
    samples=[Sample((6, 2), 3), Sample((7, 2), 3), Sample((2, 7), [2, 5], axis=1)],
    torch=lambda t, x, sections, axis=0: list(t.split(x, sections, dim=axis)),
    errors=[Bad((5, 2), [2, 2], match=r"split: sizes \[2, 2\] do not add up")],
)
def split(x: Tensor, split_size_or_sections: Any, dim: int = 0, *, axis: Any = None) -> tuple:
    """PyTorch's split: an int is the size of each piece (the last may be smaller), a list the
    sizes of all of them. (NumPy's split, by a count or by points, is `tensor_split`.)"""
    d = _split_dim("split", x, dim, axis)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: the size of each piece must be positive, got {size}")
        return _pieces(x, list(range(0, n, size)) + [n] if n else [0, 0], d)
    sizes = [int(k) for k in split_size_or_sections]
    if any(k < 0 for k in sizes) or builtins.sum(sizes) != n:
        raise ValueError(f"split: sizes {sizes} do not add up to the {n} elements of dim {d}")
    return _pieces(x, [builtins.sum(sizes[:i]) for i in range(len(sizes) + 1)], d)


@composite(
    samples=[Sample((6, 2), 3), Sample((7, 2), 3), Sample((2, 7), [2, 5], axis=1)],
    torch=lambda t, x, sections, axis=0: list(t.tensor_split(x, sections, dim=axis)),
    numpy=lambda np, x, sections, axis=0: np.array_split(x, sections, axis=axis),
    errors=[Bad((5, 2), 0, match="tensor_split: the number of pieces must be positive")],
)
def tensor_split(x: Tensor, indices_or_sections: Any, dim: int = 0, *, axis: Any = None) -> tuple:
    """An int k makes k pieces (the first n % k one longer), a list gives the split points, as
    PyTorch's tensor_split and NumPy's array_split."""
    d = _split_dim("tensor_split", x, dim, axis)
    n = x.shape[d]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"tensor_split: the number of pieces must be positive, got {k}")
        q, r = divmod(n, k)
        return _pieces(x, [i * q + builtins.min(i, r) for i in range(k + 1)], d)
    pts = [builtins.min(builtins.max(int(p) if p >= 0 else int(p) + n, 0), n)
           for p in indices_or_sections]  # fmt: skip
    return _pieces(x, [0] + pts + [n], d)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """At most `chunks` pieces of ceil(n / chunks) elements along dim, as PyTorch's chunk."""
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    n = x.shape[_dim("chunk", x.ndim, dim)]
    return split(x, builtins.max(-(-n // int(chunks)), 1), dim)


# -- indexing ---------------------------------------------------------------------------------


def _index_key(key: Any, like: Tensor) -> Any:
    """An index with Tensors and lists turned into arrays, and bool masks into positions.

    Positions make every advanced index one the scatter-add of the gradient understands. Index
    arrays are moved to the indexed tensor's device (an index is a small, read-only argument).
    """
    items = key if isinstance(key, tuple) else (key,)
    dev = like.device if isinstance(like, Tensor) else backend.CPU
    items = [k.data if isinstance(k, Tensor) else np.asarray(k) if isinstance(k, list) else k
             for k in items]  # fmt: skip
    arrays = backend.array_types()
    masks = [isinstance(k, arrays) and k.dtype == bool and k.ndim > 0 for k in items]
    # The axes each item indexes: a mask as many as it has, None and ... none of their own.
    used = builtins.sum(
        k.ndim if m else 0 if k is None or k is Ellipsis else 1 for k, m in zip(items, masks)
    )
    shape = tuple(getattr(like, "shape", ()))
    dim = 0
    out = []
    for k, mask in zip(items, masks):
        if k is Ellipsis:
            dim += len(shape) - used
        elif k is not None:
            dim += k.ndim if mask else 1
        if not isinstance(k, arrays):
            out.append(k)
            continue
        k = backend.to_device(k, dev)
        if mask:
            axes = shape[dim - k.ndim : dim]
            if tuple(k.shape) != axes:
                raise IndexError(
                    f"getitem: a boolean mask of shape {tuple(k.shape)} does not match the "
                    f"axes {axes} it indexes in a tensor of shape {shape}"
                )
            out.extend(backend.array_module(k).nonzero(k))
            continue
        if k.dtype.kind not in "iub":
            raise IndexError(f"getitem: index arrays must be integer or bool, not {k.dtype}")
        out.append(k)
    return tuple(out)


def _is_basic(key: tuple) -> bool:
    """Only ints, slices, None and Ellipsis: each element is selected at most once."""
    return builtins.all(
        k is None or k is Ellipsis or isinstance(k, (int, slice, np.integer)) for k in key
    )


@primitive(
    "getitem",
    save="",
    view=True,
    samples=[
        Sample((4, 3), (slice(1, 3),)),
        Sample((4, 3), (1, slice(None, None, 2))),
        Sample((5,), np.array([0, 2, 2, 4])),
        Sample((4, 3), (np.array([[1, 1], [3, 0]]), slice(0, 2))),
        Sample((3, 2), np.array([True, False, True])),
        Sample((3, 2), (None, Ellipsis, 1)),
        Sample((4, 3), (-1, slice(None, None, 2))),
        Sample((2, 3, 4), (1, slice(None), [0, 2, 3])),
        Sample((3, 4), np.array([[True, False, True, False]] * 3)),
        Sample((2, 3, 4), (Ellipsis, [1, 0])),
    ],
    # No NumPy twin: NumPy moves the axes of x[1, :, [0, 2]]. PyTorch takes no negative steps:
    # those are held to it in tests/test_ops_indexing.py.
    torch=lambda t, x, index: x[index],
    errors=[
        Bad((3,), 5, error=IndexError, match="getitem: index 5 is out of bounds"),
        Bad((3, 2), np.array([True, False]), error=IndexError, match="getitem: a boolean mask"),
        Bad((3,), (np.array([0.5]),), error=IndexError, match="getitem: index arrays must be"),
    ],
)
def _getitem(xp, x, *, index):
    return x[index]


_getitem.defvjp(lambda g, y, x, *, index: _getitem_grad(g, shape=x.shape, index=index))


@_getitem.api
def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index] with PyTorch's (and NumPy's) rules; the gradient adds up where an element is
    picked twice."""
    key = _no_ellipsis(_index_key(index, x), x.ndim)
    split = _ints_first(key)
    if split is None:
        return _getitem(x, index=key)
    return _getitem(_getitem(x, index=split[0]), index=split[1])


_F = np.dtype(float)


def _no_ellipsis(key: tuple, ndim: int) -> tuple:
    """The key with its Ellipsis written as the full slices it stands for, as PyTorch reads it:
    index arrays an Ellipsis of no dims sits between stay adjacent (NumPy would move their axes
    to the front)."""
    at = [i for i, k in enumerate(key) if k is Ellipsis]
    if not at or not any(isinstance(k, backend.array_types()) for k in key):
        return key
    used = builtins.sum(
        0 if k is None or k is Ellipsis else k.ndim if getattr(k, "dtype", _F).kind == "b" else 1
        for k in key
    )
    i = at[0]
    return key[:i] + (slice(None),) * (ndim - used) + key[i + 1 :]


def _ints_first(key: tuple) -> tuple | None:
    """PyTorch takes a key's ints before its index arrays (NumPy counts them as arrays, which
    can move the result's axes): (the ints, the rest), or None where no array meets an int."""
    is_int = [isinstance(k, (int, np.integer)) and type(k) is not bool for k in key]
    if not any(is_int) or not any(isinstance(k, backend.array_types()) for k in key):
        return None
    first = tuple(
        k if i or k is Ellipsis else slice(None) for k, i in zip(key, is_int) if k is not None
    )
    return first, tuple(k for k, i in zip(key, is_int) if not i)


@primitive(
    "getitem_grad",
    save="",
    samples=[
        Sample((2, 3), shape=(4, 3), index=(slice(1, 3),)),
        Sample((4,), shape=(5,), index=(np.array([0, 2, 2, 4]),)),
    ],
)
def _getitem_grad(xp, g, *, shape, index):
    """A zero tensor of `shape` with `g` added at `index` (the derivative of indexing)."""
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_basic(index):
        out[index] = g
    else:
        backend.scatter_add(out, index, g)
    return out


_getitem_grad.defvjp(lambda g, y, x, *, shape, index: _getitem(g, index=index))


@primitive(
    "setitem",
    save="",
    samples=[
        Sample((4, 3), (3,), 1),
        Sample((4, 3), (2, 1), slice(0, 2)),
        Sample((5,), (2,), np.array([0, 3])),
        Sample((4, 3), (3,), -1),
        Sample((5, 4), (4,), (slice(0, None, 2),)),
        Sample((2, 3, 4), (2, 3), (Ellipsis, 1)),
        Sample((3, 4), (1, 4), (None, 1)),
        Sample((3, 4), (2, 4), np.array([True, False, True])),
        Sample((3, 4), (6,), np.array([[True, False, True, False]] * 3)),
        Sample((5, 3), (3,), [0, 3]),
        Sample((2, 3, 4), (3, 2), (1, slice(None), [0, 2])),
        Sample((4, 3), (), (np.array([0, 1]), np.array([2, 0]))),
    ],
    torch=lambda t, x, v, index: _set_twin(x, v, index),
    errors=[Bad((4, 3), (2,), 1, match=r"setitem: shapes \(4, 3\) and \(2,\) cannot be")],
)
def _setitem(xp, x, v, *, index):
    y = x.copy()
    y[index] = v
    return y


def _setitem_grad_value(g: Tensor, y: Any, x: Any, v: Any, *, index: Any) -> Tensor:
    gv = _getitem(g, index=index)
    return unbroadcast(gv, v.shape) if gv.shape != v.shape else gv


_setitem.defvjp(lambda g, y, x, v, *, index: _setitem(g, 0, index=index), _setitem_grad_value)


@_setitem.api
def setitem(x: Tensor, value: Any, index: Any) -> Tensor:
    """x with x[index] replaced by value, out of place (Tensor.__setitem__ writes it back)."""
    key = _no_ellipsis(_index_key(index, x), x.ndim)
    split = _ints_first(key)
    if split is None:
        return _setitem(x, value, index=key)
    part = _setitem(_getitem(x, index=split[0]), value, index=split[1])
    return _setitem(x, part, index=split[0])


def _set_twin(x: Any, v: Any, index: Any) -> Any:
    """setitem in PyTorch, out of place."""
    y = x.clone()
    y[index] = v
    return y


# -- copies, dtypes, devices ------------------------------------------------------------------


@primitive("copy", save="", samples=[Sample((3, 2))], torch="clone", numpy="copy")
def copy(xp, x):
    """A tensor with its own copy of the data (differentiable, as torch's clone)."""
    return x.copy()


copy.defvjp(lambda g, y, x: g)


@primitive("astype", save="", samples=[Sample((3, 2), dtype=np.float32, rtol=5e-2)])
def _astype(xp, x, *, dtype):
    return x.astype(dtype)


_astype.defvjp(lambda g, y, x, *, dtype: _astype(g, dtype=x.dtype))


@primitive("astype_nograd", differentiable=False)
def _astype_nograd(xp, x, *, dtype):
    return x.astype(dtype)


@_astype.api
def astype(x: Tensor, dtype: Any) -> Tensor:
    """Convert to a dtype (differentiable between floating types)."""
    from ..tensor import as_dtype

    dt = as_dtype(dtype)
    if dt == x.dtype:
        return x
    if dt.kind == "f" and x.dtype.kind == "f":
        return _astype(x, dtype=dt)
    return _astype_nograd(x, dtype=dt)


@primitive("to_device", save="", samples=[Sample((3,), device=backend.CPU)])
def _to_device(xp, x, *, device):
    return (
        backend.to_device(x, device).copy()
        if device.type == "cpu"
        else backend.to_device(x, device)
    )


_to_device.defvjp(lambda g, y, x, *, device: _to_device(g, device=x.device))


@_to_device.api
def to_device(x: Tensor, device: Any) -> Tensor:
    """Copy to a device (differentiable); the same tensor when it is already there."""
    dev = backend.device(device)
    if x.device == dev:
        return x
    return _to_device(x, device=dev)
