"""PyTorch's indexing ops: gather and scatter, index_select, masks, diagonals and triangles, pad,
roll, repeat_interleave, stacks and grids. Nearly all are composites of getitem and setitem
(shape.py), whose gradients they inherit; tril and triu are primitives (one-line derivatives)."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor, full, int64
from ..tensor import tensor as _tensor
from .elementwise import where
from .registry import Bad, Sample, composite, primitive
from .shape import (
    _broadcast_to,
    _dim,
    _getitem,
    _getitem_grad,
    _permute,
    _setitem,
    concatenate,
    flatten,
    reshape,
)

_I = np.array  # index arrays in samples (int64, as PyTorch wants them)


def _on(x: Tensor, a: Any) -> Any:
    """An index array (made on the host) on x's device."""
    return backend.to_device(a, x.device)


def _index(op: str, index: Any, x: Tensor) -> Any:
    """An index (tensor, array or list) as an integer array on x's device."""
    a = index.data if isinstance(index, Tensor) else index
    a = a if isinstance(a, backend.array_types()) else np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: the index must hold integers, not {a.dtype}")
    return _on(x, a)


def _in_range(op: str, idx: Any, n: int, d: int) -> None:
    lo, hi = (int(idx.min()), int(idx.max())) if idx.size else (0, 0)
    if idx.size and (lo < 0 or hi >= n):
        raise IndexError(
            f"{op}: index {lo if lo < 0 else hi} is out of bounds for dim {d} of size {n}"
        )


def _grid(x: Tensor, shape: tuple, d: int, idx: Any) -> tuple:
    """Index arrays picking, at each position of `shape`, the element idx names along dim d."""
    n = len(shape)
    grid = [_on(x, np.arange(k).reshape([k if j == i else 1 for j in range(n)]))
            for i, k in enumerate(shape)]  # fmt: skip
    grid[d] = idx
    return tuple(grid)


def _scatter_key(op: str, x: Tensor, dim: int, index: Any, src: Any = None) -> tuple:
    """(the index arrays, the shape of `index`) of gather/scatter, checked as PyTorch does."""
    idx = _index(op, index, x)
    d = _dim(op, x.ndim, dim)
    if x.ndim == 0:
        raise ValueError(f"{op}: expected a tensor of at least 1 dim, got a 0-d tensor")
    if idx.ndim != x.ndim:
        raise ValueError(
            f"{op}: index of shape {tuple(idx.shape)} for a tensor of shape {x.shape}: they need "
            "as many dims"
        )
    for name, shape in (("the tensor", x.shape), ("src", getattr(src, "shape", None))):
        if shape is not None and any(
            k > n for i, (k, n) in enumerate(zip(idx.shape, shape)) if i != d or name == "src"
        ):
            raise ValueError(f"{op}: index of shape {tuple(idx.shape)} is larger than {name}'s "
                             f"shape {tuple(shape)}")  # fmt: skip
    _in_range(op, idx, x.shape[d], d)
    return _grid(x, tuple(idx.shape), d, idx), tuple(idx.shape)


def _src_part(src: Any, shape: tuple, like: Tensor) -> Any:
    """src cut to the index's shape (PyTorch reads only that corner of it)."""
    if isinstance(src, (int, float, bool)):
        return src
    if not isinstance(src, Tensor):
        src = _tensor(src, device=like.device)
    if tuple(src.shape) == shape:
        return src
    return _getitem(src, index=tuple(slice(0, k) for k in shape))


# -- gather / scatter / index_select ----------------------------------------------------------


@composite(
    samples=[
        Sample((3, 4), 1, _I([[0, 0], [1, 3], [2, 1]])),
        Sample((3, 4), 0, _I([[2, 0, 1, 1]])),
        Sample((2, 3, 4), -1, _I([[[3], [0], [1]], [[2], [2], [0]]])),
    ],
    torch="gather",
    errors=[
        Bad((3, 4), 1, _I([[4], [0], [0]]), error=IndexError, match="gather: index 4 is out of"),
        Bad((3, 4), 1, _I([0, 1]), match="gather: index of shape \\(2,\\) for a tensor of shape"),
        Bad((3, 4), 2, _I([[0]]), match="gather: axis 2 is out of range"),
    ],
)
def gather(input: Tensor, dim: int, index: Any, *, sparse_grad: bool = False) -> Tensor:
    """out[i][j] = input[index[i][j]][j] along dim 0 (and so on), as PyTorch's gather; the
    gradient adds up at the elements picked."""
    key, _ = _scatter_key("gather", input, dim, index)
    return _getitem(input, index=key)


