"""Convolution and pooling, NCHW as in PyTorch: `unfold`/`fold` (im2col/col2im) are a primitive
pair, each the other's derivative; convolutions and poolings are composites over them and matmul,
so their gradients (of every order) come from those two rules and matmul's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from .. import kernels as _kernels
from ..tensor import Tensor
from .elementwise import where
from .indexing import pad
from .registry import Bad, Sample, composite, primitive

_INTS = (int, np.integer)


# -- arguments --------------------------------------------------------------------------------


def _ints(op: str, name: str, v: Any, n: int, lo: int = 0) -> tuple[int, ...]:
    """An int or n ints (each >= lo) as a tuple of n ints, or a clear error."""
    t = (v,) * n if isinstance(v, _INTS) else tuple(v) if isinstance(v, (tuple, list)) else None
    if (
        t is None
        or len(t) != n
        or any(isinstance(k, bool) or not isinstance(k, _INTS) or k < lo for k in t)
    ):
        raise ValueError(f"{op}: {name} must be an int or {n} ints, each at least {lo}, got {v!r}")
    return tuple(int(k) for k in t)


def _batched(op: str, x: Any, spatial: int) -> tuple[Any, bool]:
    """x with a batch dim (PyTorch takes unbatched (C, *spatial) inputs too)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a tensor, got a {type(x).__name__}")
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(
            f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input, "
            f"got shape {x.shape}"
        )
    return (x, True) if x.ndim == spatial + 2 else (x.reshape((1,) + x.shape), False)


def _float(op: str, *ts: Any) -> None:
    for t in ts:
        if isinstance(t, Tensor) and t.dtype.kind not in "fc":
            raise TypeError(f"{op}: expected floating-point tensors, got {t.dtype}")


def _out(op: str, n: int, lo: int, hi: int, k: int, d: int, s: int) -> int:
    """Blocks of extent d*(k-1)+1 at stride s in n elements padded by (lo, hi)."""
    span = d * (k - 1) + 1
    if n + lo + hi < span:
        raise ValueError(
            f"{op}: the kernel (extent {span} with dilation) is bigger than the padded input "
            f"({n} + {lo + hi} padding)"
        )
    return (n + lo + hi - span) // s + 1


def _blocks(op: str, size: tuple, k: tuple, d: tuple, p: tuple, s: tuple) -> tuple[int, int]:
    """(oh, ow) for a plane of `size` and padding p = (top, bottom, left, right)."""
    return (
        _out(op, size[0], p[0], p[1], k[0], d[0], s[0]),
        _out(op, size[1], p[2], p[3], k[1], d[1], s[1]),
    )


# -- unfold / fold: the primitive pair --------------------------------------------------------


def _block_view(xp, x, kernel_size, dilation, stride, oh, ow) -> Any:
    """Every block of a padded (N, C, H, W) array as a strided view (N, C, kh, kw, oh, ow)."""
    sn, sc, sh, sw = x.strides
    (dh, dw), (th, tw) = dilation, stride
    shape = x.shape[:2] + tuple(kernel_size) + (oh, ow)
    return xp.lib.stride_tricks.as_strided(x, shape, (sn, sc, sh * dh, sw * dw, sh * th, sw * tw))


def _unfold_arrays(xp, x, *, kernel_size, dilation, padding, stride, fill=0):
    n, c, h, w = x.shape
    oh, ow = _blocks("unfold", (h, w), kernel_size, dilation, padding, stride)
    if any(padding):
        t, b, l, r = padding  # noqa: E741
        xpad = xp.full((n, c, h + t + b, w + l + r), fill, x.dtype)
        xpad[:, :, t : t + h, l : l + w] = x
        x = xpad
    view = _block_view(xp, x, kernel_size, dilation, stride, oh, ow)  # copied once (CuPy too)
    return xp.ascontiguousarray(view).reshape(n, c * kernel_size[0] * kernel_size[1], oh * ow)


