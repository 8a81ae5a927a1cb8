"""conv2d's two data movements on the CPU: im2col and its transpose, col2im, as Numba loops.

A convolution of one group is a matmul of the weight with the input's blocks. Here the blocks
are laid out a column per output pixel of every image, (C * KH * KW, N * OH * OW), so that each
of the three products is one GEMM over the whole batch (y = W @ cols, gW = gY @ cols.T and the
blocks' gradient W.T @ gY, with gY as (O, N * OH * OW)), and the loops run along image rows.
The padding is read as zeros, never made; col2im adds every block back where it came from in one
pass, where array ops take a strided add per kernel position.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba_cache import ensure_cache

ensure_cache(__file__)  # before any cache=True function is defined

__all__ = ["col2im", "im2col", "warmup"]

_OPTS = dict(cache=True, error_model="numpy")


@njit(**_OPTS)
def _im2col(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, zero, out):
    n, c, h, w = x.shape
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ci * kh + i) * kw + j
                for b in range(n):
                    for p in range(oh):
                        r = p * sh + i * dh - top
                        base = (b * oh + p) * ow
                        if r < 0 or r >= h:
                            for q in range(ow):
                                out[row, base + q] = zero
                            continue
                        for q in range(ow):
                            s = q * sw + j * dw - left
                            out[row, base + q] = x[b, ci, r, s] if 0 <= s < w else zero


@njit(**_OPTS)
def _col2im(cols, kh, kw, sh, sw, dh, dw, top, left, oh, ow, out):
    n, c, h, w = out.shape
    out[...] = 0
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ci * kh + i) * kw + j
                for b in range(n):
                    for p in range(oh):
                        r = p * sh + i * dh - top
                        if r < 0 or r >= h:
                            continue
                        base = (b * oh + p) * ow
                        for q in range(ow):
                            s = q * sw + j * dw - left
                            if 0 <= s < w:
                                out[b, ci, r, s] += cols[row, base + q]


def im2col(x: np.ndarray, kernel_size, stride, dilation, padding, out_size) -> np.ndarray:
    """The blocks of an (N, C, H, W) array, a column per output pixel: (C * KH * KW, N * OH * OW),
    zeros where a block reads the padding (top, bottom, left, right); e.g.
    im2col(x, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), (h, w))."""
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel_size, out_size
    out = np.empty((c * kh * kw, n * oh * ow), x.dtype)
    if out.size:
        _im2col(np.ascontiguousarray(x), kh, kw, *stride, *dilation, padding[0], padding[2],
                oh, ow, x.dtype.type(0), out)  # fmt: skip
    return out


def col2im(
    cols: np.ndarray, shape, kernel_size, stride, dilation, padding, out_size, out=None
) -> np.ndarray:
    """The transpose of im2col: each block's values added back to where it read them, into an
    array of `shape` (N, C, H, W), or into `out` (C-ordered, of that shape), overwritten."""
    (kh, kw), (oh, ow) = kernel_size, out_size
    if out is None:
        out = np.empty(shape, cols.dtype)
    if out.size:
        _col2im(np.ascontiguousarray(cols), kh, kw, *stride, *dilation, padding[0], padding[2],
                oh, ow, out)  # fmt: skip
    else:
        out[...] = 0
    return out


def warmup() -> None:
    """Compile (or load from the on-disk cache) both loops for float32 and float64."""
    for dtype in (np.float32, np.float64):
        x = np.ones((1, 1, 3, 3), dtype)
        cols = im2col(x, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0), (2, 2))
        col2im(cols, x.shape, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0), (2, 2))