@composite(
    samples=[
        Sample((3, 4), 1, _I([[0, 2], [1, 3], [3, 0]]), (3, 2)),
        Sample((3, 4), 0, _I([[2, 0, 1, 0]]), (1, 4)),
        Sample((3, 4), 1, _I([[0], [1], [2]]), 1.5),
    ],
    torch="scatter",
    errors=[
        Bad((3, 4), 1, _I([[0, 9]]), (1, 2), error=IndexError, match="scatter: index 9 is out"),
        Bad((3, 4), 1, _I([[0, 1]]), (1, 1), match="scatter: index of shape .* larger than src"),
    ],
)
def scatter(input: Tensor, dim: int, index: Any, src: Any = None, *, value: Any = None) -> Tensor:
    """input with src[i][j] written at [index[i][j]][j] along dim 0 (and so on), as PyTorch's
    scatter (src may be a number, or `value=`); gradients reach input and src."""
    src = value if src is None else src
    key, shape = _scatter_key("scatter", input, dim, index, src)
    return _setitem(input, _src_part(src, shape, input), index=key)


@composite(
    samples=[
        Sample((3, 4), 1, _I([[0, 0], [1, 3], [3, 3]]), (3, 2)),
        Sample((4,), 0, _I([0, 0, 3]), (3,)),
    ],
    torch="scatter_add",
    errors=[Bad((3,), 0, _I([3]), (1,), error=IndexError, match="scatter_add: index 3 is out")],
)
def scatter_add(input: Tensor, dim: int, index: Any, src: Any) -> Tensor:
    """input with src[i][j] added at [index[i][j]][j] along dim 0 (and so on; repeats add up),
    as PyTorch's scatter_add."""
    key, shape = _scatter_key("scatter_add", input, dim, index, src)
    part = _src_part(src, shape, input)
    if not isinstance(part, Tensor):
        part = full(shape, part, dtype=input.dtype, device=input.device)
    if part.dtype == bool:  # repeats add up, which bools cannot
        part = part.astype(int64)
    return input + _getitem_grad(part, shape=input.shape, index=key)


@composite(
    samples=[Sample((4, 3), 0, _I([0, 2, 2])), Sample((2, 5), 1, _I([4, 0]))],
    torch="index_select",
    numpy=lambda np, x, dim, idx: np.take(x, idx, axis=dim),
    errors=[
        Bad((4, 3), 0, _I([4]), error=IndexError, match="index_select: index 4 is out of bounds"),
        Bad((4, 3), 0, _I([[0]]), match="index_select: the index must be 1-D"),
    ],
)
def index_select(input: Tensor, dim: int, index: Any) -> Tensor:
    """The slices of input at `index` (1-D) along dim, as PyTorch's index_select."""
    idx = _index("index_select", index, input)
    if idx.ndim > 1:
        raise ValueError(f"index_select: the index must be 1-D, got shape {tuple(idx.shape)}")
    d = _dim("index_select", input.ndim, dim)
    if input.ndim == 0:
        _in_range("index_select", idx, 1, 0)
        return reshape(input, (1,) * idx.ndim)
    _in_range("index_select", idx, input.shape[d], d)
    return _getitem(input, index=(slice(None),) * d + (idx.reshape(-1),))


# -- masks ------------------------------------------------------------------------------------