def _fold_arrays(xp, x, *, output_size, kernel_size, dilation, padding, stride):
    n, ckk, nblocks = x.shape
    kk = kernel_size[0] * kernel_size[1]
    h, w = output_size
    oh, ow = _blocks("fold", (h, w), kernel_size, dilation, padding, stride)
    if ckk % kk or nblocks != oh * ow:
        raise ValueError(
            f"fold: input of shape {x.shape} does not match kernel_size {kernel_size} and "
            f"output_size {output_size}: expected (N, C * {kk}, {oh * ow})"
        )
    t, b, l, r = padding  # noqa: E741
    out = xp.zeros((n, ckk // kk, h + t + b, w + l + r), x.dtype)
    cols = x.reshape((n, ckk // kk) + tuple(kernel_size) + (oh, ow))
    if all(d == 1 and s >= k for k, d, s in zip(kernel_size, dilation, stride)):
        # Blocks that do not overlap (pooling's): one strided copy, nothing to add up.
        _block_view(xp, out, kernel_size, dilation, stride, oh, ow)[...] = cols
    else:
        (dh, dw), (sh, sw) = dilation, stride
        for i in range(kernel_size[0]):
            for j in range(kernel_size[1]):  # overlapping blocks add up
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                out[:, :, rows, j * dw : j * dw + sw * (ow - 1) + 1 : sw] += cols[:, :, i, j]
    return out[:, :, t : t + h, l : l + w] if any(padding) else out


def _pads(op: str, padding: Any) -> tuple[int, int, int, int]:
    ph, pw = _ints(op, "padding", padding, 2)
    return ph, ph, pw, pw


def _plane_args(op: str, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> dict:
    return dict(
        kernel_size=_ints(op, "kernel_size", kernel_size, 2, 1),
        dilation=_ints(op, "dilation", dilation, 2, 1),
        padding=_pads(op, padding),
        stride=_ints(op, "stride", stride, 2, 1),
    )


@primitive(
    "unfold",
    save="",
    samples=[
        Sample((2, 3, 5, 6), kernel_size=2),
        Sample((1, 2, 6, 5), kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1)),
        Sample((2, 7, 7), kernel_size=3, stride=2, padding=(0, 2)),
    ],
    torch="nn.functional.unfold",
    errors=[
        Bad((1, 2, 3, 3), kernel_size=5, match="unfold: the kernel .* is bigger than the padded"),
        Bad((1, 2, 3, 3), kernel_size=2, stride=0, match="unfold: stride must be an int or 2"),
        Bad((3, 3), kernel_size=2, match="unfold: expected a 3-D .* or 4-D"),
    ],
)
def _unfold(xp, x, **args):
    """im2col of (N, C, H, W): kernel_size, dilation, stride pairs, padding (t, b, l, r)."""
    return _unfold_arrays(xp, x, **args)


@primitive(
    "fold",
    save="",
    samples=[
        Sample((2, 12, 20), output_size=(5, 6), kernel_size=2),
        Sample(
            (1, 12, 9), output_size=[6, 5], kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=2
        ),
        Sample((18, 4), output_size=4, kernel_size=3, padding=1, stride=2),
    ],
    torch="nn.functional.fold",
    errors=[
        Bad((1, 12, 7), output_size=(5, 6), kernel_size=2, match=r"fold: input of shape"),
        Bad((1, 12, 20), output_size=(5, 6), kernel_size=0, match="fold: kernel_size must be"),
    ],
)
def _fold(xp, x, **args):
    """col2im into (N, C, *output_size), the adjoint of _unfold with the same arguments."""
    return _fold_arrays(xp, x, **args)


_unfold.defvjp(lambda g, y, x, **p: _fold(g, output_size=x.shape[2:], **p))
_fold.defvjp(lambda g, y, x, *, output_size, **p: _unfold(g, **p))


@_unfold.api
def unfold(
    input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
) -> Tensor:
    """Sliding blocks of a (N, C, H, W) batch as columns (N, C * kh * kw, blocks): im2col."""
    x, batched = _batched("unfold", input, 2)
    y = _unfold(x, **_plane_args("unfold", kernel_size, dilation, padding, stride))
    return y if batched else y.reshape(y.shape[1:])


@_fold.api
def fold(
    input: Tensor,
    output_size: Any,
    kernel_size: Any,
    dilation: Any = 1,
    padding: Any = 0,
    stride: Any = 1,
) -> Tensor:
    """Columns (N, C * kh * kw, blocks) summed back into (N, C, H, W): col2im, unfold's adjoint."""
    x, batched = _batched("fold", input, 1)
    size = _ints("fold", "output_size", output_size, 2, 1)
    y = _fold(x, output_size=size, **_plane_args("fold", kernel_size, dilation, padding, stride))
    return y if batched else y.reshape(y.shape[1:])


# -- convolution ------------------------------------------------------------------------------


def _conv_pads(op: str, padding: Any, k: tuple, d: tuple, s: tuple) -> tuple[int, ...]:
    """(top, bottom, left, right) from an int, ints, 'valid' or 'same' (odd extra at the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * 4
        if padding != "same":
            raise ValueError(
                f"{op}: padding must be 'same', 'valid', an int or ints, not {padding!r}"
            )
        if any(v != 1 for v in s):
            raise ValueError(f"{op}: padding='same' needs stride 1 (as PyTorch), got stride {s}")
        total = [di * (ki - 1) for ki, di in zip(k, d)]
        return tuple(v for t in total for v in (t // 2, t - t // 2))
    return tuple(v for p in _ints(op, "padding", padding, len(k)) for v in (p, p))


def _conv2d(
    op: str, x: Tensor, w: Tensor, b: Any, s: tuple, p: tuple, d: tuple, groups: Any
) -> Tensor:
    """conv2d on (N, C, H, W) with checked arguments; op names the function for errors."""
    if not isinstance(groups, _INTS) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups:
        raise ValueError(
            f"{op}: input has {c} channels but weight expects {cg * groups} (groups={groups})"
        )
    if o % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {o} output channels")
    if b is not None and tuple(b.shape) != (o,):
        raise ValueError(f"{op}: bias of shape {tuple(b.shape)} for {o} output channels")
    _blocks(op, (h, wd), (kh, kw), d, p, s)  # a kernel bigger than the input: an error here
    if groups != 1:
        return _conv2d_composite(x, w, b, stride=s, padding=p, dilation=d, groups=groups)
    return _conv2d_gemm(x, w, b, stride=s, padding=p, dilation=d)


def _gemm_twin(t: Any, x: Any, w: Any, b: Any, *, stride, padding, dilation) -> Any:
    top, bottom, left, right = padding
    x = t.nn.functional.pad(x, (left, right, top, bottom))
    return t.nn.functional.conv2d(x, w, b, stride, 0, dilation)


@primitive(
    "_conv2d_gemm",
    save="x",
    aux=True,
    samples=[
        Sample(
            (2, 3, 6, 5), (4, 3, 3, 3), (4,), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)
        ),
        Sample(
            (2, 3, 7, 6), (4, 3, 3, 2), None, stride=(2, 2), padding=(1, 1, 1, 1), dilation=(1, 1)
        ),
        Sample(
            (2, 4, 6, 6), (3, 4, 3, 3), (3,), stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1)
        ),
        Sample(
            (1, 2, 7, 7), (2, 2, 2, 3), None, stride=(1, 1), padding=(1, 0, 2, 1), dilation=(2, 1)
        ),
        # 'same' with an even width: the input's gradient taken as a convolution
        Sample(
            (1, 4, 5, 6), (2, 4, 3, 2), (2,), stride=(1, 1), padding=(1, 1, 0, 1), dilation=(1, 1)
        ),
    ],
    torch=_gemm_twin,
)
def _conv2d_gemm(xp, x, w, b, *, stride, padding, dilation, unfold=_unfold_arrays):
    """conv2d of one group on checked arrays: im2col, then a matmul with the weight."""
    n, o = x.shape[0], w.shape[0]
    oh, ow = _blocks("conv2d", x.shape[2:], w.shape[2:], dilation, padding, stride)
    cols = unfold(xp, x, kernel_size=w.shape[2:], dilation=dilation, padding=padding,
                  stride=stride)  # fmt: skip
    y = xp.matmul(w.reshape(o, math.prod(w.shape[1:])), cols).reshape(n, o, oh, ow)
    if b is not None:
        b = b.reshape(o, 1, 1)
        y = xp.add(y, b, out=y) if b.dtype == y.dtype else y + b
    return y, cols


def _conv2d_gemm_grad(g, y, x, w, b, *, needs, aux, stride, padding, dilation,
                      unfold=_unfold_arrays, fold=_fold_arrays):  # fmt: skip
    xp = backend.array_module(g)
    n, o, oh, ow = g.shape
    c, k = x.shape[1], w.shape[2:]
    w2, g3 = w.reshape(o, math.prod(w.shape[1:])), g.reshape(n, o, oh * ow)
    gw = None
    if needs[1]:  # into an array of w's shape: a view would be copied again on delivery
        gw = xp.empty(w.shape, w2.dtype)
        # Each image's product as blocks @ g^T (its transpose): BLAS runs that operand order
        # faster, as the blocks are read along their rows.
        xp.matmul(aux, g3.swapaxes(1, 2)).sum(axis=0, out=gw.reshape(w2.shape).T)
    gb = g.sum(axis=(0, 2, 3)) if b is not None and needs[2] else None
    gx = None
    if needs[0]:
        h, wd = x.shape[2:]
        if _as_convolution(stride, dilation, padding, k, o * h * wd, c * oh * ow):
            # The input's gradient as a convolution of g with the flipped weight: one im2col
            # and a matmul, instead of a matmul and col2im's overlapping strided sums.
            wf = w[:, :, ::-1, ::-1].swapaxes(0, 1)
            q = tuple(kk - 1 - p for kk, p in zip((k[0], k[0], k[1], k[1]), padding))
            cols = unfold(xp, g, kernel_size=k, dilation=(1, 1), padding=q, stride=(1, 1))
            gx = xp.empty(x.shape, cols.dtype)
            wf = xp.ascontiguousarray(wf).reshape(c, o * k[0] * k[1])
            xp.matmul(wf, cols, out=gx.reshape(n, c, h * wd))
        else:
            gx = fold(xp, xp.matmul(w2.T, g3), output_size=x.shape[2:], kernel_size=k,
                      dilation=dilation, padding=padding, stride=stride)  # fmt: skip
    return gx, gw, gb


def _as_convolution(stride, dilation, padding, k, g_size: int, x_size: int) -> bool:
    """Whether conv2d's input gradient is cheaper as a convolution of its output gradient: unit
    stride and dilation, padding below the kernel, and g no bigger per image than x's blocks."""
    return (
        stride == (1, 1)
        and dilation == (1, 1)
        and all(p < kk for p, kk in zip(padding, (k[0], k[0], k[1], k[1])))
        and g_size <= x_size
    )


_conv2d_gemm.defvjp_joint(_conv2d_gemm_grad)


# -- the kernels' way: the same products, the blocks moved by Numba loops ---------------------


def _unfold_kernel(xp, x, *, kernel_size, dilation, padding, stride):
    size = _blocks("unfold", x.shape[2:], kernel_size, dilation, padding, stride)
    return _kernels.im2col(x, kernel_size, stride, dilation, padding, size)


def _fold_kernel(xp, x, *, output_size, kernel_size, dilation, padding, stride):
    size = _blocks("fold", output_size, kernel_size, dilation, padding, stride)
    shape = (x.shape[0], x.shape[1] // (kernel_size[0] * kernel_size[1]), *output_size)
    return _kernels.col2im(x, shape, kernel_size, stride, dilation, padding, size)


def _kernel_accepts(x, w, b, *, stride, padding, dilation) -> bool:
    return (
        _kernels.conv_accepts(x, w)
        and x.ndim == 4
        and w.ndim == 4
        and (b is None or (type(b) is np.ndarray and b.dtype == x.dtype))
    )


@_conv2d_gemm.implementation(
    "kernel",
    accepts=_kernel_accepts,
    backward=lambda *args, **kw: _conv2d_gemm_grad(
        *args, **kw, unfold=_unfold_kernel, fold=_fold_kernel
    ),
)
def _conv_kernel(xp, x, w, b, *, stride, padding, dilation):
    return _conv2d_gemm.fwd(xp, x, w, b, stride=stride, padding=padding, dilation=dilation,
                            unfold=_unfold_kernel)  # fmt: skip


@_conv2d_gemm.defcomposite
def _conv2d_composite(x, w, b, *, stride, padding, dilation, groups=1):
    """conv2d with ops (unfold, matmul): what _conv2d_gemm means, and any number of groups."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    k = (kh, kw)
    oh, ow = _blocks("conv2d", (h, wd), k, dilation, padding, stride)
    cols = _unfold(x, kernel_size=k, dilation=dilation, padding=padding, stride=stride)
    if groups == 1:
        y = w.reshape(o, cg * kh * kw) @ cols
    else:
        cols = cols.reshape(n, groups, cg * kh * kw, oh * ow)
        y = w.reshape(groups, o // groups, cg * kh * kw) @ cols
    y = y.reshape(n, o, oh, ow)
    return y if b is None else y + b.reshape(o, 1, 1)


def _conv(op: str, dims: int, x: Any, w: Any, b: Any, stride, padding, dilation, groups):
    """conv1d/conv2d: check, batch, run as conv2d (1-D as a plane of height 1)."""
    x, batched = _batched(op, x, dims)
    _float(op, x, w, b)
    if not isinstance(w, Tensor) or w.ndim != dims + 2:
        raise ValueError(f"{op}: weight must be a {dims + 2}-D tensor (out, in/groups, *kernel)")
    k = tuple(w.shape[2:])
    s = _ints(op, "stride", stride, dims, 1)
    d = _ints(op, "dilation", dilation, dims, 1)
    p = _conv_pads(op, padding, k, d, s)
    if dims == 1:
        x, w = x.reshape(x.shape[:2] + (1, -1)), w.reshape(w.shape[:2] + (1, -1))
        s, d, p = (1,) + s, (1,) + d, (0, 0) + p
    y = _conv2d(op, x, w, b, s, p, d, groups)
    y = y[:, :, 0] if dims == 1 else y
    return y if batched else y[0]


_SPEC = [  # (input, weight, stride, padding, dilation, groups)
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 0, 1, 1),
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, 1, 1),
    ((1, 4, 8, 7), (6, 2, 3, 3), (2, 1), (1, 2), (2, 1), 2),
    ((2, 4, 5, 6), (4, 1, 2, 3), 1, "same", (2, 1), 4),
    ((1, 2, 5, 5), (3, 2, 3, 3), 3, "valid", 1, 1),
    ((4, 6, 6), (2, 2, 2, 2), 1, (0, 1), 1, 2),
]
_CONV2D = [
    Sample(x, w, (w[0],) if i % 2 == 0 else None, stride=s, padding=p, dilation=d, groups=g)
    for i, (x, w, s, p, d, g) in enumerate(_SPEC)
]
_CONV2D_BAD = [
    Bad((1, 3, 5, 5), (4, 4, 3, 3), match=r"conv2d: input has 3 channels but weight expects 4 \("),
    Bad((1, 2, 3, 3), (1, 2, 5, 5), match="conv2d: the kernel .* is bigger than the padded input"),
    Bad((1, 4, 5, 5), (3, 2, 3, 3), groups=2, match="conv2d: groups=2 does not divide the 3"),
    Bad((1, 2, 5, 5), (3, 2, 3, 3), stride=2, padding="same", match="conv2d: padding='same' needs"),
    Bad((1, 2, 5, 5), (3, 2, 3, 3), padding="full", match="conv2d: padding must be 'same'"),
    Bad((2, 5, 5), (3, 2, 3), match="conv2d: weight must be a 4-D tensor"),
    Bad((5, 5), (3, 2, 3, 3), match="conv2d: expected a 3-D .* or 4-D"),
]


@composite(samples=_CONV2D, torch="nn.functional.conv2d", errors=_CONV2D_BAD)
def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) of (N, C, H, W) with weight (O, C/groups, kh, kw), as
    PyTorch's: im2col (unfold) and a matmul. No fused `activation`: F.linear over the unfolded
    rows measured slower than this (the transposes to and from rows cost more than it saves)."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


@composite(
    samples=[
        Sample((2, 3, 7), (4, 3, 3), (4,)),
        Sample((2, 4, 9), (6, 2, 2), None, stride=2, padding=1, dilation=2, groups=2),
        Sample((3, 8), (2, 3, 3), (2,), padding="same", dilation=2),
    ],
    torch="nn.functional.conv1d",
    errors=[
        Bad((1, 3, 5), (4, 4, 3), match=r"conv1d: input has 3 channels but weight expects 4"),
        Bad((1, 2, 5), (3, 2, 3), stride=2, padding="same", match="conv1d: padding='same' needs"),
    ],
)
def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution of (N, C, L) with weight (O, C/groups, k), as PyTorch's."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


@composite(
    samples=[
        Sample((2, 3, 4, 5), (3, 2, 3, 3), (2,)),
        Sample((1, 4, 3, 4), (4, 1, 3, 2), None, stride=2, padding=1, output_padding=1, groups=2),
        Sample((2, 2, 3, 3), (2, 3, 2, 3), (3,), stride=(2, 3), padding=(1, 0), dilation=(2, 1)),
        Sample((2, 4, 4), (2, 2, 3, 3), None, stride=3, output_padding=(2, 1)),
        Sample((1, 2, 4, 3), (2, 1, 2, 3), None, padding=(1, 0), output_padding=1, dilation=2),
    ],
    torch="nn.functional.conv_transpose2d",
    errors=[
        Bad((1, 3, 4, 4), (4, 2, 3, 3), match="conv_transpose2d: input has 3 channels but weight"),
        Bad((1, 2, 4, 4), (2, 2, 3, 3), stride=2, output_padding=2, match="conv_transpose2d: outp"),
        Bad((1, 4, 4, 4), (4, 2, 3, 3), groups=3, match="conv_transpose2d: groups=3 does not"),
    ],
)
def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Transposed convolution (conv2d's input gradient) of (N, Cin, H, W) with weight
    (Cin, Cout/groups, kh, kw), as PyTorch's: a matmul, then fold (col2im)."""
    op = "conv_transpose2d"
    x, batched = _batched(op, input, 2)
    _float(op, x, weight, bias)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"{op}: weight must be a 4-D tensor (in, out/groups, kh, kw)")
    if not isinstance(groups, _INTS) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    n, c, h, w = x.shape
    ci, og, kh, kw = weight.shape
    s, d = _ints(op, "stride", stride, 2, 1), _ints(op, "dilation", dilation, 2, 1)
    p, op_ = _ints(op, "padding", padding, 2), _ints(op, "output_padding", output_padding, 2)
    if c != ci:
        raise ValueError(f"{op}: input has {c} channels but weight expects {ci} (groups={groups})")
    if ci % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {ci} input channels")
    if any(q >= max(si, di) for q, si, di in zip(op_, s, d)):
        raise ValueError(f"{op}: output_padding {op_} must be smaller than stride or dilation")
    o = og * groups
    if bias is not None and tuple(bias.shape) != (o,):
        raise ValueError(f"{op}: bias of shape {tuple(bias.shape)} for {o} output channels")
    size = tuple(
        (n_ - 1) * si - 2 * pi + di * (ki - 1) + qi + 1
        for n_, si, pi, di, ki, qi in zip((h, w), s, p, d, (kh, kw), op_)
    )
    if min(size) < 1:
        raise ValueError(f"{op}: the output would be of size {size}; padding {p} is too large")
    kk = kh * kw
    xg = x.reshape(n, groups, ci // groups, h * w)
    wg = weight.reshape(groups, ci // groups, og * kk).swapaxes(1, 2)
    cols = (wg @ xg).reshape(n, o * kk, h * w)
    # The blocks' full extent, (h - 1) * s + d * (k - 1) + 1, cropped by padding at the start
    # and at the end by padding less output_padding; past the blocks, output_padding adds zeros.
    extra = [max(q - pi, 0) for q, pi in zip(op_, p)]
    pads = tuple(v for pi, q in zip(p, op_) for v in (pi, max(pi - q, 0)))
    y = _fold(cols, output_size=tuple(m - e for m, e in zip(size, extra)), kernel_size=(kh, kw),
              dilation=d, padding=pads, stride=s)  # fmt: skip
    y = pad(y, [0, extra[1], 0, extra[0]]) if any(extra) else y
    y = y if bias is None else y + bias.reshape(o, 1, 1)
    return y if batched else y[0]


# -- pooling ----------------------------------------------------------------------------------


def _pool_size(op: str, n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooling output size: with ceil_mode, the last window must start in the input."""
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        raise ValueError(
            f"{op}: the kernel (extent {span} with dilation) is bigger than the padded input "
            f"({n} + {2 * p} padding)"
        )
    out = (n + 2 * p - span + (s - 1 if ceil else 0)) // s + 1
    return out - 1 if ceil and (out - 1) * s >= n + p else out


def _pool_args(op: str, dims: int, x: Any, kernel_size, stride, padding, dilation, ceil_mode):
    x, batched = _batched(op, x, dims)
    k = _ints(op, "kernel_size", kernel_size, dims, 1)
    s = k if stride is None or stride == [] else _ints(op, "stride", stride, dims, 1)
    p = _ints(op, "padding", padding, dims)
    d = _ints(op, "dilation", dilation, dims, 1)
    if any(pi * 2 > d_ * (ki - 1) + 1 for pi, ki, d_ in zip(p, k, d)):
        raise ValueError(f"{op}: padding {p} must be at most half of the kernel {k}")
    if dims == 1:
        x, k, s, p, d = x.reshape(x.shape[:2] + (1, -1)), (1,) + k, (1,) + s, (0,) + p, (1,) + d
    size = x.shape[2:]
    out = tuple(_pool_size(op, *a, bool(ceil_mode)) for a in zip(size, k, s, p, d))
    # ceil_mode's last window may run past the padded input: pad it further at the end.
    pads = tuple(
        v
        for n, o, ki, si, pi, di in zip(size, out, k, s, p, d)
        for v in (pi, max(pi, (o - 1) * si + di * (ki - 1) + 1 - n - pi))
    )
    return x, batched, dict(kernel_size=k, dilation=d, padding=pads, stride=s), out


def _window_max(xp, x, *, kernel_size, dilation, padding, stride) -> tuple[Any, Any]:
    """Each window's max (N, C, oh, ow) and its place in the window (i * kw + j): the first max,
    as PyTorch (of several NaNs, PyTorch takes the last; this, the first)."""
    n, c, h, w = x.shape
    oh, ow = _blocks("max_pool2d", (h, w), kernel_size, dilation, padding, stride)
    kk = kernel_size[0] * kernel_size[1]
    args = dict(kernel_size=kernel_size, dilation=dilation, padding=padding, stride=stride)
    cols = _unfold_arrays(xp, x, **args, fill=-xp.inf).reshape(n, c, kk, oh * ow)
    m = cols.max(axis=2, keepdims=True)  # NaN if any is
    at = cols == m
    at |= cols != cols
    # The first True along the window: the largest of kk, kk - 1, ... (argmax along a middle
    # axis measured some ten times slower).
    first = (at * xp.arange(kk, 0, -1, dtype=xp.int32).reshape(kk, 1)).max(axis=2)
    return m.reshape(n, c, oh, ow), (kk - first).reshape(n, c, oh, ow)


def _max_twin(t: Any, x: Any, *, kernel_size, dilation, padding, stride) -> Any:
    return t.nn.functional.max_pool2d(x, kernel_size, stride, padding[::2], dilation)


_POOL = dict(kernel_size=(2, 2), dilation=(1, 1), padding=(0, 0, 0, 0), stride=(2, 2))


@primitive(
    "_max_pool2d",
    save="x",
    aux=True,
    samples=[
        Sample((2, 3, 6, 5), **_POOL),
        Sample((1, 2, 7, 6), **dict(_POOL, kernel_size=(3, 2), padding=(1, 1, 1, 1))),
        Sample((2, 1, 8, 7), **dict(_POOL, dilation=(2, 1), stride=(1, 2))),
    ],
    torch=_max_twin,
)
def _max_pool2d(xp, x, *, kernel_size, dilation, padding, stride):
    """max_pool2d on (N, C, H, W) with checked arguments; keeps the place of each window's max."""
    return _window_max(xp, x, kernel_size=kernel_size, dilation=dilation, padding=padding,
                       stride=stride)  # fmt: skip


def _max_pool2d_grad(g, y, x, *, aux, **args):
    """Each window's gradient to its max (a where, so that it differentiates again), folded."""
    n, c, oh, ow = aux.shape
    nb, kk = oh * ow, args["kernel_size"][0] * args["kernel_size"][1]
    at_max = backend.array_module(aux).arange(kk).reshape(kk, 1) == aux.reshape(n, c, 1, nb)
    gc = where(at_max, g.reshape(n, c, 1, nb), 0).reshape(n, c * kk, nb)
    return _fold(gc, output_size=x.shape[2:], **args)


_max_pool2d.defvjp(_max_pool2d_grad)


def _max_pool2d_kernel_grad(g, y, x, *, needs, aux, kernel_size, dilation, padding, stride):
    gx = _kernels.max_pool2d_backward(g, aux, x.shape, kernel_size, stride, dilation, padding)
    return (gx,)


@_max_pool2d.implementation(
    "kernel",
    accepts=lambda x, **args: _kernels.conv_accepts(x, x) and x.ndim == 4,
    backward=_max_pool2d_kernel_grad,
)
def _max_pool2d_kernel(xp, x, *, kernel_size, dilation, padding, stride):
    size = _blocks("max_pool2d", x.shape[2:], kernel_size, dilation, padding, stride)
    return _kernels.max_pool2d_forward(x, kernel_size, stride, dilation, padding, size)


@_max_pool2d.defcomposite
def _max_pool2d_composite(x, *, kernel_size, dilation, padding, stride):
    """What the op means, for gradients of gradients: each window's values selected at the
    place of its maximum, which the array path finds (a constant), and summed."""
    args = dict(kernel_size=kernel_size, dilation=dilation, padding=padding, stride=stride)
    xp = backend.array_module(x.data)
    at = _window_max(xp, x.data, **args)[1]
    n, c, oh, ow = at.shape
    kk = kernel_size[0] * kernel_size[1]
    cols = _unfold(x, **args).reshape(n, c, kk, oh * ow)
    chosen = xp.arange(kk).reshape(kk, 1) == at.reshape(n, c, 1, oh * ow)
    return where(chosen, cols, 0).sum(axis=2).reshape(n, c, oh, ow)


def _max_pool(op: str, dims: int, x: Any, kernel_size, stride, padding, dilation, ceil_mode, ret):
    _float(op, x)
    x, batched, args, out = _pool_args(op, dims, x, kernel_size, stride, padding, dilation,
                                       ceil_mode)  # fmt: skip
    y = _max_pool2d(x, **args)
    y = y if dims == 2 else y[:, :, 0]
    y = y if batched else y[0]
    if not ret:
        return y
    # The indices: each window's max found again (only when asked), as its place in the plane.
    k, d, p, s = args["kernel_size"], args["dilation"], args["padding"], args["stride"]
    xp = backend.array_module(x.data)
    best = _window_max(xp, x.data, **args)[1].astype(np.int64)
    oh, ow = best.shape[2:]
    row = xp.arange(oh).reshape(oh, 1) * s[0] - p[0] + (best // k[1]) * d[0]
    col = xp.arange(ow) * s[1] - p[2] + (best % k[1]) * d[1]
    return y, Tensor._make((row * x.shape[3] + col).reshape(y.shape))


def _pool_twin(name: str) -> Any:
    """PyTorch's pool, its indices as a tuple of two outputs (the registry's way)."""
    return lambda t, *a, **kw: getattr(t.nn.functional, name)(*a, **kw)


@composite(
    samples=[
        Sample((2, 3, 6, 5), kernel_size=2),
        Sample((1, 2, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
        Sample((2, 2, 8, 7), kernel_size=(3, 2), stride=(2, 1), dilation=(2, 1), padding=(1, 0)),
        Sample((2, 5, 5), kernel_size=2, stride=2, ceil_mode=True, return_indices=True),
        Sample((1, 1, 6, 6), kernel_size=3, stride=1, padding=1, return_indices=True),
    ],
    torch=_pool_twin("max_pool2d"),
    errors=[
        Bad((1, 1, 4, 4), kernel_size=2, padding=2, match="max_pool2d: padding .* at most half"),
        Bad((1, 1, 2, 2), kernel_size=3, match="max_pool2d: the kernel .* is bigger"),
        Bad((4, 4), kernel_size=2, match="max_pool2d: expected a 3-D"),
    ],
)
def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """The max of each window of (N, C, H, W), as PyTorch's; the gradient goes to the first
    max of each window; return_indices: also the index of the max in its (H * W) plane."""
    args = (kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool("max_pool2d", 2, input, *args)


@composite(
    samples=[
        Sample((2, 3, 7), kernel_size=2),
        Sample((2, 3, 8), kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
        Sample((3, 9), kernel_size=4, stride=3, return_indices=True),
    ],
    torch=_pool_twin("max_pool1d"),
    errors=[Bad((1, 1, 4), kernel_size=2, padding=2, match="max_pool1d: padding")],
)
def max_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """The max of each window of (N, C, L), as PyTorch's (see max_pool2d)."""
    args = (kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool("max_pool1d", 1, input, *args)


def _divisor(n: int, o: int, k: int, s: int, lo: int, include_pad: bool) -> np.ndarray:
    """Each window's element count along one axis, as PyTorch's avg_pool counts them."""
    start = np.arange(o) * s - lo
    end = np.minimum(start + k, n + lo)  # the padding counts, what ceil_mode adds does not
    if not include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, n)
    return end - start


def _avg_pool(op: str, dims: int, x: Any, kernel_size, stride, padding, ceil, include_pad, div):
    _float(op, x)
    x, batched, args, out = _pool_args(op, dims, x, kernel_size, stride, padding, 1, ceil)
    n, c = x.shape[:2]
    k, s, p = args["kernel_size"], args["stride"], args["padding"]
    kk = k[0] * k[1]
    sums = _unfold(x, **args).reshape(n, c, kk, -1).sum(axis=2).reshape((n, c) + out)
    if div is not None:
        y = sums / div
    else:
        count = np.multiply.outer(
            *(_divisor(x.shape[2 + i], out[i], k[i], s[i], p[2 * i], include_pad) for i in (0, 1))
        )
        xp = backend.array_module(x.data)
        y = sums / Tensor._make(xp.asarray(count, dtype=x.dtype))
    y = y if dims == 2 else y[:, :, 0]
    return y if batched else y[0]


@composite(
    samples=[
        Sample((2, 3, 6, 5), kernel_size=2),
        Sample((1, 2, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
        Sample((1, 2, 7, 6), kernel_size=(3, 2), stride=2, padding=1, count_include_pad=False),
        Sample((2, 5, 5), kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False),
        Sample((1, 1, 6, 6), kernel_size=3, padding=1, divisor_override=4),
    ],
    torch="nn.functional.avg_pool2d",
    errors=[
        Bad((1, 1, 4, 4), kernel_size=2, padding=2, match="avg_pool2d: padding .* at most half"),
        Bad((1, 1, 4, 4), kernel_size=2, stride=0, match="avg_pool2d: stride must be"),
    ],
)
def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each window of (N, C, H, W), as PyTorch's (padding counts unless
    count_include_pad=False; divisor_override replaces the count)."""
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _avg_pool("avg_pool2d", 2, input, *args)


@composite(
    samples=[
        Sample((2, 3, 7), kernel_size=2),
        Sample((2, 3, 8), kernel_size=3, stride=2, padding=1, ceil_mode=True),
        Sample((3, 9), kernel_size=4, stride=3, padding=2, count_include_pad=False),
    ],
    torch="nn.functional.avg_pool1d",
    errors=[Bad((1, 1, 4), kernel_size=2, padding=2, match="avg_pool1d: padding")],
)
def avg_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """The mean of each window of (N, C, L), as PyTorch's."""
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, None)
    return _avg_pool("avg_pool1d", 1, input, *args)


def _averaging(n: int, o: int, dtype: Any, xp: Any) -> Any:
    """(o, n): row i averages PyTorch's adaptive window i, [floor(i n / o), ceil((i+1) n / o))."""
    m = np.zeros((o, n))
    for i in range(o):
        lo, hi = (i * n) // o, -(-(i + 1) * n // o)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return xp.asarray(m, dtype=dtype)


@composite(
    samples=[
        Sample((2, 3, 6, 5), output_size=3),
        Sample((1, 2, 7, 5), output_size=(3, None)),
        Sample((2, 5, 4), output_size=(4, 7)),
        Sample((1, 1, 5, 5), output_size=1),
    ],
    torch="nn.functional.adaptive_avg_pool2d",
    errors=[Bad((1, 2, 4, 4), output_size=0, match="adaptive_avg_pool2d: output_size")],
)
def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """The mean over an output_size grid of windows of (N, C, H, W), as PyTorch's; windows are
    rows times columns, so it is two matmuls with averaging matrices."""
    op = "adaptive_avg_pool2d"
    _float(op, input)
    x, batched = _batched(op, input, 2)
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    size = [x.shape[2 + i] if v is None else v for i, v in enumerate(size)]
    oh, ow = _ints(op, "output_size", size, 2, 1)
    xp = backend.array_module(x.data)
    ah, aw = (_averaging(x.shape[2 + i], o, x.dtype, xp) for i, o in enumerate((oh, ow)))
    y = Tensor._make(ah) @ x @ Tensor._make(aw.T)
    return y if batched else y[0]


__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "fold",
    "max_pool1d",
    "max_pool2d",
    "unfold",
]
