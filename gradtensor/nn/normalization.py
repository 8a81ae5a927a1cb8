"""Normalization and embeddings, as PyTorch's: batch_norm, layer_norm, group_norm (composites of
mean and rsqrt, so gradients of gradients come free) and embedding (one primitive: a row gather
whose backward adds rows into a zero matrix), with their modules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..ops import rsqrt, where
from ..ops.indexing import _index
from ..ops.loss import constant
from ..ops.registry import Bad, Sample, _to_tensor, composite, primitive
from ..ops.shape import _getitem_grad
from ..tensor import Tensor, empty, int64, ones, tensor, zeros
from . import init
from .module import Module
from .parameter import Parameter

__all__ = [
    "batch_norm",
    "layer_norm",
    "group_norm",
    "embedding",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "Embedding",
]


def _normalize(x: Tensor, axes: tuple, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over axes with the biased variance: (y, mean, var)."""
    if x.dtype == np.float16:  # statistics in float32, as PyTorch's (float16 sums lose digits)
        y, mean, var = _normalize(x.astype(np.float32), axes, eps)
        return y.astype(np.float16), mean, var
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    var = (d * d).mean(axis=axes, keepdims=True)
    return d * rsqrt(var + eps), mean, var


def _operand(
    op: str, name: str, a: Any, x: Tensor, shape: tuple, channels: bool = True
) -> Tensor | None:
    """A weight, bias or running statistic as a tensor of `shape` (x's channels, or layer_norm's
    normalized_shape), or None."""
    if a is None:
        return None
    t = a if isinstance(a, Tensor) else constant(a, x)
    if t.shape != shape:
        if channels:
            raise ValueError(
                f"{op}: {name} has {t.numel()} elements but the input has {shape[0]} channels"
            )
        raise ValueError(f"{op}: {name} has shape {t.shape}, not the normalized shape {shape}")
    return t


def _affine(y: Tensor, w: Tensor | None, b: Tensor | None, shape: tuple) -> Tensor:
    if w is not None:
        y = y * w.reshape(shape)
    return y if b is None else y + b.reshape(shape)


def _update(buf: Tensor | None, value: Tensor, m: float) -> None:
    """buf = (1 - m) buf + m value, in place and outside the graph (PyTorch's running stats)."""
    if buf is not None:  # Tensor ops (under no_grad), so that gt.compile records them
        buf._write(((1 - m) * buf + m * value.reshape(buf.shape)).data)


def _bn_twin(t: Any, x: Any, *args: Any, **kw: Any) -> Any:
    """torch's batch_norm, the samples' constant operands (NumPy arrays) in x's dtype."""
    kw = {k: v.to(x.dtype) if isinstance(v, t.Tensor) else v for k, v in kw.items()}
    return t.nn.functional.batch_norm(x, *args, **kw)


_RM, _RV = np.array([0.5, -1.0, 0.2]), np.array([0.7, 1.5, 0.3])
_W, _B = np.array([1.5, -0.5, 2.0]), np.array([0.1, 0.2, -0.3])


@composite(
    samples=[
        Sample((4, 3), None, None, (3,), (3,), training=True),
        Sample((2, 3, 5), None, None, (3,), None, training=True, eps=1e-3),
        Sample((2, 3, 2, 2), None, None, None, (3,), training=True),
        Sample((4, 3), running_mean=_RM, running_var=_RV, weight=_W, bias=_B),
        Sample((2, 3, 2, 2), running_mean=_RM, running_var=_RV),
    ],
    torch=_bn_twin,
    errors=[
        Bad(
            (2, 4),
            running_mean=np.zeros(3),
            running_var=np.ones(4),
            match="batch_norm: running_mean has 3 elements but the input has 4 channels",
        ),
        Bad((1, 4), None, None, training=True, match="more than 1 value per channel"),
        Bad((2, 4), None, None, match="running_mean and running_var must be given"),
        Bad((4,), None, None, training=True, match="expected an input of at least 2 dims"),
        Bad(
            (2, 3),
            np.zeros(3, int),
            np.ones(3, int),
            training=True,
            error=TypeError,
            match="running_mean must be a Tensor when training",
        ),
    ],  # fmt: skip
)
def batch_norm(
    input: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-05,
) -> Tensor:
    """Normalize each channel (dim 1) by the batch's statistics when training (and move the
    running ones towards them, with the unbiased variance), else by the running statistics."""
    x = input
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expected an input of at least 2 dims (N, C, ...), got {x.shape}"
        )
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.ndim - 2)
    rm, rv, w, b = (
        _operand("batch_norm", k, a, x, (c,))
        for k, a in (("running_mean", running_mean), ("running_var", running_var),
                     ("weight", weight), ("bias", bias))
    )  # fmt: skip
    if training:
        for k, a in (("running_mean", running_mean), ("running_var", running_var)):
            if a is not None and not isinstance(a, Tensor):
                raise TypeError(
                    f"batch_norm: {k} must be a Tensor when training (it is updated in place), "
                    f"not {type(a).__name__}"
                )
        if not eps > 0:
            raise ValueError(f"batch_norm: eps must be positive when training, got {eps}")
        n = x.numel() // c if c else 0
        if n <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input "
                f"shape {x.shape}"
            )
        y, mean, var = _normalize(x, (0,) + tuple(range(2, x.ndim)), eps)
        with no_grad():
            _update(rm, mean, momentum)
            _update(rv, var * (n / (n - 1)), momentum)
    else:
        if rm is None or rv is None:
            raise ValueError(
                "batch_norm: running_mean and running_var must be given when not training"
            )
        y = (x - rm.reshape(shape)) * rsqrt(rv + eps).reshape(shape)
    return _affine(y, w, b, shape)