def _mask(op: str, mask: Any, x: Tensor) -> Any:
    m = mask.data if isinstance(mask, Tensor) else mask
    m = m if isinstance(m, backend.array_types()) else np.asarray(m)
    if m.dtype != bool:
        raise TypeError(f"{op}: the mask must be a bool tensor, not {m.dtype}")
    return _on(x, m)


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    """The shape a and b broadcast to, or None."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        return None


@composite(
    samples=[
        Sample((3, 4), _I([True, False, True, False]), 0.5),
        Sample((2, 3), _I([[True], [False]]), -1.0),
        Sample((3,), _I([True, False, True]), ()),
    ],
    torch="masked_fill",
    errors=[
        Bad(
            (3,),
            _I([1, 0, 1]),
            0.0,
            error=TypeError,
            match="masked_fill: the mask must be a bool tensor",
        ),
        Bad((3,), _I([[True], [False]]), 0.0, match=r"masked_fill: a mask of shape \(2, 1\)"),
    ],
)
def masked_fill(input: Tensor, mask: Any, value: Any) -> Tensor:
    """input with `value` (a number or a 0-d tensor) where `mask` holds, as PyTorch's."""
    m = _mask("masked_fill", mask, input)
    if _broadcast(m.shape, input.shape) != input.shape:
        raise ValueError(
            f"masked_fill: a mask of shape {tuple(m.shape)} does not broadcast to the tensor's "
            f"shape {input.shape}"
        )
    if isinstance(value, Tensor):
        if math.prod(value.shape) != 1:
            raise ValueError(
                f"masked_fill: value must be a number or a 0-d tensor, not {value.shape}"
            )
        value = value if value.ndim == 0 else reshape(value, ())
    else:  # a number takes the tensor's dtype, as in PyTorch
        value = _tensor(value, dtype=input.dtype, device=input.device)
    return where(m, value, input)


@composite(
    samples=[
        Sample((3, 4), _I([True, False, True, False])),
        Sample((2, 3), _I([[True, False, True], [False, False, True]])),
        Sample((1, 3), _I([[True], [False]])),
    ],
    torch="masked_select",
    errors=[Bad((3,), _I([True, False]), match="masked_select: a mask of shape \\(2,\\)")],
)
def masked_select(input: Tensor, mask: Any) -> Tensor:
    """The elements where `mask` holds (the two broadcast together), in a 1-D tensor."""
    m = _mask("masked_select", mask, input)
    shape = _broadcast(m.shape, input.shape)
    if shape is None:
        raise ValueError(f"masked_select: a mask of shape {tuple(m.shape)} does not broadcast "
                         f"with the tensor's shape {input.shape}")  # fmt: skip
    x = input if input.shape == shape else _broadcast_to(input, shape=shape)
    m = backend.array_module(m).broadcast_to(m, shape)
    return _getitem(x, index=tuple(backend.array_module(m).nonzero(m)))


@primitive(
    "one_hot",
    differentiable=False,
    samples=[Sample(_I([0, 2, 1])), Sample(_I([[1], [3]]), num_classes=5)],
    torch="nn.functional.one_hot",
    errors=[
        Bad(_I([0, 3]), num_classes=3, match=r"one_hot: class values must be in \[0, 3\)"),
        Bad(_I([0.0, 1.0]), error=TypeError, match="one_hot: the classes must be integers"),
    ],
)
def _one_hot(xp, x, *, num_classes):
    return (x[..., None] == xp.arange(num_classes)).astype(xp.int64)


@_one_hot.api
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 rows with a 1 at each class, as PyTorch's one_hot (-1: max class + 1)."""
    t = tensor if isinstance(tensor, Tensor) else _tensor(tensor)
    a = t.data
    if a.dtype.kind not in "iu":
        raise TypeError(f"one_hot: the classes must be integers, not {a.dtype}")
    if num_classes == -1:
        if not a.size:
            raise ValueError("one_hot: cannot infer the number of classes from an empty tensor")
        num_classes = int(a.max()) + 1
    if a.size and (int(a.min()) < 0 or int(a.max()) >= num_classes):
        raise ValueError(
            f"one_hot: class values must be in [0, {num_classes}), got {int(a.min())} to "
            f"{int(a.max())}"
        )
    return _one_hot(t, num_classes=int(num_classes))


@primitive(
    "nonzero",
    differentiable=False,
    samples=[Sample(_I([[0.0, 1.5], [2.0, 0.0]])), Sample(_I([0.0, 3.0, 0.0, 1.0]))],
    torch="nonzero",
    numpy="argwhere",
)
def _nonzero(xp, x):
    return xp.argwhere(x).astype(xp.int64)


