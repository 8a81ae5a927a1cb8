"""Gradient clipping, applied to `.grad` in place between backward() and the optimizer step.

>>> loss.backward()
>>> nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)   # returns the norm before clipping
>>> opt.step()
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..autograd.graph import RECORDING, recorder
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor], fn: str) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: parameter {i} is a {type(p).__name__}, not a Tensor")
    grads = [p.grad for p in params if p.grad is not None]
    devices = {g.device for g in grads}
    if len(devices) > 1:
        a, b = sorted(devices, key=str)[:2]
        raise RuntimeError(
            f"{fn}: the gradients are on different devices, {a} and {b}; clip each device's "
            "parameters in a call of their own"
        )
    return grads


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so that their joint norm is at most max_norm.

    The norm is taken over all gradients as if concatenated into one vector; the return value is
    that norm before clipping, as a 0-d tensor.
    """
    if RECORDING and (rec := recorder()) is not None:  # gt.compile replays it as one call
        params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
        graphed = functools.partial(_graphed_clip, params, max_norm, norm_type, error_if_nonfinite)
        return rec.call(
            clip_grad_norm_, params, max_norm, norm_type, error_if_nonfinite, graphed=graphed
        )
    grads = _grads(parameters, "clip_grad_norm_")
    norm_type = float(norm_type)
    if not grads:
        return Tensor._make(backend.np.zeros((), backend.np.float32))
    with backend.on(grads[0].device):  # CuPy works on the current GPU: the gradients'
        return _clip_norm(grads, float(max_norm), norm_type, error_if_nonfinite)


def _graphed_clip(params: list, max_norm: float, norm_type: float, error_if_nonfinite: bool):
    """For gt.compile's CUDA graphs: the clipping as GPU work on the gradients' arrays (see
    `_Recorder.call`); None where it reads a value on the host or has no GPU gradients."""
    leaves = [p for p in params if p.grad is not None]
    if error_if_nonfinite or not leaves or not backend.is_cuda_array(leaves[0].grad.data):
        return None
    device = leaves[0].device

    def work(*grads: Any) -> Any:
        with backend.on(device):
            grads = [Tensor._make(g) for g in grads]
            return _clip_norm(grads, float(max_norm), float(norm_type), False).data

    return None, work, leaves


def _clip_norm(
    grads: list[Tensor], max_norm: float, norm_type: float, error_if_nonfinite: bool
) -> Tensor:
    xp = backend.array_module(grads[0].data)
    if norm_type == math.inf:
        norms = [xp.abs(g.data).max() if g.numel() else xp.zeros((), g.dtype) for g in grads]
        total = xp.max(xp.stack([xp.asarray(n, dtype=grads[0].dtype) for n in norms]))
    else:
        # Per-gradient norms, then the norm of those norms: the same as one long vector.
        norms = [xp.linalg.norm(g.data.ravel(), norm_type) for g in grads]
        total = xp.linalg.norm(
            xp.stack([xp.asarray(n, dtype=grads[0].dtype) for n in norms]), norm_type
        )
    if error_if_nonfinite and not math.isfinite(float(total)):  # the one check that syncs a GPU
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"{float(total)}, "
            "so they cannot be clipped; pass error_if_nonfinite=False to skip this check"
        )
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0).astype(grads[0].dtype)
    # On the GPU the scale stays there (reading it would stall each step), so every gradient is
    # scaled, by 1 when within the norm (exact); on the CPU only when clipping.
    if xp is not backend.np or coef < 1:
        for g in grads:
            xp.multiply(g.data, coef, out=g.data)
    return Tensor._make(xp.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    if RECORDING and (rec := recorder()) is not None:  # gt.compile replays it as one call
        params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
        return rec.call(clip_grad_value_, params, clip_value)
    grads = _grads(parameters, "clip_grad_value_")
    c = float(clip_value)
    if c < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be non-negative, got {clip_value}")
    if grads:
        with backend.on(grads[0].device):
            for g in grads:
                backend.array_module(g.data).clip(g.data, -c, c, out=g.data)
