"""conv2d's two data movements on the CPU, im2col and its transpose col2im, and max_pool2d's
window maxima and their gradient, as Numba loops.

A convolution of one group is a matmul of the weight with the input's blocks, laid out as the
array path lays them out, (N, C * KH * KW, OH * OW). The loops read the padding as zeros, never
making a padded copy; col2im adds every block back where it came from in one pass, where array
ops take a strided add per kernel position. The blocks are big (nine times the input for a 3x3
kernel) and made anew every step: they come from a few arrays per shape kept here and handed out
again once nobody holds them, so that a step does not pay the operating system for fresh pages.

max_pool2d's array path unfolds the windows (padding as -inf) and takes some six passes over them
to find each window's maximum and its place; here one pass reads each window where it lies, and
the gradient goes straight to each maximum's place instead of through a select and a fold.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from numba import njit

from ._numba_cache import ensure_cache

ensure_cache(__file__)  # before any cache=True function is defined

__all__ = ["col2im", "im2col", "max_pool2d_backward", "max_pool2d_forward", "warmup"]

_OPTS = dict(cache=True, error_model="numpy")


@njit(**_OPTS)
def _im2col(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, zero, out):
    n, c, h, w = x.shape
    for b in range(n):
        for ci in range(c):
            for i in range(kh):
                for j in range(kw):
                    row = (ci * kh + i) * kw + j
                    for p in range(oh):
                        r = p * sh + i * dh - top
                        base = p * ow
                        if r < 0 or r >= h:
                            for q in range(ow):
                                out[b, row, base + q] = zero
                            continue
                        for q in range(ow):
                            s = q * sw + j * dw - left
                            out[b, row, base + q] = x[b, ci, r, s] if 0 <= s < w else zero


@njit(**_OPTS)
def _col2im(cols, kh, kw, sh, sw, dh, dw, top, left, oh, ow, out):
    n, c, h, w = out.shape
    out[...] = 0
    for b in range(n):
        for ci in range(c):
            for i in range(kh):
                for j in range(kw):
                    row = (ci * kh + i) * kw + j
                    for p in range(oh):
                        r = p * sh + i * dh - top
                        if r < 0 or r >= h:
                            continue
                        base = p * ow
                        for q in range(ow):
                            s = q * sw + j * dw - left
                            if 0 <= s < w:
                                out[b, ci, r, s] += cols[b, row, base + q]


@njit(**_OPTS)
def _max_pool(x, kh, kw, sh, sw, dh, dw, top, left, lowest, y, at):
    """Each window's maximum into y and its place in the window (i * kw + j) into `at`: the
    first maximum, or the first NaN if there is one (the array path's choice); the padding
    reads as `lowest` (-inf)."""
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    for b in range(n):
        for ci in range(c):
            for p in range(oh):
                for q in range(ow):
                    best, place = lowest, 0
                    for i in range(kh):
                        r = p * sh + i * dh - top
                        for j in range(kw):
                            s = q * sw + j * dw - left
                            v = x[b, ci, r, s] if 0 <= r < h and 0 <= s < w else lowest
                            if i + j == 0 or v > best or (v != v and best == best):
                                best, place = v, i * kw + j
                    y[b, ci, p, q] = best
                    at[b, ci, p, q] = place


@njit(**_OPTS)
def _max_pool_grad(g, at, kh, kw, sh, sw, dh, dw, top, left, gx):
    """Each window's gradient added to its maximum's place (nothing for one in the padding)."""
    n, c, h, w = gx.shape
    oh, ow = g.shape[2:]
    gx[...] = 0
    for b in range(n):
        for ci in range(c):
            for p in range(oh):
                for q in range(ow):
                    k = at[b, ci, p, q]
                    i = k // kw
                    r = p * sh + i * dh - top
                    s = q * sw + (k - i * kw) * dw - left
                    if 0 <= r < h and 0 <= s < w:
                        gx[b, ci, r, s] += g[b, ci, p, q]


# -- the blocks' arrays, kept and handed out again ---------------------------------------------

_KEEP = 2  # arrays kept per shape and dtype: a step's forward blocks and one more
_MAX_BYTES = 1 << 30  # nothing more is kept beyond this much in all
_kept: dict[tuple, list[np.ndarray]] = {}
_kept_bytes = [0]
_lock = threading.Lock()


def _blocks_array(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An array for blocks: a kept one that nobody else holds, or a new one (kept if there is
    room)."""
    key = (shape, dtype)
    with _lock:
        kept = _kept.setdefault(key, [])
        for a in kept:
            # The list, `a` and getrefcount's own argument: nothing else holds it
            if sys.getrefcount(a) == 3:
                return a
        a = np.empty(shape, dtype)
        if len(kept) < _KEEP and _kept_bytes[0] + a.nbytes <= _MAX_BYTES:
            kept.append(a)
            _kept_bytes[0] += a.nbytes
        return a


def im2col(x: np.ndarray, kernel_size, stride, dilation, padding, out_size) -> np.ndarray:
    """The blocks of an (N, C, H, W) array: (N, C * KH * KW, OH * OW), zeros where a block reads
    the padding (top, bottom, left, right); e.g. im2col(x, (3, 3), (1, 1), (1, 1), (1,) * 4,
    (h, w)). The array is overwritten by a later call once nothing holds it."""
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel_size, out_size
    out = _blocks_array((n, c * kh * kw, oh * ow), x.dtype)
    if out.size:
        _im2col(np.ascontiguousarray(x), kh, kw, *stride, *dilation, padding[0], padding[2],
                oh, ow, x.dtype.type(0), out)  # fmt: skip
    return out


def col2im(cols: np.ndarray, shape, kernel_size, stride, dilation, padding, out_size) -> np.ndarray:
    """The transpose of im2col: each block's values added back to where it read them, into a
    new array of `shape` (N, C, H, W)."""
    (kh, kw), (oh, ow) = kernel_size, out_size
    out = np.empty(shape, cols.dtype)
    if out.size:
        _col2im(np.ascontiguousarray(cols), kh, kw, *stride, *dilation, padding[0], padding[2],
                oh, ow, out)  # fmt: skip
    return out


def max_pool2d_forward(x: np.ndarray, kernel_size, stride, dilation, padding, out_size) -> tuple:
    """(each window's maximum (N, C, OH, OW), its place in the window i * KW + j as int32) of an
    (N, C, H, W) array, the padding (top, bottom, left, right) read as -inf."""
    n, c = x.shape[:2]
    y = np.empty((n, c, *out_size), x.dtype)
    at = np.empty((n, c, *out_size), np.int32)
    if y.size:
        _max_pool(np.ascontiguousarray(x), *kernel_size, *stride, *dilation, padding[0],
                  padding[2], x.dtype.type(-np.inf), y, at)  # fmt: skip
    return y, at


def max_pool2d_backward(g: np.ndarray, at: np.ndarray, shape, kernel_size, stride, dilation,
                        padding) -> np.ndarray:  # fmt: skip
    """The gradient of max_pool2d_forward's input, of `shape`: g added at each window's maximum."""
    gx = np.empty(shape, g.dtype)
    if gx.size:
        _max_pool_grad(np.ascontiguousarray(g), np.ascontiguousarray(at), *kernel_size, *stride,
                       *dilation, padding[0], padding[2], gx)  # fmt: skip
    return gx


def warmup() -> None:
    """Compile (or load from the on-disk cache) both loops for float32 and float64."""
    for dtype in (np.float32, np.float64):
        x = np.ones((1, 1, 3, 3), dtype)
        cols = im2col(x, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0), (2, 2))
        col2im(cols, x.shape, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0), (2, 2))
        y, at = max_pool2d_forward(x, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0), (2, 2))
        max_pool2d_backward(y, at, x.shape, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0))