@_nonzero.api
def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """The indices of the non-zero elements, one row each (int64), or with as_tuple one 1-D
    tensor per dim, as PyTorch's nonzero."""
    rows = _nonzero(input)
    if not as_tuple:
        return rows
    if rows.shape[1] == 0:  # a 0-d input: PyTorch gives its one position, if non-zero
        return (full(rows.shape[0], 0, dtype=int64, device=rows.device),)
    return tuple(_getitem(rows, index=(slice(None), i)) for i in range(rows.shape[1]))


def argwhere(input: Tensor) -> Tensor:
    """The indices of the non-zero elements, one row each, as PyTorch's argwhere."""
    return _nonzero(input)


# -- triangles and diagonals ------------------------------------------------------------------


def _at_least_2d(op: str, x: Tensor) -> None:
    if x.ndim < 2:
        raise ValueError(f"{op}: the tensor must have at least 2 dims, got shape {x.shape}")


@primitive(
    "tril",
    save="",
    samples=[Sample((4, 4)), Sample((3, 5), 1), Sample((2, 4, 3), -1)],
    torch="tril",
    numpy="tril",
    errors=[Bad((3,), match="tril: the tensor must have at least 2 dims")],
)
def _tril(xp, x, *, diagonal):
    return xp.tril(x, diagonal)


_tril.defvjp(lambda g, y, x, *, diagonal: _tril(g, diagonal=diagonal))


@_tril.api
def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (elements above `diagonal` set to 0)."""
    _at_least_2d("tril", input)
    return _tril(input, diagonal=int(diagonal))


@primitive(
    "triu",
    save="",
    samples=[Sample((4, 4)), Sample((3, 5), -1), Sample((2, 4, 3), 1)],
    torch="triu",
    numpy="triu",
    errors=[Bad((), match="triu: the tensor must have at least 2 dims")],
)
def _triu(xp, x, *, diagonal):
    return xp.triu(x, diagonal)


_triu.defvjp(lambda g, y, x, *, diagonal: _triu(g, diagonal=diagonal))


@_triu.api
def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (elements below `diagonal` set to 0)."""
    _at_least_2d("triu", input)
    return _triu(input, diagonal=int(diagonal))


def _diag_index(x: Tensor, rows: int, cols: int, offset: int) -> tuple:
    """(row, col) index arrays of the `offset` diagonal of a rows x cols matrix."""
    r0, c0 = builtins.max(-offset, 0), builtins.max(offset, 0)
    i = np.arange(builtins.max(builtins.min(rows - r0, cols - c0), 0))
    return _on(x, i + r0), _on(x, i + c0)


