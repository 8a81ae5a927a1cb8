"""Attention as PyTorch has it: `scaled_dot_product_attention`, `MultiheadAttention` and
`TransformerEncoderLayer`, composites of matmul, where and the log-sum-exp softmax.

>>> mha = nn.MultiheadAttention(16, 4, batch_first=True)
>>> out, w = mha(x, x, x)            # x (N, L, 16): out (N, L, 16), w (N, L, L) averaged over heads
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ops import linear, relu
from ..ops.activations import gelu
from ..ops.attention import _additive, _attend, _shape_str
from ..tensor import Tensor, empty
from . import init
from .layers import Dropout, Linear
from .module import Module
from .normalization import LayerNorm
from .parameter import Parameter


class MultiheadAttention(Module):
    """PyTorch's nn.MultiheadAttention (without add_bias_kv / add_zero_attn): the same
    parameters (in_proj_weight (3E, E) or q/k/v_proj_weight, in_proj_bias, out_proj), masks
    and outputs (attn_output, attn_weights)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        *,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        op = "MultiheadAttention"
        for name, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"{op}: {name} must be a positive int, got {n!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"{op}: embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
            )
        if not 0 <= dropout <= 1:
            raise ValueError(f"{op}: dropout must be in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.batch_first, self.head_dim = batch_first, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        E, kw = embed_dim, {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * E, E, **kw))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty(E, E, **kw))
            self.k_proj_weight = Parameter(empty(E, self.kdim, **kw))
            self.v_proj_weight = Parameter(empty(E, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * E, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, **kw)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: xavier_uniform_ projections, zero in_proj and out_proj biases."""
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        for b in (self.in_proj_bias, self.out_proj.bias):
            if b is not None:
                init.zeros_(b)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        op, E, H, D = "MultiheadAttention", self.embed_dim, self.num_heads, self.head_dim
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                f"{op}: query, key and value must all be 2-D (unbatched) or 3-D, got shapes "
                f"{_shape_str(query.shape)}, {_shape_str(key.shape)}, {_shape_str(value.shape)}"
            )
        batched = query.ndim == 3
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        for name, t, d in (
            ("query", query, E),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            if t.shape[-1] != d:
                raise ValueError(f"{op}: {name} has {t.shape[-1]} features, expected {d}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != N:
            raise ValueError(
                f"{op}: key {_shape_str(key.shape)} and value {_shape_str(value.shape)} (as "
                f"(N, S, E)) must have the same batch and length, and the batch of query ({N})"
            )
        if is_causal and attn_mask is None:
            raise ValueError(f"{op}: is_causal=True is a hint and needs the causal attn_mask")
        mask = _additive(op, "attn_mask", attn_mask, query)
        if mask is not None:
            if mask.shape == (L, S):
                mask = mask.reshape(1, 1, L, S)
            elif mask.shape == (N * H, L, S) or (not batched and mask.shape == (H, L, S)):
                mask = mask.reshape(N, H, L, S)
            else:
                raise ValueError(
                    f"{op}: attn_mask of shape {_shape_str(mask.shape)}; expected "
                    f"{_shape_str((L, S))} or {_shape_str((N * H, L, S))}"
                )
        kpm = _additive(op, "key_padding_mask", key_padding_mask, query)
        if kpm is not None:
            if kpm.shape != ((N, S) if batched else (S,)):
                raise ValueError(
                    f"{op}: key_padding_mask of shape {_shape_str(kpm.shape)}; expected "
                    f"{_shape_str((N, S) if batched else (S,))}"
                )
            kpm = kpm.reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        if self._qkv_same_embed_dim:
            wq, wk, wv = self.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq, bk, bv = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        q = linear(query, wq, bq).reshape(N, L, H, D).transpose(1, 2)
        k = linear(key, wk, bk).reshape(N, S, H, D).transpose(1, 2)
        v = linear(value, wv, bv).reshape(N, S, H, D).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        out, w = _attend(op, q, k, v, mask, p, False, None)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))
        if not batched:
            out = out.reshape(L, E)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        w = w.mean(axis=1) if average_attn_weights else w
        return out, (w if batched else w[0])

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


_ACTIVATIONS: dict[str, Callable] = {"relu": relu, "gelu": gelu}


class TransformerEncoderLayer(Module):
    """PyTorch's nn.TransformerEncoderLayer: self-attention and a feed-forward block, each with
    dropout, a residual connection and a LayerNorm (after, or before with norm_first=True)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        *,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        if isinstance(activation, str) and activation not in _ACTIVATIONS:
            raise ValueError(
                f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                f"got {activation!r}"
            )
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        self.activation = _ACTIVATIONS[activation] if isinstance(activation, str) else activation

    def forward(
        self,
        src: Tensor,
        src_mask: Any = None,
        src_key_padding_mask: Any = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x: Tensor, mask: Any, kpm: Any, is_causal: bool) -> Tensor:
        x = self.self_attn(
            x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