def _shape_of(normalized_shape: Any) -> tuple:
    if isinstance(normalized_shape, (int, np.integer)):
        return (int(normalized_shape),)
    return tuple(int(k) for k in normalized_shape)


@composite(
    samples=[
        Sample((3, 4), [4], (4,), (4,)),
        Sample((2, 3, 4), [3, 4], (3, 4), None, eps=1e-3),
        Sample((2, 5), [5]),
    ],
    torch="nn.functional.layer_norm",
    errors=[
        Bad(
            (2, 3, 4),
            [3],
            match=r"layer_norm: normalized_shape \(3,\) does not match the "
            r"input's trailing dims \(2, 3, 4\)",
        ),
        Bad(
            (2, 4),
            [4],
            (3,),
            match=r"layer_norm: weight has shape \(3,\), not the normalized shape \(4,\)",
        ),
    ],  # fmt: skip
)
def layer_norm(
    input: Tensor, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-05
) -> Tensor:
    """Normalize over the last len(normalized_shape) dims, then scale and shift elementwise."""
    shape = _shape_of(normalized_shape)
    k = len(shape)
    if not k or input.ndim < k or input.shape[input.ndim - k :] != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} does not match the input's trailing dims "
            f"{input.shape}"
        )
    w, b = (
        _operand("layer_norm", n, a, input, shape, False)
        for n, a in (("weight", weight), ("bias", bias))
    )
    y, _, _ = _normalize(input, tuple(range(input.ndim - k, input.ndim)), eps)
    return _affine(y, w, b, shape)