@composite(
    samples=[Sample((3, 4)), Sample((4, 3), 1), Sample((2, 3, 4), -1, 0, 2), Sample((3, 3), 5)],
    torch="diagonal",
    numpy="diagonal",
    errors=[
        Bad((3,), match="diagonal: the tensor must have at least 2 dims"),
        Bad((3, 3), 0, 1, 1, match="diagonal: dim1 and dim2 are both dim 1"),
    ],
)
def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The `offset` diagonal of the matrices in dims dim1, dim2, as a last dim (PyTorch's)."""
    _at_least_2d("diagonal", input)
    a, b = _dim("diagonal", input.ndim, dim1), _dim("diagonal", input.ndim, dim2)
    if a == b:
        raise ValueError(f"diagonal: dim1 and dim2 are both dim {a}")
    axes = tuple(i for i in range(input.ndim) if i not in (a, b)) + (a, b)
    x = input if axes == tuple(range(input.ndim)) else _permute(input, axes=axes)
    return _getitem(x, index=(Ellipsis,) + _diag_index(x, *x.shape[-2:], int(offset)))


_diagonal = diagonal


@composite(
    samples=[Sample((3,)), Sample((3,), 1), Sample((3,), -2), Sample((3, 4)), Sample((4, 3), -1)],
    torch="diag",
    numpy="diag",
    errors=[Bad((2, 2, 2), match=r"diag: the tensor must be 1-D or 2-D, got shape \(2, 2, 2\)")],
)
def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-D tensor's square matrix with it on the `diagonal`, or a matrix's diagonal."""
    if input.ndim == 2:
        return _diagonal(input, diagonal)
    if input.ndim != 1:
        raise ValueError(f"diag: the tensor must be 1-D or 2-D, got shape {input.shape}")
    m = input.shape[0] + abs(int(diagonal))
    out = full((m, m), 0, dtype=input.dtype, device=input.device)
    return _setitem(out, input, index=_diag_index(input, m, m, int(diagonal)))


@composite(
    samples=[Sample((3, 4)), Sample((4, 4))],
    torch="trace",
    numpy="trace",
    errors=[Bad((2, 2, 2), match=r"trace: expected a 2-D tensor, got shape \(2, 2, 2\)")],
)
def trace(input: Tensor) -> Tensor:
    """The sum of the main diagonal of a matrix."""
    if input.ndim != 2:
        raise ValueError(f"trace: expected a 2-D tensor, got shape {input.shape}")
    return _diagonal(input).sum()


# -- pad, roll, repeat_interleave, narrow, unbind ---------------------------------------------

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


@composite(
    samples=[
        Sample((2, 3), [1, 2]),
        Sample((2, 3, 4), [1, 0, 2, 1], value=0.5),
        Sample((2, 5), [-1, 2]),
        Sample((2, 3, 4), [2, 3], mode="reflect"),
        Sample((1, 2, 3, 4), [1, 2, 2, 1], mode="replicate"),
        Sample((2, 3, 4), [1, 4, 2, 0], mode="circular"),
        Sample((1, 2, 3, 3, 2), [1, 1, 1, 2, 0, 1], mode="reflect"),
    ],
    torch="nn.functional.pad",
    errors=[
        Bad((2, 3), [1], match="pad: the padding \\[1\\] must have an even length"),
        Bad((2, 3), [1, 1], mode="wrap", match="pad: mode must be one of"),
        Bad((2, 3), [3, 0], mode="reflect", match="pad: reflect padding"),
        Bad((3,), [1, 1], mode="replicate", match="pad: replicate padding of 1 dims needs"),
    ],
)
def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last dims, as PyTorch's pad: `pad` holds (before, after) sizes from the last dim
    back; a negative size crops. Modes: constant (with `value`), reflect, replicate, circular."""
    p = [int(k) for k in pad]
    x = input
    if len(p) % 2 or len(p) > 2 * x.ndim:
        raise ValueError(f"pad: the padding {list(pad)} must have an even length of at most "
                         f"{2 * x.ndim} (two sizes a dim, from the last)")  # fmt: skip
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(_PAD_MODES)}, not {mode!r}")
    k = len(p) // 2
    if mode != "constant" and (k > 3 or x.ndim not in (k + 1, k + 2)):
        raise ValueError(f"pad: {mode} padding of {k} dims needs a tensor of {k + 1} or {k + 2} "
                         f"dims, got shape {x.shape}")  # fmt: skip
    for i in range(k):
        x = _pad_dim(x, x.ndim - 1 - i, p[2 * i], p[2 * i + 1], mode, value)
    return x


def _pad_dim(x: Tensor, d: int, lo: int, hi: int, mode: str, value: Any) -> Tensor:
    n, pre = x.shape[d], (slice(None),) * d
    if mode == "constant":
        if lo < 0 or hi < 0:
            x = _getitem(x, index=pre + (slice(-builtins.min(lo, 0), n + builtins.min(hi, 0)),))
            lo, hi, n = builtins.max(lo, 0), builtins.max(hi, 0), x.shape[d]
        if not lo and not hi:
            return x
        shape = x.shape[:d] + (n + lo + hi,) + x.shape[d + 1 :]
        out = full(shape, 0 if value is None else value, dtype=x.dtype, device=x.device)
        return _setitem(out, x, index=pre + (slice(lo, lo + n),))
    limit = {"reflect": n - 1, "circular": n}.get(mode, np.inf if n else 0)
    if builtins.max(lo, hi) > limit or (n == 0 and (lo or hi)):
        raise ValueError(f"pad: {mode} padding ({lo}, {hi}) of dim {d} must be at most {limit} "
                         f"(its size is {n})")  # fmt: skip
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        i = (n - 1) - np.abs((n - 1) - np.abs(i))
    elif mode == "replicate":
        i = np.clip(i, 0, n - 1)
    else:
        i = i % n
    return _getitem(x, index=pre + (_on(x, i),))


