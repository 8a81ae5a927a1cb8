"""scaled_dot_product_attention as PyTorch has it: a composite of matmul, where and the
log-sum-exp softmax (the attention modules are in gradtensor.nn.attention)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor, tensor
from .elementwise import where
from .indexing import repeat_interleave
from .loss import dropout, softmax
from .registry import Bad, Sample, _to_tensor, composite

_NEG_INF = float("-inf")


def _shape_str(s: tuple) -> str:
    return "(" + ", ".join(map(str, s)) + ")"


def _mask_tensor(op: str, mask: Any, like: Tensor) -> Tensor:
    if isinstance(mask, Tensor):
        return mask
    m = _to_tensor(mask, op, like.device)  # refuses host data next to a GPU tensor
    if m.dtype.kind == "f" and getattr(mask, "dtype", None) == np.float64:  # keep its precision
        return tensor(mask, dtype=np.float64, device=like.device)
    return m


def _attend(
    op: str, q: Tensor, k: Tensor, v: Tensor, mask: Any, p: float, causal: bool, scale: Any
) -> tuple[Tensor, Tensor]:
    """(softmax(q k^T * scale + mask) [dropped out] @ v, the weights); fully masked rows give 0."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, Tensor) or t.ndim < 2:
            raise ValueError(f"{op}: {name} must be a tensor of at least 2 dims (..., L, E)")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"{op}: query {_shape_str(q.shape)} and key {_shape_str(k.shape)} differ in the "
            "embedding size (last dim)"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{op}: key {_shape_str(k.shape)} and value {_shape_str(v.shape)} differ in the "
            "number of positions (dim -2)"
        )
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{op}: dropout_p must be a probability in [0, 1], got {p!r}")
    L, S = q.shape[-2], k.shape[-2]
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: batch dims of query {_shape_str(q.shape)}, key {_shape_str(k.shape)} and "
            f"value {_shape_str(v.shape)} do not broadcast"
        ) from None
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.mT) * s
    if causal:
        if mask is not None:
            raise ValueError(f"{op}: give attn_mask or is_causal=True, not both")
        keep = np.tril(np.ones((L, S), dtype=bool))
        scores = where(backend.to_device(keep, q.device), scores, _NEG_INF)
    elif mask is not None:
        m = _mask_tensor(op, mask, q)
        try:
            np.broadcast_shapes(m.shape, batch + (L, S))
        except ValueError:
            raise ValueError(
                f"{op}: attn_mask of shape {_shape_str(m.shape)} does not broadcast to the "
                f"attention shape {_shape_str(batch + (L, S))}"
            ) from None
        if m.dtype == np.bool_:
            scores = where(m, scores, _NEG_INF)
        elif m.dtype.kind == "f":
            scores = scores + m.astype(scores.dtype)
        else:
            raise TypeError(f"{op}: attn_mask must be bool or float, got {m.dtype}")
    # A row with nothing to attend to gives 0 (as PyTorch's), not the NaN of softmax(-inf...).
    dead = scores.detach().amax(axis=-1, keepdims=True) == _NEG_INF
    w = where(dead, 0.0, softmax(where(dead, 0.0, scores), -1))
    if p > 0:
        w = dropout(w, p, True)
    return w @ v, w


@composite(
    samples=[
        Sample((2, 3, 4), (2, 5, 4), (2, 5, 6)),
        Sample((3, 4), (5, 4), (5, 2), np.array([[1, 0, 1, 1, 0], [0] * 5, [1, 1, 1, 1, 1]], bool)),
        Sample((2, 3, 4), (2, 5, 4), (2, 5, 6), (3, 5)),
        Sample((2, 4, 3), (2, 4, 3), (2, 4, 5), is_causal=True),
        Sample((3, 4), (5, 4), (5, 2), is_causal=True, scale=0.3),
        Sample((2, 2, 3, 4), (1, 2, 5, 4), (2, 1, 5, 3), (2, 1, 3, 5)),
        Sample((2, 6, 3, 4), (2, 2, 5, 4), (1, 3, 5, 3), enable_gqa=True),
    ],
    torch="nn.functional.scaled_dot_product_attention",
    errors=[
        Bad((2, 3, 4), (2, 5, 3), (2, 5, 6), match=r"embedding size"),
        Bad((2, 3, 4), (2, 5, 4), (2, 4, 6), match=r"number of positions"),
        Bad((2, 3, 4), (2, 5, 4), (2, 5, 6), np.ones((4, 5), bool), match=r"attn_mask of shape"),
        Bad((2, 3, 4), (3, 5, 4), (3, 5, 6), match=r"do not broadcast"),
        Bad((3, 4), (5, 4), (5, 2), np.ones((3, 5), bool), is_causal=True, match=r"not both"),
        Bad((4, 3, 4), (3, 5, 4), (3, 5, 2), enable_gqa=True, match=r"must divide the query"),
    ],
)
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over (..., L, E), (..., S, E), (..., S, Ev).

    A bool attn_mask is True where a query may attend; a float one is added to the scores;
    is_causal masks to the lower triangle of (L, S); scale defaults to 1/sqrt(E); enable_gqa
    shares each key/value head among a group of query heads (dim -3).
    """
    op = "scaled_dot_product_attention"
    if enable_gqa and min(query.ndim, key.ndim, value.ndim) >= 3:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hq % hk or hq % hv:
            raise ValueError(
                f"{op}: with enable_gqa the key and value heads ({hk}, {hv}) must divide the "
                f"query heads ({hq}) (dim -3)"
            )
        key = key if hk == hq else repeat_interleave(key, hq // hk, dim=-3)
        value = value if hv == hq else repeat_interleave(value, hq // hv, dim=-3)
    return _attend(op, query, key, value, attn_mask, dropout_p, is_causal, scale)[0]


def _additive(op: str, name: str, mask: Any, like: Tensor) -> Tensor | None:
    """A PyTorch module mask (bool True = masked out, or float added) as a float mask to add."""
    if mask is None:
        return None
    m = _mask_tensor(op, mask, like)
    if m.dtype == np.bool_:
        return where(m, _NEG_INF, 0.0).astype(like.dtype)
    if m.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be bool or float, got {m.dtype}")
    return m.astype(like.dtype)