@composite(
    samples=[
        Sample((2, 6, 3), 3, (6,), (6,)),
        Sample((3, 4), 2, (4,), (4,)),
        Sample((2, 4, 2, 2), 4, (4,), None, eps=1e-3),
        Sample((2, 4, 3), 1),
    ],
    torch="nn.functional.group_norm",
    errors=[
        Bad((2, 6, 3), 4, match="group_norm: num_groups 4 does not divide the 6 channels"),
        Bad((2, 6), 3, (4,), match="group_norm: weight has 4 elements but the input has 6 chan"),
    ],
)
def group_norm(
    input: Tensor, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-05
) -> Tensor:
    """Normalize each sample over the channels of each of num_groups groups (and the spatial
    dims), then scale and shift each channel."""
    x = input
    if x.ndim < 2:
        raise ValueError(
            f"group_norm: expected an input of at least 2 dims (N, C, ...), got {x.shape}"
        )
    n, c = x.shape[:2]
    if not isinstance(num_groups, (int, np.integer)) or num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: num_groups {num_groups} does not divide the {c} channels")
    shape = (1, c) + (1,) * (x.ndim - 2)
    w, b = (_operand("group_norm", k, a, x, (c,)) for k, a in (("weight", weight), ("bias", bias)))
    y, _, _ = _normalize(
        x.reshape((n, num_groups, c // num_groups * math.prod(x.shape[2:]))), (2,), eps
    )
    return _affine(y.reshape(x.shape), w, b, shape)


# -- embedding --------------------------------------------------------------------------------


@primitive(
    "embedding",
    save="",
    samples=[
        Sample(np.array([[0, 2], [4, 0]]), (5, 3)),
        # padding_idx rows not looked up: where they are, the gradient is 0 by design (and
        # scale_grad_by_freq scales it), which no finite difference can confirm; both are held
        # to PyTorch in tests/test_normalization.py.
        Sample(np.array([1, 0, 1, 3]), (4, 3), padding_idx=2),
        Sample(np.array([[3, 1], [3, 3]]), (4, 2), padding_idx=-2),
        Sample(np.array(2), (4, 3)),
    ],
    torch="nn.functional.embedding",
    errors=[
        Bad(
            np.array([3, 12]),
            (10, 3),
            error=IndexError,
            match="embedding: index 12 is out of range for 10 embeddings",
        ),
        Bad(np.array([0]), (4, 3), padding_idx=4, match="embedding: padding_idx 4 is out of"),
        Bad(np.array([0]), (4,), match="embedding: weight must be 2-D"),
        Bad(np.array([0.5]), (4, 3), error=TypeError, match="embedding: the index must hold"),
    ],  # fmt: skip
)
def _embedding(xp, w, *, index, keep, scale):
    return w[index]


def _embedding_grad(g: Any, y: Any, w: Any, *, index: Any, keep: Any, scale: Any) -> Any:
    """The rows of g added into a zero matrix at their indices (no dense one-hot matmul)."""
    if scale is not None:
        g = g * scale
    if keep is not None:
        g = where(keep, g, 0)  # a select: an inf gradient at the padding row still gives 0
    return _getitem_grad(g, shape=w.shape, index=(index,))


_embedding.defvjp(_embedding_grad)


@_embedding.api
def embedding(
    input: Any,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """The rows of weight (num_embeddings, dim) at the integer indices in input; the padding_idx
    row gets no gradient, and max_norm renormalizes the rows looked up, in place, as PyTorch.
    The gradient is dense whatever `sparse` (gradtensor has no sparse tensors)."""
    if not isinstance(weight, Tensor):
        weight = _to_tensor(weight, "embedding", None)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got {weight.shape}")
    num = weight.shape[0]
    idx = _index("embedding", input, weight)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= num:
            raise IndexError(
                f"embedding: index {lo if lo < 0 else hi} is out of range for {num} embeddings"
            )
    keep = scale = None
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(
                f"embedding: padding_idx {padding_idx} is out of range for {num} embeddings"
            )
        keep = (idx != padding_idx % num)[..., None]
    if scale_grad_by_freq and idx.size:
        xp = backend.array_module(idx)
        counts = xp.bincount(idx.reshape(-1), minlength=num)
        scale = (1.0 / counts[idx]).astype(weight.dtype)[..., None]
    if max_norm is not None:
        _renorm(weight, idx, max_norm, norm_type)
    return _embedding(weight, index=idx, keep=keep, scale=scale)


def _renorm(weight: Tensor, idx: Any, max_norm: float, norm_type: float) -> None:
    """Scale the rows looked up whose norm exceeds max_norm down to it, in place, outside the
    graph (PyTorch's embedding_renorm_, with its 1e-7)."""
    xp = backend.array_module(weight.data)
    rows = xp.unique(idx.reshape(-1))
    w = weight.data[rows]
    norm = (xp.abs(w) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    factor = xp.where(norm > max_norm, max_norm / (norm + 1e-7), 1.0).astype(w.dtype)
    weight.data[rows] = w * factor[:, None]
    weight._changed()


# -- modules ----------------------------------------------------------------------------------


class _BatchNorm(Module):
    """PyTorch's _BatchNorm: affine weight and bias, running statistics and their count."""

    _dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-05,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        kw = dict(dtype=dtype, device=device)
        if affine:
            self.weight = Parameter(ones(num_features, **kw))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(zeros(num_features, **kw))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, **kw))
            self.register_buffer("running_var", ones(num_features, **kw))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean._write(0)
            self.running_var._write(1)
            self.num_batches_tracked._write(0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in self._dims:
            dims = " or ".join(f"{d}-D" for d in self._dims)
            got = f"{input.ndim}-D input" if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{name}: expected {dims} input, got {got}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            t = self.num_batches_tracked
            with no_grad():
                t._write((t + 1).data)
            if self.momentum is None:  # a cumulative moving average
                factor = 1.0 / float(t.item())
        stats = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if stats else None,
            self.running_var if stats else None,
            self.weight,
            self.bias,
            self.training or self.running_mean is None,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, per channel."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, per channel."""

    _dims = (4,)


class LayerNorm(Module):
    """Normalization over the trailing normalized_shape dims, with an elementwise affine."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-05,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.normalized_shape, self.eps = _shape_of(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        kw = dict(dtype=dtype, device=device)
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape, **kw))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = Parameter(zeros(*self.normalized_shape, **kw))
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """Normalization over groups of channels, with a per-channel affine."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-05,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_groups {num_groups} does not divide the {num_channels} channels"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine
        )  # fmt: skip
        kw = dict(dtype=dtype, device=device)
        if affine:
            self.weight = Parameter(ones(num_channels, **kw))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(zeros(num_channels, **kw))
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class Embedding(Module):
    """A lookup table of num_embeddings vectors of embedding_dim, drawn from N(0, 1); the
    padding_idx row starts at zero and gets no gradient."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} is out of range for {num_embeddings} "
                    "embeddings"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(
                empty(num_embeddings, embedding_dim, dtype=dtype, device=device)
            )
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"Embedding: _weight has shape {tuple(_weight.shape)}, not "
                    f"{(num_embeddings, embedding_dim)}"
                )
            data = _weight.data if isinstance(_weight, Tensor) else np.asarray(_weight)
            self.weight = Parameter(tensor(data, dtype=dtype, device=device))
        self.weight.requires_grad_(not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.data[self.padding_idx] = 0
                self.weight._changed()

    @classmethod
    def from_pretrained(
        cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None, **kw: Any
    ) -> Embedding:
        """An Embedding holding a copy of embeddings (rows, dim), frozen unless freeze=False."""
        if embeddings.ndim != 2:
            raise ValueError(
                f"Embedding.from_pretrained: embeddings must be 2-D, got {embeddings.shape}"
            )
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, _weight=embeddings, _freeze=freeze, **kw)

    def forward(self, input: Any) -> Tensor:
        return embedding(
            input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
            self.scale_grad_by_freq, self.sparse,
        )  # fmt: skip

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s