@composite(
    samples=[
        Sample((5,), 2),
        Sample((3, 4), 1, 0),
        Sample((3, 4), [1, -6], [0, 1]),
        Sample((2, 3), 4),
    ],
    torch="roll",
    numpy=lambda np, x, shifts, dims=None: np.roll(x, shifts, dims),
    errors=[Bad((3, 4), [1, 2], [0], match="roll: 2 shifts for 1 dims")],
)
def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """The elements shifted along dims (around the end; dims None: of the flattened tensor)."""
    if dims is None:
        return reshape(roll(flatten(input), shifts, 0), input.shape)
    shifts = [shifts] if isinstance(shifts, (int, np.integer)) else list(shifts)
    dims = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    x = input
    for s, d in zip(shifts, dims):
        d = _dim("roll", x.ndim, d)
        n, pre = x.shape[d], (slice(None),) * d
        s = int(s) % n if n else 0
        if s:
            x = concatenate([_getitem(x, index=pre + (slice(n - s, None),)),
                             _getitem(x, index=pre + (slice(0, n - s),))], axis=d)  # fmt: skip
    return x


@composite(
    samples=[
        Sample((3,), 2),
        Sample((2, 3), 2, 1),
        Sample((2, 3), _I([1, 0, 2]), 1),
        Sample((3, 2), _I([2, 1, 3]), 0),
    ],
    torch="repeat_interleave",
    numpy=lambda np, x, repeats, dim=None: np.repeat(x, repeats, dim),
    errors=[
        Bad((3,), -1, match="repeat_interleave: repeats must be non-negative"),
        Bad((2, 3), _I([1, 2]), 1, match="repeat_interleave: 2 repeats for a dim of size 3"),
    ],
)
def repeat_interleave(
    input: Tensor, repeats: Any = None, dim: int | None = None, *, output_size: int | None = None
) -> Tensor:
    """Each element (or slice along dim) repeated `repeats` times, in place, as PyTorch's;
    `repeat_interleave(counts)` alone gives each index its count of times."""
    if repeats is None:  # torch.repeat_interleave(counts): the indices, each counts[i] times
        r = _counts(input, None)
        return _tensor(np.repeat(np.arange(r.size), r), device=input.device)
    if dim is None:
        x, d = flatten(input), 0
    else:
        x, d = input, _dim("repeat_interleave", input.ndim, dim)
    n = x.shape[d]
    r = _counts(repeats, n)
    return _getitem(x, index=(slice(None),) * d + (_on(x, np.repeat(np.arange(n), r)),))


def _counts(repeats: Any, n: int | None) -> Any:
    """repeat_interleave's repeats as host ints (NumPy's repeat and CuPy's take host counts)."""
    r = repeats.data if isinstance(repeats, Tensor) else repeats
    r = np.asarray(backend.to_device(r, backend.CPU) if backend.is_cuda_array(r) else r)
    if r.dtype.kind not in "iu" or r.ndim > 1:
        raise TypeError(
            "repeat_interleave: repeats must be an int or a 1-D integer tensor, not "
            f"{r.dtype} of shape {r.shape}"
        )
    if (r < 0).any():
        raise ValueError(f"repeat_interleave: repeats must be non-negative, got {r.tolist()}")
    if n is not None and r.ndim and r.size not in (1, n):
        raise ValueError(f"repeat_interleave: {r.size} repeats for a dim of size {n}")
    return r.reshape(-1) if r.ndim else r


@composite(
    samples=[Sample((5, 3), 0, 1, 3), Sample((2, 6), 1, -4, 2), Sample((3,), 0, 3, 0)],
    torch="narrow",
    errors=[Bad((4,), 0, 3, 2, match="narrow: start 3 and length 2 do not fit in dim 0")],
)
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The `length` elements from `start` (negative: from the end) along dim, as PyTorch's."""
    d = _dim("narrow", input.ndim, dim)
    n, s = input.shape[d], int(start)
    s = s + n if s < 0 else s
    if not 0 <= s <= n or length < 0 or s + length > n:
        raise ValueError(
            f"narrow: start {start} and length {length} do not fit in dim {d} of size {n}"
        )
    return _getitem(input, index=(slice(None),) * d + (slice(s, s + length),))


@composite(
    samples=[Sample((3, 2)), Sample((2, 3, 4), 1), Sample((2, 3), -1)],
    torch=lambda t, x, dim=0: list(t.unbind(x, dim)),
    errors=[Bad((), match="unbind: a 0-d tensor has no dim to unbind")],
)
def unbind(input: Tensor, dim: int = 0) -> tuple:
    """The slices along dim, each without it (a list; PyTorch's is a tuple)."""
    if input.ndim == 0:
        raise ValueError("unbind: a 0-d tensor has no dim to unbind")
    d = _dim("unbind", input.ndim, dim)
    return tuple(_getitem(input, index=(slice(None),) * d + (i,)) for i in range(input.shape[d]))


@composite(samples=[Sample((2, 3, 4)), Sample(())], torch="ravel", numpy="ravel")
def ravel(input: Tensor) -> Tensor:
    """The elements in one dim, in row-major order."""
    return reshape(input, (-1,))


# -- stacks and grids -------------------------------------------------------------------------


def _atleast(t: Any, n: int) -> Tensor:
    """t with dims added as NumPy's atleast_{1,2,3}d adds them."""
    t = t if isinstance(t, Tensor) else _tensor(t)
    s = tuple(t.shape)
    if len(s) >= n:
        return t
    return reshape(t, {0: (1,) * n, 1: (1,) + s + (1,) * (n - 2), 2: s + (1,)}[len(s)])


@composite(
    samples=[Sample([(3,), (3,)]), Sample([(2, 3), (1, 3)]), Sample([(), ()])],
    torch="vstack",
    numpy="vstack",
    errors=[Bad([(2, 3), (2, 2)], match="vstack: ")],
)
def vstack(tensors: Any) -> Tensor:
    """Tensors stacked as rows (1-D ones become rows), along dim 0."""
    return concatenate([_atleast(t, 2) for t in tensors], 0)


@composite(
    samples=[Sample([(2,), (3,)]), Sample([(2, 3), (2, 1)]), Sample([(), ()])],
    torch="hstack",
    numpy="hstack",
    errors=[Bad([(2, 3), (3, 3)], match="hstack: ")],
)
def hstack(tensors: Any) -> Tensor:
    """Tensors joined along dim 1 (along dim 0 for 1-D ones)."""
    ts = [_atleast(t, 1) for t in tensors]
    return concatenate(ts, 0 if ts and ts[0].ndim == 1 else 1)


@composite(
    samples=[Sample([(2, 3), (2, 3)]), Sample([(3,), (3,)]), Sample([(2, 1, 2), (2, 1, 1)])],
    torch="dstack",
    numpy="dstack",
    errors=[Bad([(2, 3), (3, 3)], match="dstack: ")],
)
def dstack(tensors: Any) -> Tensor:
    """Tensors joined along dim 2 (as NumPy's atleast_3d shapes them)."""
    return concatenate([_atleast(t, 3) for t in tensors], 2)


@composite(
    samples=[
        Sample((3,), (2,)),
        Sample((3,), (2,), indexing="xy"),
        Sample((2,), (), (4,), indexing="xy"),
    ],
    torch=lambda t, *xs, indexing="ij": list(t.meshgrid(*xs, indexing=indexing)),
    numpy=lambda np, *xs, indexing="ij": np.meshgrid(*xs, indexing=indexing),
    errors=[
        Bad((2,), (2, 2), match=r"meshgrid: expects 0-d or 1-d tensors, got shape \(2, 2\)"),
        Bad((2,), indexing="yx", match="meshgrid: indexing must be 'ij' or 'xy'"),
    ],
)
def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple:
    """Coordinate grids from 1-D tensors, PyTorch's default indexing "ij" (matrix) or "xy"
    (Cartesian: the first two dims swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', not {indexing!r}")
    ts = [t if isinstance(t, Tensor) else _tensor(t) for t in tensors]
    for t in ts:
        if t.ndim > 1:
            raise ValueError(f"meshgrid: expects 0-d or 1-d tensors, got shape {t.shape}")
    pos = list(range(len(ts)))
    if indexing == "xy" and len(ts) > 1:
        pos[0], pos[1] = 1, 0
    shape = [0] * len(ts)
    for t, i in zip(ts, pos):
        shape[i] = math.prod(t.shape)
    return tuple(
        _broadcast_to(
            reshape(t, [n if j == i else 1 for j, n in enumerate(shape)]), shape=tuple(shape)
        )
        for t, i in zip(ts, pos)
    )
